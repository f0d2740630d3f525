"""The lrp-grid study (document 002): a shrunken run end to end plus its building blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from salbench.config import ConfigError
from salbench.explain.lrp import linear_layers
from salbench.metrics import region_perturbation
from salbench.models import build, make_explainable
from salbench.results import read_results
from salbench.runtime import set_quiet
from salbench.studies import lrp_grid
from salbench.studies.base import run_study

SHRUNK = [
    "data={kind: cells, n: 120, size: 32, params: {shard_size: 2}}",
    "train={preset: cells-continuous, epochs: 1, lr: 0.001}",
    "grid=[0.0, 1.0]", "n_samples=2", "gallery=1", "stabilisers=[zennit]", "explain_class=null",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    set_quiet(True)
    run_dir = tmp_path_factory.mktemp("lrp-grid")
    config = lrp_grid.STUDY.config("tiny", SHRUNK)
    summaries = run_study(lrp_grid.STUDY, config, run_dir, device="cpu")
    assert all(not s.failed for s in summaries.values()), summaries
    results = read_results(run_dir)
    return run_dir, config, results[results.study == "lrp-grid"]


def pd_params(frame):
    import pandas as pd

    params = pd.DataFrame([json.loads(p) for p in frame.params], index=frame.index)
    return pd.concat([frame, params], axis=1)


def test_rows_for_every_grid_point_and_sort(run):
    _, config, results = run
    rows = pd_params(results[results.metric.str.startswith("auc_")])
    points = rows.groupby(["composite", "stabiliser", "first", "second"]).size()
    assert len(points) == len(config.composites) * len(config.stabilisers) * len(config.grid) ** 2
    assert (points == len(config.sorts) * config.n_samples).all()
    finite = results[results.metric == "finite"]
    assert len(finite) == len(points) * config.n_samples
    assert np.isfinite(rows.value).all()


def test_random_order_auc_does_not_depend_on_the_map(run):
    """Section 4.1: 'we expect experiments with PF_random to result in constant contour plots'.
    The random order ignores the map, so each image's random AUC is the same at every point."""
    _, _, results = run
    rows = results[results.metric == "auc_random"]
    spread = rows.groupby("sample_id").value.agg(lambda v: v.max() - v.min())
    assert (spread < 1e-5).all()
    # ... while the maps themselves do change over the grid.
    top = results[results.metric == "relevance_max"].groupby("sample_id").value
    assert (top.agg(lambda v: v.max() - v.min()) > 0).all()


def test_stored_auc_matches_a_direct_computation(run):
    run_dir, config, results = run
    from salbench.runtime import JobContext

    job = {"study_config": json.loads(json.dumps(
        {**config.model_dump(mode="json"),
         "data": config.data.model_copy(update={"seed": config.seed}).model_dump()})),
        "seed": config.seed}
    x, y, ids, model = lrp_grid.samples_and_model(job, JobContext(run_dir, "cpu", 0, "k"))
    spec = lrp_grid.composite_spec("tutorial", 1.0, 0.0, "zennit")
    a, finite = lrp_grid.lrp_maps(model, x, y, spec)
    assert finite.all()
    expected = region_perturbation(model, x, y, a, patch=8, order="morf", fill="inpaint-telea",
                                   steps="square", repeated=True, last_step_gray=True).scores
    rows = pd_params(results[results.metric == "auc_morf"])
    rows = rows[(rows.composite == "tutorial") & (rows["first"] == 1.0)
                & (rows["second"] == 0.0)].set_index("sample_id")
    assert np.allclose(rows.loc[ids, "value"].to_numpy(), expected.numpy(), atol=1e-4)


def test_report_section(run):
    run_dir, config, _ = run
    section = lrp_grid.report_section(run_dir)
    names = {f.name for sub in [section, *section.subsections] for f in sub.figures}
    for composite in config.composites:
        for sort in config.sorts:
            assert f"lrp-grid-{composite}-zennit-{sort}" in names
    assert {"lrp-grid-auc-distribution", "lrp-grid-conservation"} <= names
    assert {f"lrp-grid-optimal-{c}-zennit" for c in config.composites} <= names
    tables = {t.name: t.data for t in section.tables}
    optima = tables["lrp-grid-optima"]
    assert set(optima.index.get_level_values("sort")) == {"MoRF", "LRF"}
    assert "conservation_error (median)" in tables["lrp-grid-relevance"].columns


def test_layer_relevance_starts_at_one(run):
    """Figure 3.2: Σ R / f_y(x) is 1 at the output and finite through the layers."""
    _, _, results = run
    rows = results[results.metric == "layer_relevance"]
    assert len(rows) > 0
    assert np.allclose(rows[rows.sample_id == "point:000"].value, 1.0)
    assert np.isfinite(rows.value).all()


def test_composites_follow_tables_4_2_and_4_3():
    """Layer indices of the grid groups are VGG-16 modules 11–17 / 18–24 (table 4.2) and
    1–16 / 17–30 (table 4.3)."""
    names = [name for name, _ in linear_layers(build("vgg16", 10, 3, 64, 0.125))]
    module = [int(n.split(".")[1]) if n.startswith("features") else 31 + i
              for i, n in enumerate(names)]

    def modules_with(spec, rule, value):
        out = []
        for r in spec.ranges:
            if r.rule == rule and value in r.params.values():
                last = len(names) - 1 if r.last is None else r.last
                out += module[r.first:last + 1]
        return out

    dg = lrp_grid.composite_spec("decreasing_gamma", 0.003, 0.007, "zennit")
    assert all(11 <= m <= 17 for m in modules_with(dg, "gamma", 0.003))
    assert all(18 <= m <= 24 for m in modules_with(dg, "gamma", 0.007))
    assert dg.ranges[0].rule == "zbox" and dg.ranges[0].params == {"low": 0.0, "high": 1.0}
    tu = lrp_grid.composite_spec("tutorial", 0.003, 0.007, "tutorial")
    assert all(1 <= m <= 16 for m in modules_with(tu, "gamma", 0.003))
    assert all(17 <= m <= 30 for m in modules_with(tu, "epsilon", 0.007))
    assert tu.stabiliser == "tutorial"
    assert len(lrp_grid.PAPER_GRID) == 16 and lrp_grid.PAPER_GRID[0] == 0.0
    assert lrp_grid.PAPER_GRID[1] == pytest.approx(1e-4) and lrp_grid.PAPER_GRID[-1] == 1.0


def test_vanilla_stabiliser_zero_denominators_are_reported_per_sample():
    """Section 2.1.5: without a guard, 0/0 gives NaN (fig. 2.5); only that sample is dropped.
    Positive weights and no biases: every denominator is > 0 for a positive image and 0 for a
    black one."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3, bias=False))
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    x = torch.stack([torch.zeros(3, 8, 8), torch.rand(3, 8, 8) + 0.1])
    y = torch.tensor([1, 2])
    vanilla = lrp_grid.composite_spec("tutorial", 0.0, 0.0, "vanilla")
    maps, finite = lrp_grid.lrp_maps(model.eval(), x, y, vanilla)
    assert finite.tolist() == [False, True]
    assert torch.isfinite(maps).all() and maps[0].abs().sum() == 0
    # LRP-0 without biases conserves: the pixels hold the explained logit.
    assert maps[1].sum() == pytest.approx(float(model(x[1:]).detach()[0, 2]), rel=1e-4)
    _, finite = lrp_grid.lrp_maps(model, x, y,
                                  lrp_grid.composite_spec("tutorial", 0.0, 0.0, "zennit"))
    assert finite.all()


def test_fold_normalisation_is_exact():
    torch.manual_seed(0)
    model = build("vgg16", 10, 3, 32, 0.125).eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(lrp_grid.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(lrp_grid.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model((x - mean) / std)
        folded_model = lrp_grid.fold_normalisation(model)
        folded = folded_model(x)
    assert torch.allclose(folded, expected, atol=1e-5)
    # The grid's composites still address the same layers and explain the folded model.
    assert len(linear_layers(folded_model)) == 16
    spec = lrp_grid.composite_spec("tutorial", 0.25, 0.25, "zennit")
    maps, finite = lrp_grid.lrp_maps(make_explainable(folded_model), x, torch.tensor([0, 1]), spec)
    assert finite.all() and maps.shape == x.shape


def test_folder_mode_reads_images_and_explains_the_given_class(tmp_path, monkeypatch):
    """The folder reader path: images of ``explain_class`` in [0, 1], targets = target_index,
    the (here tiny, randomly initialised) VGG-16 with its normalisation folded in."""
    import cv2

    from salbench import models
    from salbench.runtime import JobContext

    rng = np.random.default_rng(0)
    for name in ("axolotl", "castle"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "images" / name / f"{i}.png"),
                        rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    tiny = build("vgg16", 1000, 3, 32, 0.0625)
    monkeypatch.setattr(models, "build", lambda *a, **k: tiny)
    config = lrp_grid.STUDY.config("tiny", [
        f"folder={tmp_path / 'images'}", "weights=imagenet", "explain_class=axolotl",
        "target_index=29", "n_samples=2", "data.size=32"])
    job = {"study_config": config.model_dump(mode="json")}
    x, y, ids, model = lrp_grid.samples_and_model(job, JobContext(tmp_path, "cpu", 0, "k"))
    assert x.shape == (2, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == [29, 29] and len(ids) == 2
    assert isinstance(model.features[0][0], lrp_grid.ConstantPad)


def test_config_errors():
    with pytest.raises(ConfigError, match="weights"):
        lrp_grid.STUDY.config("tiny", ["folder=/tmp"])
    with pytest.raises(ConfigError, match="grid"):
        lrp_grid.STUDY.config("tiny", ["grid=[-1.0]"])
    with pytest.raises(ConfigError, match="stabilisers"):
        lrp_grid.STUDY.config("tiny", ["stabilisers=[none]"])


@pytest.mark.slow
def test_tiny_preset(tmp_path):
    set_quiet(True)
    config = lrp_grid.STUDY.config("tiny")
    summaries = run_study(lrp_grid.STUDY, config, tmp_path, device="cpu")
    assert all(not s.failed for s in summaries.values())
    section = lrp_grid.report_section(tmp_path)
    assert len(section.subsections) == len(config.composites)
