"""Study ``gad`` (document 004): rows for every model × method × output × metric, RS against its
definition, RC ≤ 1 structural on one channel only, the analysis behind tables 1-2 and the
findings on hand-made frames (verdicts flip with the frames), job keys, and figures 5-6."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from contract import assert_rankable
from typer.testing import CliRunner

from salbench.cli import app
from salbench.config import ConfigError
from salbench.explain import explain
from salbench.explain.gad import importance_mask
from salbench.metrics import complexity_ratio, hull_mask
from salbench.report import figures
from salbench.results import read_results
from salbench.results.findings import verdict_counts
from salbench.runtime import JobContext, set_quiet
from salbench.studies import gad as G
from salbench.studies.base import run_study
from salbench.studies.gad import analysis as A
from salbench.studies.gad import findings as GF
from salbench.studies.gad import grid
from salbench.studies.gad.config import METRICS, GADConfig
from salbench.studies.jobs import load_dataset, load_model

SHRUNK = ["data.n=64", "train.epochs=1", "alphas=[0,8]", "support.epochs=1", "n_per_class=2",
          "gallery=1", "methods=[{name: saliency, label: S}, {name: guided_backprop, label: GB}]"]
RC, RS_GAD, RS_SUP = METRICS


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, GADConfig]:
    set_quiet(True)
    cfg = G.STUDY.config("tiny", SHRUNK)
    out = tmp_path_factory.mktemp("gad") / "run"
    summaries = run_study(G.STUDY, cfg, out, device="cpu")
    failed = {name: s.failed for name, s in summaries.items() if s.failed}
    assert not failed, failed
    return out, cfg


# ---------------------------------------------------------------- the run's rows

def test_rows_for_every_model_method_output_and_metric(run):
    """One row per image for every metric, RS included: an undefined RS is a NaN row, never a
    missing one."""
    out, cfg = run
    rows = read_results(out)
    rows = rows[rows.study == G.NAME]
    assert set(rows.metric) == set(METRICS)
    n_images = 2 * cfg.n_per_class
    for spec in cfg.models:
        for method in cfg.methods:
            for role, output in enumerate(cfg.classes, start=1):
                part = rows[(rows.model_id == grid.model_id(spec)) & (rows.method == method.key)
                            & (rows.role == role)]
                assert (part.class_index == output).all()
                for metric in METRICS:
                    assert (part.metric == metric).sum() == n_images
    assert set(rows.direction[rows.metric == RC]) == {"lower"}
    assert set(rows.direction[rows.metric == RS_GAD]) == {"higher"}
    assert (rows.keep == cfg.keep).all()
    assert (rows.value.dropna() >= 0).all()


def test_occlusion_sensitivity_matches_its_definition(run):
    """RS(I, M_GAD, a) and RS(I, M_Orig − M_GAD, a) of one image recomputed literally from eq. 2
    with the cached supports."""
    out, cfg = run
    spec, method = cfg.models[1], cfg.methods[0]
    mid = grid.model_id(spec)
    model = load_model(out, mid, "cpu")
    dataset = load_dataset(out, cfg.data)
    samples = grid.pair_samples(dataset, cfg.classes, cfg.n_per_class)
    job = {**cfg.model_dump(include=set(grid.GAD_SETTING)), "model_id": mid}
    support = grid.fit_supports(model, dataset, job, JobContext(out, "cpu", 0, "test"))
    x, a = samples.x[:1], cfg.classes[0]
    orig = explain(model, x, torch.tensor([a]), method.name)
    gad = explain(model, x, torch.tensor([a]), "gad", support=support, base=method.name,
                  importance=cfg.importance, threshold=cfg.threshold)
    m_gad = hull_mask(gad, keep=cfg.keep)[0]
    m_sup = (hull_mask(orig, keep=cfg.keep)[0] - m_gad).clamp_min(0)
    with torch.no_grad():
        before = model(x)[0, a].item()
        expected = {metric: abs(before - model(x * (1 - m))[0, a].item()) / m.sum().item()
                    if m.sum() > 0 else math.nan
                    for metric, m in ((RS_GAD, m_gad), (RS_SUP, m_sup))}
    rows = read_results(out)
    sid = samples.meta["sample_id"].astype(str).iloc[0]
    for metric, value in expected.items():
        stored = rows[(rows.model_id == mid) & (rows.method == method.key)
                      & (rows.metric == metric) & (rows.sample_id == sid) & (rows.role == 1)]
        assert stored.value.item() == pytest.approx(value, rel=1e-5, abs=1e-12, nan_ok=True)


def test_supports_are_cached_one_per_alpha(run):
    """The gad and gallery jobs share the supports: one checkpoint per α, trained once."""
    out, cfg = run
    for spec in cfg.models:
        files = list(grid.support_dir(out, grid.model_id(spec)).glob("*.safetensors"))
        assert len(files) == len(cfg.alphas)


def test_tables_1_and_2_and_figures_5_and_6(run):
    out, cfg = run
    section = G.STUDY.report_section(out)
    tables = {t.name: t.data for t in section.tables}
    table1, table2 = tables["gad-table1"], tables["gad-table2"]
    keys = [m.key for m in cfg.methods]
    assert list(table1.columns) == keys and list(table2.columns) == keys
    for spec in cfg.models:
        model = grid.model_id(spec)
        assert list(table1.loc[model].index) == ["Orig.1", "GAD 1 (ours)", "Orig.2",
                                                 "GAD 2 (ours)"]
        assert list(table2.loc[model].index) == ["Sup.1", "GAD 1 (ours)", "Sup.2",
                                                 "GAD 2 (ours)"]
        for role in (1, 2):
            total = table1.loc[(model, f"Orig.{role}")] + table1.loc[(model, f"GAD {role} (ours)")]
            assert (total == 2 * cfg.n_per_class).all()
        assert np.isfinite(table2.loc[(model, "GAD 1 (ours)")].to_numpy(float)).all()
    names = {f.name for f in section.figures}
    for spec in cfg.models:
        assert {f"gad-fig5-{grid.model_id(spec)}", f"gad-fig6-{grid.model_id(spec)}"} <= names


# ---------------------------------------------------------------- jobs

def _job_configs(cfg: GADConfig) -> dict[str, list[dict]]:
    return {s.name: [dict(j.config) for j in s.jobs] for s in grid.stages(cfg)}


def test_job_configs_hold_only_their_inputs():
    """A changed gallery size reruns no scoring job; a changed hull fraction reruns no gallery
    job; one scoring job per trained model."""
    base = G.STUDY.config("tiny")
    jobs = _job_configs(base)
    assert {k: len(v) for k, v in jobs.items()} == {"data": 1, "train": 2, "gad": 2, "gallery": 2}
    gallery = _job_configs(base.model_copy(update={"gallery": 3}))
    assert gallery["gad"] == jobs["gad"] and gallery["gallery"] != jobs["gallery"]
    keep = _job_configs(base.model_copy(update={"keep": 0.25}))
    assert keep["gallery"] == jobs["gallery"] and keep["gad"] != jobs["gad"]
    assert keep["train"] == jobs["train"]
    assert not _job_configs(base.model_copy(update={"gallery": 0}))["gallery"]


def test_least_activated_picks_the_lowest_own_output_per_class():
    logits = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, -1.0], [2.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1, 0])
    assert grid.least_activated(logits, y, [0, 1], 2) == [1, 4, 3, 2]


# ---------------------------------------------------------------- analysis on hand-made frames

def _frame(rows: list[tuple]) -> pd.DataFrame:
    """Result rows from ``(model, method, metric, role, sample, value)``; output a = role + 4."""
    return pd.DataFrame([{"model_id": m, "method": k, "metric": metric, "role": float(role),
                          "class_index": float(role + 4), "sample_id": s, "value": v}
                         for m, k, metric, role, s, v in rows])


def test_complexity_counts_rc_below_one_for_gad_and_at_least_one_for_orig():
    """Section 6.1: RC < 1 is a point for GAD, RC ≥ 1 (ties included) for the original; an
    undefined RC is counted apart."""
    values = {"S": [0.5, 0.99, 1.0, 1.5, math.nan], "GB": [0.2, 0.3, 0.4, 0.5, 2.0]}
    rows = [("vgg", k, RC, 1, f"s{i}", v) for k, vs in values.items() for i, v in enumerate(vs)]
    rows += [("vgg", "S", RC, 2, "s0", 3.0), ("vgg", "S", RS_GAD, 1, "s0", 0.1)]
    counts = A.complexity_counts(_frame(rows)).set_index(["method", "role"])
    s1 = counts.loc[("S", 1)]
    assert (s1.n, s1.gad, s1.orig, s1.undefined) == (5, 2, 2, 1)
    assert s1.rc_mean == pytest.approx(np.mean([0.5, 0.99, 1.0, 1.5]))
    assert (counts.loc[("GB", 1)].gad, counts.loc[("GB", 1)].orig) == (4, 1)
    assert (counts.loc[("S", 2)].gad, counts.loc[("S", 2)].orig) == (0, 1)
    assert counts.loc[("S", 2)].class_index == 6
    table = A.complexity_table(counts.reset_index(), ["S", "D", "GB"])
    assert list(table.columns) == ["S", "GB"]
    assert list(table.index) == [("vgg", "Orig.1"), ("vgg", "GAD 1 (ours)"), ("vgg", "Orig.2"),
                                 ("vgg", "GAD 2 (ours)")]
    assert table.loc[("vgg", "GAD 1 (ours)"), "S"] == 2
    assert table.loc[("vgg", "Orig.1"), "GB"] == 1
    assert table.loc[("vgg", "Orig.2"), "S"] == 1 and table.loc[("vgg", "GAD 2 (ours)"), "S"] == 0


def test_sensitivity_table_keeps_the_gad_and_supplementary_rows_apart():
    """Table 2: GAD r rows hold RS(I, M_GAD, a) × 10², Sup.r rows RS(I, M_Orig − M_GAD, a) × 10²;
    an undefined RS leaves the mean and is counted."""
    rows = [("vgg", "S", RS_GAD, 1, "s0", 0.5), ("vgg", "S", RS_GAD, 1, "s1", 0.3),
            ("vgg", "S", RS_SUP, 1, "s0", 0.1), ("vgg", "S", RS_SUP, 1, "s1", math.nan),
            ("vgg", "S", RS_GAD, 2, "s0", 0.02), ("vgg", "S", RS_SUP, 2, "s0", 0.04),
            ("vgg", "S", RC, 1, "s0", 0.9)]
    means = A.sensitivity_means(_frame(rows))
    table = A.sensitivity_table(means, ["S"])
    assert list(table.index.get_level_values("row")) == ["Sup.1", "GAD 1 (ours)", "Sup.2",
                                                         "GAD 2 (ours)"]
    assert table.loc[("vgg", "GAD 1 (ours)"), "S"] == pytest.approx(40.0)
    assert table.loc[("vgg", "Sup.1"), "S"] == pytest.approx(10.0)
    assert table.loc[("vgg", "GAD 2 (ours)"), "S"] == pytest.approx(2.0)
    assert table.loc[("vgg", "Sup.2"), "S"] == pytest.approx(4.0)
    undefined = A.sensitivity_table(means, ["S"], column="undefined", scale=1)
    assert undefined.loc[("vgg", "Sup.1"), "S"] == 1
    assert undefined.loc[("vgg", "GAD 1 (ours)"), "S"] == 0
    sup1 = means[(means["mask"] == "supplementary") & (means.role == 1)].iloc[0]
    assert (sup1.n, sup1.undefined) == (1, 1)


def test_sensitivity_comparison_counts_images_where_gad_matters_more():
    """Section 5 expects RS(GAD) > RS(Sup) per image; a pair with an undefined RS counts as
    undefined, not as a failure or a success."""
    rows = [("res", "IG", RS_GAD, 1, "s0", 0.5), ("res", "IG", RS_SUP, 1, "s0", 0.1),
            ("res", "IG", RS_GAD, 1, "s1", 0.1), ("res", "IG", RS_SUP, 1, "s1", 0.4),
            ("res", "IG", RS_GAD, 1, "s2", 0.3), ("res", "IG", RS_SUP, 1, "s2", math.nan)]
    paired = A.paired_sensitivity(_frame(rows))
    assert list(paired.columns) == A.GROUP + ["sample_id", "GAD", "supplementary"]
    assert paired.set_index("sample_id").loc["s1", "supplementary"] == 0.4
    comparison = A.sensitivity_comparison(paired).iloc[0]
    assert (comparison.n, comparison.gad_larger, comparison.undefined) == (2, 1, 1)
    assert comparison.fraction == pytest.approx(0.5)
    assert comparison.mean_difference == pytest.approx((0.4 - 0.3) / 2)
    table = A.comparison_table(A.sensitivity_comparison(paired), ["IG"])
    assert table.loc[("res", "RS(GAD 1) > RS(Sup.1)"), "IG"] == pytest.approx(0.5)


def test_tables_of_an_empty_frame_are_empty():
    empty = _frame([])
    empty = empty.reindex(columns=["model_id", "method", "metric", "role", "class_index",
                                   "sample_id", "value"])
    assert A.complexity_table(A.complexity_counts(empty), ["S"]).empty
    assert A.sensitivity_table(A.sensitivity_means(empty), ["S"]).empty


def test_mask_contour_grid_draws_one_outline_per_mask():
    image = np.zeros((1, 8, 8))
    inner, outer = np.zeros((8, 8)), np.zeros((8, 8))
    inner[3:5, 3:5], outer[1:7, 1:7] = 1, 1
    fig = figures.mask_contour_grid([image, image], [[(outer, inner), (outer, None)],
                                                     [(None, None)]],
                                    colors=("red", "lime"), labels=("original", "GAD"),
                                    col_labels=["S", "GB"])
    axes = fig.axes
    assert [len(ax.collections) for ax in axes] == [2, 1, 0, 0]
    assert not axes[3].axison
    with pytest.raises(ValueError, match="colours"):
        figures.mask_contour_grid([image], [[(outer, inner, outer)]], colors=("red", "lime"))


# ---------------------------------------------------------------- config and presets

def test_config_rejects_a_pair_of_one_class():
    with pytest.raises(ConfigError, match="classes"):
        G.STUDY.config("tiny", ["classes=[1,1]"])


def test_config_rejects_a_pair_the_cells_data_does_not_draw():
    with pytest.raises(ConfigError, match="among the cells drawn"):
        G.STUDY.config("tiny", ["classes=[0,1]"])
    assert G.STUDY.config("tiny", ["classes=[3,0]"]).classes == [3, 0]


def test_config_rejects_an_unknown_training_key_before_running():
    with pytest.raises(ConfigError, match="support"):
        G.STUDY.config("tiny", ["support.epoch=3"])


def test_paper_preset_is_the_documents_setting():
    """Section 6: VGG16 and ResNet18, α = 0, 2, 4, 6, 8, supports by Adam lr 4e-5 for 10 epochs,
    512 images (256 per class), hulls of the most important half of the pixels."""
    cfg = G.STUDY.config("paper")
    assert [m.arch for m in cfg.models] == ["vgg16", "resnet18"]
    assert all(m.width == 1.0 for m in cfg.models)
    assert cfg.alphas == [0, 2, 4, 6, 8] and cfg.n_per_class == 256 and cfg.keep == 0.5
    support = grid.support_training(torch.nn.Linear(1, 1), cfg.support, cfg.seed)
    assert (support.optimizer, support.lr, support.epochs, support.loss) == ("adam", 4e-5, 10,
                                                                            "mse")
    assert [m.key for m in cfg.methods] == ["S", "D", "GxI", "GB", "IG"]
    for preset in ("tiny", "small"):
        G.STUDY.config(preset)


# ---------------------------------------------------------------- end to end

@pytest.mark.slow
def test_tiny_preset_runs_end_to_end(tmp_path):
    set_quiet(True)
    summaries = run_study(G.STUDY, G.STUDY.config("tiny"), tmp_path / "run", device="cpu")
    assert not any(s.failed for s in summaries.values())
    assert G.STUDY.report_section(tmp_path / "run").tables


def test_runs_on_a_user_image_folder(tmp_path):
    """Document 004 used cats-vs-dogs photographs: the same study on an ImageFolder layout."""
    set_quiet(True)
    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(20):
            img = (rng.random((40, 40, 3)) * 80).astype(np.uint8)
            cv2.circle(img, (20, 20), 8 + 6 * c, (255, 255, 255), -1)
            cv2.imwrite(str(tmp_path / "photos" / name / f"{i}.png"), img)
    root = tmp_path / "photos"
    cfg = G.STUDY.config("tiny", [
        f"data={{kind: folder, n: 1, size: 64, params: {{root: '{root}'}}}}", "classes=[0,1]",
        "train.epochs=1",
        "alphas=[0,8]", "support.epochs=1", "n_per_class=2", "gallery=1",
        "methods=[{name: saliency, label: S}]", "models=[{arch: resnet18, width: 0.125}]"])
    summaries = run_study(G.STUDY, cfg, tmp_path / "run", device="cpu")
    assert not any(s.failed for s in summaries.values())
    table1 = G.STUDY.report_section(tmp_path / "run").tables[0].data
    model = grid.model_id(cfg.models[0])
    for role in (1, 2):
        assert table1.loc[(model, f"Orig.{role}"), "S"] + \
            table1.loc[(model, f"GAD {role} (ours)"), "S"] == 4


def test_findings_of_a_run_and_the_gate_table(run):
    """Ten findings (tables 1-2, five methods each) from the run's rows; a model under the gate
    makes every finding not testable, and the section's gate table says which."""
    out, cfg = run
    found = G.STUDY.findings(out, "tiny")
    assert len(found) == 10 and {f.scale for f in found} == {"tiny"}
    tables = GF.study_tables(out)
    gate_ = GF.model_gate(tables, cfg)
    assert set(gate_.scores) == {grid.model_id(s) for s in cfg.models}
    if gate_.failing:
        assert {f.verdict for f in found} == {"not testable here"}
    section = G.STUDY.report_section(out)
    gate_table = section.lead_tables[0]
    assert gate_table.name == "gad-gate"
    assert list(gate_table.data.passes) == [m not in gate_.failing for m in gate_table.data.index]
    assert ("MISSED" in gate_table.caption) == bool(gate_.failing)
    assert section.text.startswith("ACCURACY GATE MISSED") == bool(gate_.failing)


def test_findings_command_prints_every_finding_and_its_json(run):
    """`salbench findings RUN [--json]` (issue 12): the same findings as the study's function,
    with the required keys; the text form ends with the verdict counts."""
    out, _ = run
    done = CliRunner().invoke(app, ["findings", str(out), "--json"])
    assert done.exit_code == 0, done.output
    listed = json.loads(done.stdout)
    scale = listed[0]["scale"]  # the run's (a shrunken tiny run: "custom")
    expected = G.STUDY.findings(out, scale)
    assert [f["claim"] for f in listed] == [f.claim for f in expected]
    keys = {"study", "claim", "section", "document", "measured", "low", "high", "n", "verdict",
            "scale"}
    assert all(keys <= set(f) for f in listed)
    assert [f["verdict"] for f in listed] == [f.verdict for f in expected]
    text = CliRunner().invoke(app, ["findings", str(out)])
    assert text.exit_code == 0, text.output
    counts = verdict_counts(expected)
    assert text.stdout.strip().splitlines()[-1] == (
        ", ".join(f"{n} {v}" for v, n in counts.items()) + f" ({scale})")
    heads = [line for line in text.stdout.splitlines()
             if line.startswith(tuple(f"{v}  " for v in counts))]
    assert len(heads) == len(expected)  # one block per finding, its verdict first


def test_every_row_carries_the_registry_direction(run):
    """Issue 11: every row the study writes ranks correctly with no name parsing."""
    assert_rankable(run[0] if isinstance(run, tuple) else run)


# ---------------------------------------------------------------- RC ≤ 1: structural or not

def _gad_like(a_orig: torch.Tensor, supports: list[torch.Tensor], threshold: float = 0.5
              ) -> torch.Tensor:
    """The GAD map of section 4.3 from given maps: the original kept where it and every
    support map are important (``salbench.explain.gad.importance_mask``)."""
    keep = importance_mask(a_orig, "top_fraction", threshold)
    for a in supports:
        keep &= importance_mask(a, "top_fraction", threshold)
    return a_orig * keep


@pytest.mark.parametrize("channels, can_exceed", [(1, False), (3, True)])
def test_rc_at_most_one_is_structural_only_on_one_channel(channels, can_exceed):
    """GAD keeps features (channel elements) of the original's top half; the hulls are drawn
    over pixels (|a| summed over channels). One channel: GAD's important pixels are a subset of
    the original's, RC ≤ 1 by construction. Three channels: a pixel can enter GAD's top half
    through one kept channel while the original ranks it lower by its channel sum, so RC > 1
    happens and table 1's claim can fail."""
    gen = torch.Generator().manual_seed(0)
    ratios = []
    for _ in range(60):
        a_orig = torch.randn(4, channels, 12, 12, generator=gen)
        supports = [a_orig + 0.7 * torch.randn(a_orig.shape, generator=gen) for _ in range(3)]
        ratios.append(complexity_ratio(_gad_like(a_orig, supports), a_orig, keep=0.5))
    ratios = torch.cat(ratios)
    assert bool((ratios > 1).any()) == can_exceed
    assert (ratios < 1).any()


def test_default_data_has_three_channels():
    """The defaults (and the tiny and small presets) use data on which RC ≤ 1 is not
    structural, so table 1's claim is falsifiable."""
    for preset in ("tiny", "small", "paper"):
        assert G.STUDY.config(preset).data.kind == "cells"


# ---------------------------------------------------------------- findings on hand-made frames

def _tables(cfg: GADConfig, rc: dict[str, float], rs: dict[str, tuple[float, float]],
            accuracy: float = 0.95, n_images: int = 40, seed: int = 0
            ) -> dict[str, pd.DataFrame]:
    """Result frames of every model of ``cfg``: per method key, RC around ``rc[key]`` and
    (RS(GAD), RS(Sup.)) around ``rs[key]`` (log-normal noise, per model a different RS scale),
    for both outputs; every model's test accuracy ``accuracy``."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, spec in enumerate(cfg.models):
        mid = grid.model_id(spec)
        for role, output in enumerate(cfg.classes, start=1):
            for i in range(n_images):
                common = {"model_id": mid, "role": role, "class_index": output,
                          "sample_id": f"s{i}"}
                for key, value in rc.items():
                    rows.append({**common, "method": key, "metric": RC,
                                 "value": value * rng.lognormal(0, 0.1)})
                for key, (gad, sup) in rs.items():
                    scale = 10.0 ** k
                    rows += [{**common, "method": key, "metric": RS_GAD,
                              "value": scale * gad * rng.lognormal(0, 0.3)},
                             {**common, "method": key, "metric": RS_SUP,
                              "value": scale * sup * rng.lognormal(0, 0.3)}]
    summaries = pd.DataFrame([{"model_id": grid.model_id(s), "metric": "classification",
                               "output": "accuracy", "value": accuracy} for s in cfg.models])
    return {"results": pd.DataFrame(rows), "summaries": summaries}


KEYS = ["S", "D", "GxI", "GB", "IG"]


def _verdicts(found) -> dict[tuple[str, str], str]:
    return {(f.section.split(",")[0], f.claim.rsplit("(", 1)[1].rstrip(")")): f.verdict
            for f in found}


def test_findings_agree_with_frames_that_agree():
    """RC < 1 for (nearly) every image; RS(GAD) twice RS(Sup.) for D, GxI, GB, IG; saliency's
    RS equal for both masks."""
    cfg = G.STUDY.config("small")
    tables = _tables(cfg, dict.fromkeys(KEYS, 0.6),
                     {"S": (0.1, 0.1), **dict.fromkeys(KEYS[1:], (0.2, 0.1))})
    found = GF.claims(tables, cfg, "small")
    assert len(found) == 10
    assert set(_verdicts(found).values()) == {"agrees"}
    for f in found:
        assert f.n == 40 and f.low <= f.measured <= f.high and f.scale == "small"
        assert "cells" in f.note and f.document


def test_findings_disagree_with_frames_that_disagree():
    """RC > 1 for every image; the supplementary region more influential per pixel; saliency's
    GAD region 8 times the supplementary's."""
    cfg = G.STUDY.config("small")
    tables = _tables(cfg, dict.fromkeys(KEYS, 1.6),
                     {"S": (0.8, 0.1), **dict.fromkeys(KEYS[1:], (0.1, 0.2))})
    assert set(_verdicts(GF.claims(tables, cfg, "small")).values()) == {"disagrees"}


def test_findings_are_inconclusive_at_the_bound():
    """Half the images with RC < 1; RS(GAD) = RS(Sup.) up to alternating factors; saliency's
    ratio right at the factor 2."""
    cfg = G.STUDY.config("small")
    tables = _tables(cfg, {"D": 1.0}, {"S": (0.2, 0.1), "D": (0.1, 0.1)}, n_images=20)
    rows = tables["results"]
    alternate = rows.sample_id.str[1:].astype(int) % 2 == 0
    rows.loc[(rows.metric == RC) & alternate, "value"] = 0.5
    rows.loc[(rows.metric == RC) & ~alternate, "value"] = 1.5
    # D: RS(GAD) is RS(Sup.) of the same map times 1.25 or 0.8, alternately
    sup = (rows.method == "D") & (rows.metric == RS_SUP)
    gad = (rows.method == "D") & (rows.metric == RS_GAD)
    factor = np.where(alternate[sup], 1.25, 0.8)
    rows.loc[gad, "value"] = rows.loc[sup, "value"].to_numpy() * factor
    verdicts = _verdicts(GF.claims(tables, cfg, "small"))
    assert verdicts[("6.1", "D")] == "inconclusive"
    assert verdicts[("6.2", "D")] == "inconclusive"
    assert verdicts[("6.2", "S")] == "inconclusive"


def test_a_model_under_its_gate_makes_every_finding_not_testable():
    cfg = G.STUDY.config("small")
    tables = _tables(cfg, dict.fromkeys(KEYS, 0.6),
                     {"S": (0.1, 0.1), **dict.fromkeys(KEYS[1:], (0.2, 0.1))})
    summaries = tables["summaries"]
    summaries.loc[0, "value"] = 0.5
    found = GF.claims(tables, cfg, "small")
    assert {f.verdict for f in found} == {"not testable here"}
    missing = grid.model_id(cfg.models[0])
    assert all(f"{missing} 0.500" in f.note for f in found)
    assert all(f.measured is not None for f in found)  # still measured, just not counted
    assert cfg.gate_threshold == 0.80
    passed = GF.claims(tables, cfg.model_copy(update={"accuracy_gate": 0.4}), "small")
    assert {f.verdict for f in passed} == {"agrees"}


def test_a_method_not_run_is_not_testable():
    cfg = G.STUDY.config("small", ["methods=[{name: saliency, label: S}]"])
    tables = _tables(cfg, {"S": 0.6}, {"S": (0.1, 0.1)})
    verdicts = _verdicts(GF.claims(tables, cfg, "small"))
    assert verdicts[("6.1", "S")] == "agrees"
    assert verdicts[("6.1", "GB")] == verdicts[("6.2", "IG")] == "not testable here"


def test_rs_ratio_pools_cells_geometrically_and_skips_undefined_pairs():
    """r = geometric mean over (model, output) of mean RS(GAD) / mean RS(Sup.), means over the
    images where both are defined."""
    paired = pd.DataFrame({
        "model_id": ["a", "a", "a", "b", "b"], "method": "D", "role": [1, 1, 1, 1, 1],
        "class_index": 0, "sample_id": ["s0", "s1", "s2", "s0", "s1"],
        "GAD": [2.0, 4.0, 9.0, 30.0, 10.0], "supplementary": [1.0, 2.0, math.nan, 10.0, 10.0]})
    columns = GF.ratio_columns(paired)
    assert len(columns) == 6 and len(columns[0]) == 2  # s2 has no defined pair anywhere
    assert GF.mean_ratio(*columns) == pytest.approx(math.sqrt(2.0 * 2.0))
    assert GF.log2_distance_from_one(*columns) == pytest.approx(1.0)


def test_rs_ratio_leaves_out_a_cell_without_any_defined_pair():
    """A model x output whose supplementary regions are all empty (an all-zero map) has no
    ratio; r pools the other cells instead of becoming NaN."""
    paired = pd.DataFrame({
        "model_id": ["a", "a", "b", "b"], "method": "D", "role": 1, "class_index": 0,
        "sample_id": ["s0", "s1", "s0", "s1"], "GAD": [2.0, 4.0, 5.0, 7.0],
        "supplementary": [1.0, 2.0, math.nan, math.nan]})
    columns = GF.ratio_columns(paired)
    assert GF.mean_ratio(*columns) == pytest.approx(2.0)
    assert math.isnan(GF.mean_ratio(*GF.ratio_columns(paired[paired.model_id == "b"])))
