"""The lrp-grid study (document 002): a shrunken run end to end, its building blocks, the job
keys, and the analysis on hand-made frames."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from contract import assert_rankable
from torch import nn

from salbench.config import ConfigError
from salbench.explain import FastLRPFallback, lrp_fast
from salbench.explain.lrp import linear_layers, relevance_by_layer
from salbench.metrics import region_perturbation, score
from salbench.models import build, make_explainable
from salbench.models.surgery import ConstantPad, fold_normalisation
from salbench.results import read_results
from salbench.runtime import JobContext, execute, set_quiet
from salbench.studies import lrp_grid
from salbench.studies.base import run_study
from salbench.studies.lrp_grid import analysis, findings, grid
from salbench.studies.lrp_grid.config import PAPER_GRID

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
    tables = {t: read_results(run_dir, t) for t in ("results", "curves", "summaries")}
    return run_dir, config, {t: f[f.study == "lrp-grid"] for t, f in tables.items()}


# ---------------------------------------------------------------- the shrunken run

def test_rows_for_every_grid_point_and_sort(run):
    _, config, tables = run
    results = tables["results"]
    auc = results[(results.metric == "region_perturbation") & (results.output == "auc")]
    points = auc.groupby(["composite", "stabiliser", "first", "second"]).size()
    assert len(points) == len(config.composites) * len(config.stabilisers) * len(config.grid) ** 2
    assert (points == len(config.sorts) * config.n_samples).all()
    assert np.isfinite(auc.value).all()
    # Directions come from the registry, per order: MoRF lower, LRF higher, random none.
    assert auc.groupby("order").direction.unique().map(list).to_dict() == {
        "morf": ["lower"], "lrf": ["higher"], "random": ["none"]}
    finite = results[results.metric == "finite"]
    assert len(finite) == len(points) * config.n_samples and (finite.value == 1).all()
    conservation = results[results.metric == "conservation"]
    assert set(conservation.output) == {"conservation_error", "relevance_min", "relevance_max"}
    # Every curve point of every sample, no "point:k" ids.
    curves = tables["curves"]
    perturbation = curves[curves.metric == "region_perturbation"]
    steps = perturbation.groupby(["composite", "first", "second", "order", "sample_id"]).size()
    assert len(steps) == len(auc) and (steps == 5).all()  # 32 px: 4×4 patches, 4 square steps
    assert not results.sample_id.str.startswith("point:").any()


def test_random_order_auc_does_not_depend_on_the_map(run):
    """Section 4.1: 'we expect experiments with PF_random to result in constant contour plots'.
    The random order ignores the map, so each image's random AUC is the same at every point."""
    results = run[2]["results"]
    rows = results[(results.metric == "region_perturbation") & (results.order == "random")]
    spread = rows.groupby("sample_id").value.agg(lambda v: v.max() - v.min())
    assert (spread < 1e-5).all()
    # ... while the maps themselves do change over the grid.
    top = results[results.output == "relevance_max"].groupby("sample_id").value
    assert (top.agg(lambda v: v.max() - v.min()) > 0).all()


def test_random_order_is_scored_once_per_model_and_sample_set(run, monkeypatch):
    """The random order does not read the map: a process computes its curves at the first grid
    point of a model and sample set and repeats them at the others, equal to a direct
    computation; a new version of the checkpoint is scored again."""
    run_dir, config, _ = run
    grid._MAP_FREE.clear()
    calls = []
    score_map = grid.score_map
    monkeypatch.setattr(grid, "score_map", lambda metric, *a, **k: calls.append(
        metric.params.get("order")) or score_map(metric, *a, **k))
    jobs = lrp_grid.STUDY.stages(config)[2].expand(run_dir)[:3]
    outs = [execute(job, run_dir, "cpu") for job in jobs]
    assert calls.count("random") == 1 and calls.count("morf") == calls.count("lrf") == 3
    ex = grid.samples_and_model(grid.job_inputs(config), JobContext(run_dir, "cpu", 0, "k"))
    direct = region_perturbation(ex.model, ex.x, ex.y, torch.rand_like(ex.x), patch=config.patch,
                                 order="random", fill=config.fill, steps=config.steps,
                                 repeated=config.repeated, last_step_gray=config.last_step_gray,
                                 seed=config.seed).scores
    for out in outs:
        auc = {r["sample_id"]: r["value"] for r in out["results"]
               if r["metric"] == "region_perturbation" and r["order"] == "random"
               and r["output"] == "auc"}
        assert np.allclose([auc[i] for i in ex.sample_ids], direct.numpy(), atol=1e-5)
    checkpoint = grid.checkpoint_path(run_dir, jobs[0].config["model_id"])
    stamp = checkpoint.stat()
    try:
        os.utime(checkpoint, ns=(1, 1))  # another version of the model file
        execute(jobs[0], run_dir, "cpu")
    finally:
        os.utime(checkpoint, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert calls.count("random") == 2


def test_stored_auc_matches_a_direct_computation(run):
    run_dir, config, tables = run
    ex = grid.samples_and_model(grid.job_inputs(config), JobContext(run_dir, "cpu", 0, "k"))
    method = grid.grid_method("tutorial", "zennit", 1.0, 0.0, (0.0, 1.0))
    a = grid.lrp_maps(ex.model, ex.x, ex.y, method)
    expected = region_perturbation(ex.model, ex.x, ex.y, a, patch=8, order="morf",
                                   fill="inpaint-telea", steps="square", repeated=True,
                                   last_step_gray=True).scores
    results = tables["results"]
    rows = results[(results.metric == "region_perturbation") & (results.order == "morf")
                   & (results.composite == "tutorial") & (results["first"] == 1.0)
                   & (results["second"] == 0.0)].set_index("sample_id")
    assert np.allclose(rows.loc[ex.sample_ids, "value"].to_numpy(), expected.numpy(), atol=1e-4)


def test_layer_relevance_curves_start_at_one(run):
    """Figure 3.2: Σ R / f_y(x) is 1 at the output and finite through the layers; one curve per
    image at the default and the optimal points, labelled by layer."""
    _, config, tables = run
    curves = tables["curves"]
    rows = curves[curves.metric == "layer_conservation"]
    assert set(rows.setting) == {"default", "best MoRF", "best LRF"}
    assert np.allclose(rows[rows.point == 0].value, 1.0)
    assert np.isfinite(rows.value).all()
    labels = rows.groupby("point").label.unique()
    assert list(labels.iloc[0]) == ["output"] and list(labels.iloc[-1]) == ["input"]
    assert len(labels) == 16 + 2  # output, the input of VGG-16's 16 conv/linear layers, pixels
    per_curve = rows.groupby(["composite", "setting", "sample_id"]).size()
    assert len(per_curve) == len(config.composites) * 3 * config.n_samples


def test_vanilla_grid_point_records_every_map(run):
    """Non-finite maps are recorded (finite = 0), never dropped silently; only finite maps get
    conservation and AUC rows."""
    run_dir, config, _ = run
    vanilla = config.with_overrides(["stabilisers=[vanilla]"])
    job = {s.name: s for s in lrp_grid.STUDY.stages(vanilla)}["grid"].jobs[0]
    rows = grid.grid_point_job(dict(job.config), JobContext(run_dir, "cpu", 0, job.key))
    finite = [r for r in rows["results"] if r["metric"] == "finite"]
    assert len(finite) == config.n_samples and {r["stabiliser"] for r in finite} == {"vanilla"}
    kept = {r["sample_id"] for r in finite if r["value"] == 1.0}
    auc = [r for r in rows["results"] if r["metric"] == "region_perturbation"]
    assert len(auc) == len(kept) * len(config.sorts)
    assert {r["sample_id"] for r in auc} == kept


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
    assert set(optima.index.get_level_values("order")) == {"MoRF", "LRF"}
    assert "conservation_error_median" in tables["lrp-grid-relevance"].columns
    assert (tables["lrp-grid-relevance"].finite_share == 1).all()
    assert "accuracy" in tables["lrp-grid-model"].columns


# ---------------------------------------------------------------- job keys

def grid_keys(config) -> dict[str, str]:
    stages = {s.name: s for s in lrp_grid.STUDY.stages(config)}
    return {job.label: job.key for name in ("data", "train VGG-16", "grid")
            for job in stages[name].jobs}


def test_gallery_and_other_report_keys_rerun_no_grid_point():
    """A grid job's config holds only its inputs: a changed gallery size keeps every key."""
    base = lrp_grid.STUDY.config("tiny")
    keys = grid_keys(base)
    assert keys == grid_keys(base.with_overrides(["gallery=7"]))
    assert keys == grid_keys(base.with_overrides(["gallery=0"]))
    # An extended grid keeps the keys of the points it had.
    extended = grid_keys(base.with_overrides(["grid=[0.0, 0.01, 0.1, 1.0]"]))
    assert set(keys.items()) < set(extended.items())
    # A changed input of the grid points (the patch size) changes every grid key, not the model's.
    patched = grid_keys(base.with_overrides(["patch=4"]))
    train = f"train {base.arch}"
    points = [label for label in keys if label not in ("lrp-grid data", train)]
    assert len(points) == 18 and all(patched[label] != keys[label] for label in points)
    assert patched[train] == keys[train]


def test_gallery_size_reruns_no_layer_relevance(run):
    run_dir, config, _ = run
    jobs = {j.label: j.key for j in grid.optimal_jobs(run_dir, config)}
    larger = {j.label: j.key
              for j in grid.optimal_jobs(run_dir, config.with_overrides(["gallery=3"]))}
    relevance = [label for label in jobs if label.startswith("layer relevance")]
    assert len(relevance) == len(config.composites) * len(config.stabilisers)
    assert all(jobs[label] == larger[label] for label in relevance)
    assert all(jobs[label] != larger[label] for label in jobs if label.startswith("optimal"))


# ---------------------------------------------------------------- building blocks

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

    dg = grid.composite_spec("decreasing_gamma", 0.003, 0.007, "zennit")
    assert all(11 <= m <= 17 for m in modules_with(dg, "gamma", 0.003))
    assert all(18 <= m <= 24 for m in modules_with(dg, "gamma", 0.007))
    assert dg.ranges[0].rule == "zbox" and dg.ranges[0].params == {"low": 0.0, "high": 1.0}
    tu = grid.composite_spec("tutorial", 0.003, 0.007, "tutorial")
    assert all(1 <= m <= 16 for m in modules_with(tu, "gamma", 0.003))
    assert all(17 <= m <= 30 for m in modules_with(tu, "epsilon", 0.007))
    assert tu.stabiliser == "tutorial"
    assert len(PAPER_GRID) == 16 and PAPER_GRID[0] == 0.0
    assert PAPER_GRID[1] == pytest.approx(1e-4) and PAPER_GRID[-1] == 1.0
    method = grid.grid_method("tutorial", "vanilla", 0.5, 0.25, (0.0, 1.0))
    assert method.key == "lrp_tutorial" and method.factors == {
        "composite": "tutorial", "stabiliser": "vanilla", "first": 0.5, "second": 0.25}


def test_composites_address_the_same_layers_of_vgg16_bn():
    """Layer indices count conv/linear layers, so each composite range covers the same
    convolutions on ``vgg16_bn`` as on ``vgg16`` (same order and weight shapes), and Zennit's
    batch-norm canonizer keeps the explained logits: Σ R at the output is f_y(x) of the
    unmodified model, which is left as found."""
    plain, bn = (build(arch, 10, 3, 32, 0.125) for arch in ("vgg16", "vgg16_bn"))
    shapes = [[tuple(m.weight.shape) for _, m in linear_layers(net)] for net in (plain, bn)]
    assert shapes[0] == shapes[1] and len(shapes[1]) == 16
    torch.manual_seed(0)
    for m in bn.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    model = make_explainable(bn).eval()
    x, y = torch.rand(3, 3, 32, 32), torch.tensor([0, 4, 9])
    with torch.no_grad():
        logits = model(x).gather(1, y[:, None]).flatten()
    for composite in ("decreasing_gamma", "tutorial"):
        method = grid.grid_method(composite, "zennit", 0.1, 0.2, (0.0, 1.0))
        sums = relevance_by_layer(model, x, y, method.name, **method.params)
        assert torch.allclose(sums["output"], logits, rtol=1e-4, atol=1e-5)
        assert torch.isfinite(grid.lrp_maps(model, x, y, method)).all()
    with torch.no_grad():
        assert torch.equal(model(x).gather(1, y[:, None]).flatten(), logits)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_the_fast_backend_gives_zennits_maps_at_every_kind_of_grid_point(arch, monkeypatch):
    """The study's default LRP backend (``fast``) against Zennit on the study's model (folded
    normalisation, batch norms with trained-like statistics): every composite and stabiliser at
    grid values including 0, to 1e-5 of each map's largest |value|; no fallback."""
    calls = []
    fast = lrp_fast.fast_lrp_maps
    monkeypatch.setattr(lrp_fast, "fast_lrp_maps", lambda *a, **k: calls.append(1) or fast(*a, **k))
    torch.manual_seed(0)
    model = build(arch, 10, 3, 32, 0.125)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.bias.data.uniform_(-0.1, 0.1)
    model = make_explainable(fold_normalisation(model)).eval().double()
    x, y = torch.rand(3, 3, 32, 32, dtype=torch.float64), torch.tensor([0, 4, 9])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastLRPFallback)
        for composite in ("decreasing_gamma", "tutorial"):
            for stabiliser in ("zennit", "tutorial"):
                for first, second in ((0.0, 0.0), (0.1, 0.001), (1.0, 0.25)):
                    maps = [grid.lrp_maps(model, x, y, grid.grid_method(
                        composite, stabiliser, first, second, (0.0, 1.0), backend=backend))
                        for backend in ("fast", "zennit")]
                    scale = maps[1].flatten(1).abs().amax(1).view(-1, 1, 1, 1)
                    assert ((maps[0] - maps[1]).abs() <= 1e-5 * scale).all(), (
                        composite, stabiliser, first, second)
    assert len(calls) == 2 * 2 * 3  # the fast path ran for every point


def test_decreasing_gamma_layers_of_the_text():
    """Sections 4.1.1/4.3 and the public code put γ₁ on VGG-16 modules 1–17 (layers 1–7, no
    γ = 0.5 group); table 4.2 on 11–17 (layers 5–7) after γ = 0.5 on 2–10."""
    table = grid.composite_spec("decreasing_gamma", 0.003, 0.007, "zennit")
    text = grid.composite_spec("decreasing_gamma", 0.003, 0.007, "zennit",
                               decreasing_gamma_layers="text")
    spans = {spec_name: [(r.first, r.last, r.params.get("gamma")) for r in spec.ranges[1:]]
             for spec_name, spec in (("table", table), ("text", text))}
    assert spans["table"] == [(1, 4, 0.5), (5, 7, 0.003), (8, 10, 0.007), (11, None, 0.0)]
    assert spans["text"] == [(1, 7, 0.003), (8, 10, 0.007), (11, None, 0.0)]
    config = lrp_grid.STUDY.config("tiny", ["decreasing_gamma_layers=text"])
    jobs = {s.name: s for s in lrp_grid.STUDY.stages(config)}["grid"].jobs
    assert {j.config.get("layers") for j in jobs if j.config["composite"] == "decreasing_gamma"} \
        == {"text"}
    assert all("layers" not in j.config for j in jobs if j.config["composite"] == "tutorial")


def test_vanilla_stabiliser_zero_denominators_are_recorded_per_sample():
    """Section 2.1.5: without a guard, 0/0 gives NaN (fig. 2.5); that sample's map is NaN and
    recorded as not finite, the others are kept. Positive weights and no biases: every
    denominator is > 0 for a positive image and 0 for a black one."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3, bias=False))
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    # a black image (every denominator 0), a positive one (none), one black in a corner that
    # fills a pooling window (0/0 there only: partly NaN), another positive one
    corner = torch.rand(3, 8, 8) + 0.1
    corner[:, :5, :5] = 0
    x = torch.stack([torch.zeros(3, 8, 8), torch.rand(3, 8, 8) + 0.1, corner, torch.rand(3, 8, 8)])
    y = torch.tensor([1, 2, 2, 0])
    by_backend = {}
    for backend in ("zennit", "fast"):  # Zennit's batch is refused and redone per sample
        vanilla = grid.grid_method("tutorial", "vanilla", 0.0, 0.0, (0.0, 1.0), backend=backend)
        maps = by_backend[backend] = grid.lrp_maps(model.eval(), x, y, vanilla)
        assert score("finite", a=maps).values["finite"].tolist() == [0.0, 1.0, 0.0, 1.0]
        assert torch.isnan(maps[[0, 2]]).all() and torch.isfinite(maps[[1, 3]]).all()
        # LRP-0 without biases conserves: the pixels hold the explained logit.
        assert maps[1].sum() == pytest.approx(float(model(x[1:2]).detach()[0, 2]), rel=1e-4)
        zennit = grid.grid_method("tutorial", "zennit", 0.0, 0.0, (0.0, 1.0), backend=backend)
        assert torch.isfinite(grid.lrp_maps(model, x, y, zennit)).all()
    # the fast backend's batch keeps each sample's own relevance: its finite maps are Zennit's,
    # computed one sample at a time
    torch.testing.assert_close(by_backend["fast"][[1, 3]], by_backend["zennit"][[1, 3]],
                               rtol=1e-5, atol=1e-7)


def test_grid_composites_explain_the_folded_vgg():
    torch.manual_seed(0)
    model = make_explainable(fold_normalisation(build("vgg16", 10, 3, 32, 0.125).eval()))
    x = torch.rand(2, 3, 32, 32)
    method = grid.grid_method("tutorial", "zennit", 0.25, 0.25, (0.0, 1.0))
    maps = grid.lrp_maps(model, x, torch.tensor([0, 1]), method)
    assert torch.isfinite(maps).all() and maps.shape == x.shape


def test_folder_mode_reads_images_and_explains_the_given_class(tmp_path, monkeypatch):
    """The folder reader path: images of ``explain_class`` in [0, 1], targets = target_index,
    the (here tiny, randomly initialised) VGG-16 with its normalisation folded in."""
    import cv2

    rng = np.random.default_rng(0)
    for name in ("axolotl", "castle"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "images" / name / f"{i}.png"),
                        rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    tiny = build("vgg16", 1000, 3, 32, 0.0625)
    monkeypatch.setattr(grid, "build", lambda *a, **k: tiny)
    config = lrp_grid.STUDY.config("tiny", [
        f"folder={tmp_path / 'images'}", "weights=imagenet", "explain_class=axolotl",
        "target_index=29", "n_samples=2", "data.size=32"])
    assert [s.name for s in lrp_grid.STUDY.stages(config)] == ["grid", "optima"]
    ex = grid.samples_and_model(grid.job_inputs(config), JobContext(tmp_path, "cpu", 0, "k"))
    assert ex.x.shape == (2, 3, 32, 32) and ex.x.min() >= 0 and ex.x.max() <= 1
    assert ex.y.tolist() == [29, 29] and len(ex.sample_ids) == 2 and ex.dataset == "folder"
    assert isinstance(ex.model.features[0][0], ConstantPad)


def test_config_errors():
    with pytest.raises(ConfigError, match="weights"):
        lrp_grid.STUDY.config("tiny", ["folder=/tmp"])
    with pytest.raises(ConfigError, match="grid"):
        lrp_grid.STUDY.config("tiny", ["grid=[-1.0]"])
    with pytest.raises(ConfigError, match="stabilisers"):
        lrp_grid.STUDY.config("tiny", ["stabilisers=[none]"])
    with pytest.raises(ConfigError, match="train"):
        lrp_grid.STUDY.config("tiny", ["train={epochs: 3}"])


# ---------------------------------------------------------------- analysis on hand-made frames

def auc_rows(values: dict[tuple[str, float, float], list[float]], composite="tutorial",
             stabiliser="zennit") -> pd.DataFrame:
    """Region-perturbation AUC rows: (order, first, second) -> one value per sample."""
    direction = {"morf": "lower", "lrf": "higher", "random": "none"}
    return pd.DataFrame([
        {"metric": "region_perturbation", "output": "auc", "composite": composite,
         "stabiliser": stabiliser, "order": order, "first": first, "second": second,
         "sample_id": f"s{i}", "value": v, "direction": direction[order]}
        for (order, first, second), vs in values.items() for i, v in enumerate(vs)])


GRID = {("morf", 0.0, 0.0): [0.2, 0.4], ("morf", 0.0, 1.0): [0.1, 0.1],
        ("morf", 1.0, 0.0): [0.5, 0.7], ("lrf", 0.0, 0.0): [0.6, 0.8],
        ("lrf", 0.0, 1.0): [0.9, 0.9], ("lrf", 1.0, 0.0): [0.3, 0.5],
        ("random", 0.0, 0.0): [0.4, 0.4], ("random", 0.0, 1.0): [0.4, 0.4]}


def test_auc_grid_means_over_samples_per_point_and_order():
    rows = pd.concat([auc_rows(GRID), pd.DataFrame([{"metric": "conservation", "output":
                                                      "conservation_error", "value": 9.0}])])
    out = analysis.auc_grid(rows).set_index(["order", "first", "second"])
    assert out.loc[("morf", 0.0, 0.0), "auc"] == pytest.approx(0.3)
    assert out.loc[("lrf", 1.0, 0.0), "auc"] == pytest.approx(0.4)
    assert (out.n == 2).all() and len(out) == len(GRID)
    assert out.loc[("morf", 0.0, 0.0), "direction"] == "lower"
    assert analysis.auc_grid(rows.iloc[:0]).empty


def test_optima_follow_each_rows_direction():
    """MoRF: the lowest mean AUC; LRF: the highest; random ranks nothing."""
    best = analysis.optima(analysis.auc_grid(auc_rows(GRID))).set_index("order")
    assert set(best.index) == {"morf", "lrf"}
    assert (best.loc["morf", "first"], best.loc["morf", "second"]) == (0.0, 1.0)
    assert best.loc["morf", "auc"] == pytest.approx(0.1)
    assert (best.loc["lrf", "first"], best.loc["lrf", "second"]) == (0.0, 1.0)
    assert best.loc["lrf", "auc"] == pytest.approx(0.9)
    # The direction is read from the rows, never from the order's name.
    flipped = auc_rows(GRID).assign(direction=lambda f: f.direction.replace(
        {"lower": "higher", "higher": "lower"}))
    best = analysis.optima(analysis.auc_grid(flipped)).set_index("order")
    assert best.loc["morf", "first"] == 1.0 and best.loc["lrf", "first"] == 1.0


def test_optima_per_composite_and_stabiliser():
    rows = pd.concat([auc_rows({("morf", 0.0, 0.0): [0.1], ("morf", 1.0, 1.0): [0.2]}),
                      auc_rows({("morf", 0.0, 0.0): [0.3], ("morf", 1.0, 1.0): [0.2]},
                               composite="decreasing_gamma")])
    best = analysis.optima(analysis.auc_grid(rows)).set_index("composite")
    assert best.loc["tutorial", "first"] == 0.0 and best.loc["decreasing_gamma", "first"] == 1.0


def test_auc_spread_is_zero_for_a_flat_contour():
    out = analysis.auc_spread(analysis.auc_grid(auc_rows(GRID))).set_index("order")
    assert out.loc["random", "spread"] == 0.0 and out.loc["random", "points"] == 2
    assert out.loc["morf", "lowest"] == pytest.approx(0.1)
    assert out.loc["morf", "highest"] == pytest.approx(0.6)
    assert out.loc["morf", "spread"] == pytest.approx(0.5)


def check_rows(stabiliser: str, finite: list[float], errors: list[float]) -> pd.DataFrame:
    common = {"composite": "tutorial", "stabiliser": stabiliser, "first": 0.0, "second": 0.0}
    rows = [{**common, "metric": "finite", "output": "finite", "sample_id": f"s{i}",
             "value": v} for i, v in enumerate(finite)]
    for i, e in enumerate(errors):
        rows += [{**common, "metric": "conservation", "output": name, "sample_id": f"s{i}",
                  "value": value} for name, value in (("conservation_error", e),
                                                      ("relevance_min", -float(i)),
                                                      ("relevance_max", 10.0 * i))]
    return pd.DataFrame(rows)


def test_map_checks_share_of_finite_maps_and_conservation():
    rows = pd.concat([check_rows("zennit", [1, 1, 1], [0.1, 0.2, 0.9]),
                      check_rows("vanilla", [0, 1, 0, 0], [0.5])])
    out = analysis.map_checks(rows).set_index("stabiliser")
    assert out.loc["zennit", "finite_share"] == 1.0 and out.loc["zennit", "maps"] == 3
    assert out.loc["vanilla", "finite_share"] == pytest.approx(0.25)
    assert out.loc["vanilla", "maps"] == 4
    assert out.loc["zennit", "conservation_error_median"] == pytest.approx(0.2)
    assert out.loc["zennit", "conservation_error_max"] == pytest.approx(0.9)
    assert out.loc["zennit", "relevance_min"] == pytest.approx(-1.0)
    assert out.loc["zennit", "relevance_max"] == pytest.approx(10.0)
    # No finite map at all: the share is still there, the conservation columns are NaN.
    none = analysis.map_checks(check_rows("vanilla", [0, 0], [])).set_index("stabiliser")
    assert none.loc["vanilla", "finite_share"] == 0.0 and none.loc["vanilla", "maps"] == 2


def test_layer_ratios_mean_per_setting_and_position():
    common = {"metric": "layer_conservation", "curve": "relevance_ratio",
              "composite": "tutorial", "stabiliser": "zennit", "first": 0.25, "second": 0.25}
    rows = pd.DataFrame([
        {**common, "setting": setting, "sample_id": sid, "point": k, "x": float(k),
         "label": label, "value": value}
        for setting, scale in (("default", 1.0), ("best MoRF", 2.0))
        for sid, shift in (("a", 0.0), ("b", 0.2))
        for k, (label, value) in enumerate((("output", 1.0), ("features.2", 0.9 + shift),
                                            ("input", (0.5 + shift) * scale)))])
    out = analysis.layer_ratios(rows)
    default = out[out.setting == "default"]
    assert default.layer.tolist() == ["output", "features.2", "input"]
    assert default.ratio.tolist() == pytest.approx([1.0, 1.0, 0.6])
    assert (out.n == 2).all()
    best = out[out.setting == "best MoRF"].set_index("layer")
    assert best.loc["input", "ratio"] == pytest.approx(1.2)


def test_model_scores_pivot_the_classification_summaries():
    rows = pd.DataFrame([{"metric": "classification", "model_id": "vgg16", "output": o,
                          "value": v} for o, v in (("accuracy", 0.5), ("balanced_accuracy",
                                                                       0.4))]
                        + [{"metric": "other", "model_id": "vgg16", "output": "x", "value": 1}])
    out = analysis.model_scores(rows)
    assert out.loc["vgg16", "accuracy"] == 0.5 and "x" not in out.columns


@pytest.mark.slow
def test_tiny_preset(tmp_path):
    set_quiet(True)
    config = lrp_grid.STUDY.config("tiny")
    summaries = run_study(lrp_grid.STUDY, config, tmp_path, device="cpu")
    assert all(not s.failed for s in summaries.values())
    assert {name: len(s.done) for name, s in summaries.items()} == {
        "data": 1, "train VGG-16": 1, "grid": 18, "optima": 4}
    section = lrp_grid.report_section(tmp_path)
    assert len(section.subsections) == len(config.composites)


def test_every_row_carries_the_registry_direction(run):
    """Issue 11: every row the study writes ranks correctly with no name parsing."""
    assert_rankable(run[0] if isinstance(run, tuple) else run)


# ---------------------------------------------------------------- findings on hand-made frames

FINDINGS_GRID = [0.0, 0.01, 0.07197, 0.1389, 0.5179, 1.0]
DIRECTIONS = {"morf": "lower", "lrf": "higher", "random": "none"}


def best_at(point: tuple[float, float], order: str):
    """AUC that is best (lowest for MoRF, highest otherwise) at ``point``, worse with the log
    distance from it, plus a per-image offset."""
    def auc(first: float, second: float, i: int) -> float:
        distance = sum(abs(np.log10(a + 1e-3) - np.log10(b + 1e-3))
                       for a, b in zip((first, second), point))
        sign = 1.0 if order == "morf" else -1.0
        return 1.0 + sign * 0.1 * distance + 0.01 * i
    return auc


def flat(first: float, second: float, i: int) -> float:
    return 0.5 + 0.01 * i


def finding_rows(auc: dict, stabilisers=("zennit",), n: int = 12, finite=None, error=None,
                 ratio: float = 0.98) -> pd.DataFrame:
    """Result rows of every grid point: ``auc[(composite, order)](first, second, i)``, the
    ``finite`` flag and ``conservation_error`` per (stabiliser, i), the default point's
    ``input_ratio``."""
    finite = finite or (lambda stabiliser, i: 1.0)
    error = error or (lambda stabiliser, i: 0.05)
    composites = sorted({c for c, _ in auc})
    rows = []
    for composite in composites:
        for stabiliser in stabilisers:
            common = {"composite": composite, "stabiliser": stabiliser}
            for first in FINDINGS_GRID:
                for second in FINDINGS_GRID:
                    point = {**common, "first": first, "second": second}
                    for i in range(n):
                        sid = f"s{i}"
                        ok = finite(stabiliser, i)
                        rows.append({**point, "metric": "finite", "output": "finite",
                                     "sample_id": sid, "value": ok, "direction": "higher"})
                        if not ok:
                            continue
                        rows.append({**point, "metric": "conservation",
                                     "output": "conservation_error", "sample_id": sid,
                                     "value": error(stabiliser, i), "direction": "lower"})
                        rows += [{**point, "metric": "region_perturbation", "output": "auc",
                                  "order": order, "sample_id": sid,
                                  "value": auc[(c, order)](first, second, i),
                                  "direction": DIRECTIONS[order]}
                                 for (c, order) in auc if c == composite]
            rows += [{**common, "first": 0.25, "second": 0.25, "metric": "layer_conservation",
                      "output": "input_ratio", "setting": "default", "sample_id": f"s{i}",
                      "value": ratio + 0.001 * i, "direction": "none"} for i in range(n)]
    return pd.DataFrame(rows)


def agreeing_auc() -> dict:
    """AUCs as document 002 reports them: decreasing-γ MoRF best at (0.072, 0.072), tutorial MoRF
    best at (0.52, 0.52) and lower than decreasing-γ, LRF best at γ = 0, random flat."""
    return {("decreasing_gamma", "morf"): best_at((0.07197, 0.07197), "morf"),
            ("decreasing_gamma", "lrf"): best_at((0.0, 0.0), "lrf"),
            ("decreasing_gamma", "random"): flat,
            ("tutorial", "morf"): lambda a, b, i: best_at((0.5179, 0.5179), "morf")(a, b, i) - 0.5,
            ("tutorial", "lrf"): lambda a, b, i: best_at((0.0, 0.5179), "lrf")(a, b, i) + 0.5,
            ("tutorial", "random"): flat}


def disagreeing_auc() -> dict:
    """The opposite everywhere: optima far from the document's, random as uneven as MoRF,
    tutorial worse than decreasing-γ."""
    return {("decreasing_gamma", "morf"): best_at((1.0, 1.0), "morf"),
            ("decreasing_gamma", "lrf"): best_at((1.0, 1.0), "lrf"),
            ("decreasing_gamma", "random"): best_at((1.0, 0.0), "morf"),
            ("tutorial", "morf"): lambda a, b, i: best_at((0.0, 0.01), "morf")(a, b, i) + 0.5,
            ("tutorial", "lrf"): lambda a, b, i: best_at((1.0, 1.0), "lrf")(a, b, i) - 0.5,
            ("tutorial", "random"): best_at((0.0, 1.0), "morf")}


def run_claims(results: pd.DataFrame, accuracy: float = 0.9, overrides=()) -> dict[str, list]:
    config = lrp_grid.STUDY.config("small", [f"grid={FINDINGS_GRID}", *overrides])
    summaries = pd.DataFrame([{"metric": "classification", "output": "accuracy",
                               "model_id": config.arch, "value": accuracy, "init": "none"}])
    out: dict[str, list] = {}
    for f in findings.claims({"results": results, "summaries": summaries}, config, "small"):
        out.setdefault(f"{f.section} | {f.document}", []).append(f)
    return out


def verdicts(found: dict[str, list]) -> dict[str, list[str]]:
    return {k: [f.verdict for f in v] for k, v in found.items()}


OPTIMUM_CLAIMS = ["4.3, fig. 4.1a | near 0 (≤ 0.3 here)", "4.3, fig. 4.1d | 0.05 ≤ γ₁ ≤ 0.3",
                  "4.3, fig. 4.1d | 0.01 ≤ γ₂ ≤ 0.2", "4.3, fig. 4.2a | 0.1 ≤ γ ≤ 1",
                  "4.3, fig. 4.2a | 0.4 ≤ ε ≤ 1", "4.3, fig. 4.2a | γ > 0 better",
                  "4.3, fig. 4.1b | γ₁ = γ₂ = 0", "4.3, fig. 4.2b | γ = 0",
                  "4.1, 4.3, fig. 4.1c | constant", "4.1, 4.3, fig. 4.2c | constant"]


def test_grid_claims_agree_and_flip():
    """Every γ/ε claim of section 4.3 (figs. 4.1, 4.2, 4.6): 'agrees' on frames built as the
    document reports, 'disagrees' on frames built the other way round."""
    agree = verdicts(run_claims(finding_rows(agreeing_auc())))
    disagree = verdicts(run_claims(finding_rows(disagreeing_auc())))
    for key in [*OPTIMUM_CLAIMS, "4.3, fig. 4.6 | tutorial better"]:
        assert agree[key] and set(agree[key]) == {"agrees"}, (key, agree[key])
        assert set(disagree[key]) == {"disagrees"}, (key, disagree[key])
    assert len(agree["4.3, fig. 4.6 | tutorial better"]) == 2  # MoRF and LRF


def test_optimum_interval_is_the_bootstrap_of_the_argmin():
    """The interval of an optimum's coordinate holds grid values: the 2.5 % / 97.5 % quantiles of
    the argmin over resampled images; a flat MoRF contour spreads it over the grid
    (inconclusive), a sharp one pins it."""
    sharp = run_claims(finding_rows(agreeing_auc()))["4.3, fig. 4.1d | 0.05 ≤ γ₁ ≤ 0.3"][0]
    assert sharp.measured == sharp.low == sharp.high == pytest.approx(0.07197)
    assert sharp.n == 12
    rng = np.random.default_rng(1)
    noisy = {**agreeing_auc(), ("decreasing_gamma", "morf"):
             lambda a, b, i: 1.0 + rng.normal(0, 0.3)}
    found = run_claims(finding_rows(noisy))["4.3, fig. 4.1d | 0.05 ≤ γ₁ ≤ 0.3"][0]
    assert found.verdict == "inconclusive"
    assert found.low in FINDINGS_GRID and found.high in FINDINGS_GRID and found.low < found.high
    assert "bootstrap optima" in found.note


def test_stability_and_conservation_claims_flip():
    """Fig. 2.5: vanilla's maps unstable (not finite, or ΣR off f by > 10 f) against zennit's;
    eq. 2.2: mean |ΣR / f − 1| at the default point under 0.1."""
    stabilisers = ("vanilla", "zennit")
    unstable = finding_rows(agreeing_auc(), stabilisers,
                            finite=lambda s, i: float(s != "vanilla" or i % 3 == 0),
                            error=lambda s, i: 50.0 if s == "vanilla" else 0.05)
    stable = finding_rows(agreeing_auc(), stabilisers, ratio=0.5,
                          error=lambda s, i: 0.05 if s == "vanilla" else 50.0)
    key = "2.1.4–2.1.5, fig. 2.5 | vanilla unstable, zennit stable"
    overrides = ["stabilisers=[vanilla, zennit]"]
    agree, disagree = (verdicts(run_claims(r, overrides=overrides)) for r in (unstable, stable))
    assert agree[key] == ["agrees"] and disagree[key] == ["disagrees"]
    found = run_claims(unstable, overrides=overrides)[key][0]
    assert found.measured == pytest.approx(1.0) and found.n == 12
    conserved = "3, eq. 2.2, fig. 3.2 | Σ R = f(x)"
    assert agree[conserved] == ["agrees", "agrees"]
    assert disagree[conserved] == ["disagrees", "disagrees"]
    # Without vanilla maps the claim cannot be tested.
    assert verdicts(run_claims(finding_rows(agreeing_auc())))[key] == ["not testable here"]


def test_gate_miss_makes_every_claim_not_testable():
    found = run_claims(finding_rows(agreeing_auc()), accuracy=0.4)
    assert {f.verdict for fs in found.values() for f in fs} == {"not testable here"}
    note = found["4.3, fig. 4.1a | near 0 (≤ 0.3 here)"][0].note
    assert "accuracy gate 0.8 missed: " in note and " 0.400" in note
    # The gate is a config key.
    lowered = run_claims(finding_rows(agreeing_auc()), accuracy=0.4, overrides=["gate=0.3"])
    assert lowered["4.3, fig. 4.1a | near 0 (≤ 0.3 here)"][0].verdict == "agrees"


def test_range_claims_need_grid_values_inside_and_outside():
    """A grid with nothing in [0.05, 0.3] (the tiny preset's {0, 0.01, 1}) cannot place the
    optimum there: not testable, never a vacuous 'disagrees'."""
    results = finding_rows(agreeing_auc())
    coarse = results[results["first"].isin([0.0, 0.01, 1.0])
                     & results["second"].isin([0.0, 0.01, 1.0])]
    found = run_claims(coarse)
    refined = found["4.3, fig. 4.1d | 0.05 ≤ γ₁ ≤ 0.3"][0]
    assert refined.verdict == "not testable here" and "holds no value inside" in refined.note


def test_findings_of_a_pretrained_model_have_no_gate():
    config = lrp_grid.STUDY.config("tiny", ["folder=/tmp", "weights=imagenet",
                                            f"grid={FINDINGS_GRID}"])
    assert findings.model_gate(pd.DataFrame(columns=["metric", "output", "model_id", "value"]),
                               config) is None
    found = findings.claims({"results": finding_rows(agreeing_auc()),
                             "summaries": pd.DataFrame(columns=["metric", "output", "model_id",
                                                                "value"])}, config, "custom")
    assert {f.verdict for f in found} >= {"agrees"}
    assert all("no accuracy gate" in f.note for f in found if f.verdict != "not testable here")


def test_bootstrap_weights_equal_a_literal_resampling_loop():
    values = np.random.default_rng(0).normal(size=(7, 5))
    weights = findings.bootstrap_weights(7, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    for b in range(findings.N_BOOT):
        idx = (rng.random(7) * 7).astype(np.intp)
        assert np.allclose(weights[b] @ values, values[idx].mean(0))


def test_in_range_bounds_are_inclusive():
    assert findings.in_range(0.05, 0.3, 0.05, 0.3) == "agrees"
    assert findings.in_range(0.0, 0.0, 0.0, 0.0) == "agrees"
    assert findings.in_range(0.5, 1.0, 0.05, 0.3) == "disagrees"
    assert findings.in_range(0.0, 0.01, 0.05, 0.3) == "disagrees"
    assert findings.in_range(0.01, 0.5, 0.05, 0.3) == "inconclusive"
    assert findings.in_range(np.nan, 0.5, 0.05, 0.3) == "not testable here"


def test_study_registers_its_findings(run):
    """The shrunken run (tiny: near chance) yields every claim, each 'not testable here' (gate
    missed) or, where an ingredient is absent, with the reason."""
    run_dir, config, _ = run
    found = lrp_grid.STUDY.findings(run_dir, "tiny")
    assert found and {f.study for f in found} == {"lrp-grid"}
    assert all(f.verdict == "not testable here" and f.note for f in found)
    gate_ = findings.model_gate(read_results(run_dir, "summaries"), config)
    section = lrp_grid.STUDY.report_section(run_dir)
    assert section.text.startswith("ACCURACY GATE MISSED") == (not gate_.passed)
    assert not gate_.passed  # the tiny model is near chance: the section says so first
