"""The cells study (document 001): its analysis on hand-made frames, and a shrunken tiny run end to
end, checked against the definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from contract import assert_rankable
from torch import nn

from salbench.config import ConfigError
from salbench.explain import explain
from salbench.metrics import STANDARD, channel_adjust, soft_five_band, stratify
from salbench.models import spec_of
from salbench.results import read_results
from salbench.runtime import set_quiet
from salbench.studies import cells
from salbench.studies.base import run_study
from salbench.studies.cells import analysis, findings, grid
from salbench.studies.cells.report import read_scores
from salbench.studies.jobs import load_dataset, load_model, select_samples

# ---------------------------------------------------------------- analysis on hand-made frames

FIVE_BAND = "soft_five_band"


def score_rows(values: dict, *, architecture="alexnet", branch=0, added=0, method="saliency",
               schedule="standard", true=(), predicted=()) -> list[dict]:
    """``results`` rows of one model and method: ``values[output]`` lists one value per sample."""
    rows = []
    for output, per_sample in values.items():
        for i, value in enumerate(per_sample):
            rows.append({"study": "cells", "model_id": f"{architecture}+{added}-b{branch}",
                         "method": method, "metric": FIVE_BAND, "output": output,
                         "sample_id": str(i), "value": value, "architecture": architecture,
                         "branch": branch, "added_conv_layers": added, "mode": "regular",
                         "schedule": schedule, "true": true[i] if true else 0,
                         "predicted": predicted[i] if predicted else 0})
    return rows


def curve_rows(curves: dict, *, architecture="alexnet", branch=0, added=0, method="saliency",
               schedule="standard") -> list[dict]:
    """``curves`` rows: ``curves[name]`` is a [samples, thresholds] list of lists."""
    rows = []
    for name, per_sample in curves.items():
        for i, values in enumerate(per_sample):
            rows += [{"study": "cells", "model_id": f"{architecture}-b{branch}",
                      "method": method, "metric": FIVE_BAND, "curve": name, "sample_id": str(i),
                      "point": m, "x": float(m), "label": f"t{m}", "value": v,
                      "architecture": architecture, "branch": branch,
                      "added_conv_layers": added, "schedule": schedule}
                     for m, v in enumerate(values)]
    return rows


def accuracy_rows(architecture, base, branches, added=0) -> list[dict]:
    rows = [{"model_id": f"{architecture}-base", "metric": "classification", "output": "accuracy",
             "value": base, "architecture": architecture, "mode": "continuous",
             "added_conv_layers": added, "branch": np.nan}]
    rows += [{"model_id": f"{architecture}-b{b}", "metric": "classification",
              "output": "accuracy", "value": v, "architecture": architecture, "mode": "regular",
              "added_conv_layers": added, "branch": b} for b, v in enumerate(branches)]
    rows.append({**rows[-1], "output": "balanced_accuracy", "value": 0.0})
    return rows


def test_branch_accuracy_is_the_mean_and_population_sd_over_branches_only():
    summaries = pd.DataFrame(accuracy_rows("resnet", 0.9, [0.8, 0.6])
                             + accuracy_rows("alexnet", 0.5, [0.3, 0.3, 0.6])
                             + accuracy_rows("alexnet", 0.1, [0.1], added=2))
    out = analysis.branch_accuracy(summaries).set_index("architecture")
    assert list(out.index) == ["resnet", "alexnet"]
    assert out.loc["resnet", "base_accuracy"] == pytest.approx(0.9)
    assert out.loc["resnet", "mean_accuracy"] == pytest.approx(0.7)
    assert out.loc["resnet", "sd"] == pytest.approx(0.1)  # ddof 0: sqrt(((0.1)² + (0.1)²) / 2)
    assert out.loc["alexnet", "mean_accuracy"] == pytest.approx(0.4)  # no base, no variant
    assert out.loc["alexnet", "n"] == 3


def test_training_table_attaches_each_accuracy_to_its_architecture():
    settings = pd.DataFrame({"architecture": ["resnet", "alexnet", "vgg"],
                             "model": ["ResNet-34", "AlexNet", "VGG-16"], "H=W": [512, 224, 224]})
    accuracy = pd.DataFrame({"architecture": ["alexnet", "resnet"], "base_accuracy": [0.5, 0.9],
                             "mean_accuracy": [0.4, 0.7], "sd": [0.1, 0.0], "n": [3, 2]})
    table = analysis.training_table(settings, accuracy).set_index("model")
    assert table.loc["ResNet-34", "<Acc.>"] == 0.7 and table.loc["AlexNet", "<Acc.>"] == 0.4
    assert table.loc["AlexNet", "base acc."] == 0.5 and table.loc["ResNet-34", "H=W"] == 512
    assert table.loc["VGG-16", "branches"] == 0 and np.isnan(table.loc["VGG-16", "<Acc.>"])


def test_pr_points_are_sample_means_and_sds_of_the_chosen_schedule_and_stat():
    rows = (score_rows({"recall_avg": [0.1, 0.3], "precision_avg": [0.8, 0.6],
                        "recall_best": [0.5, 0.5], "precision_best": [0.9, 0.9]})
            + score_rows({"recall_avg": [0.9, 0.9], "precision_avg": [0.9, 0.9]},
                         schedule="clamped")
            + score_rows({"recall_avg": [0.7, 0.7], "precision_avg": [0.7, 0.7]}, added=3)
            + score_rows({"recall_avg": [0.2, 0.2], "precision_avg": [0.4, 0.4]}, branch=1))
    points = analysis.pr_points(pd.DataFrame(rows), "standard", "avg")
    assert len(points) == 2  # two branches; clamped and the variant left out
    first = points[points.branch == 0].iloc[0]
    assert pytest.approx(0.2) == first.R and pytest.approx(0.7) == first.P
    assert first.R_sd == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert first.n == 2
    best = analysis.pr_points(pd.DataFrame(rows), "standard", "best").iloc[0]
    assert (pytest.approx(0.5), pytest.approx(0.9)) == (best.R, best.P)
    clamped = analysis.pr_points(pd.DataFrame(rows), "clamped", "avg")
    assert clamped.R.tolist() == [pytest.approx(0.9)]


def test_branch_means_average_over_branches():
    points = pd.DataFrame({"architecture": ["a", "a", "a"], "model_id": ["a-b0", "a-b1", "a-b0"],
                           "method": ["saliency", "saliency", "deeplift"],
                           "R": [0.2, 0.4, 0.9], "P": [0.6, 0.8, 0.1]})
    means = analysis.branch_means(points).set_index("method")
    assert means.loc["saliency", "R"] == pytest.approx(0.3)
    assert means.loc["saliency", "P"] == pytest.approx(0.7)
    assert means.loc["saliency", "branches"] == 2 and means.loc["deeplift", "branches"] == 1


def test_roc_points_average_each_threshold_over_samples():
    fpr = [[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]]
    recall = [[0.0, 0.5, 1.0], [0.2, 0.7, 0.8]]
    rows = (curve_rows({"fpr": fpr, "recall": recall, "precision": [[9, 9, 9], [9, 9, 9]]})
            + curve_rows({"fpr": [[1, 1, 1]], "recall": [[1, 1, 1]]}, schedule="clamped")
            + curve_rows({"fpr": [[1, 1, 1]], "recall": [[1, 1, 1]]}, added=1))
    roc = analysis.roc_points(pd.DataFrame(rows))
    assert roc.m.tolist() == [0, 1, 2] and roc.label.tolist() == ["t0", "t1", "t2"]
    assert np.allclose(roc.FPR, [0.2, 0.3, 0.4])
    assert np.allclose(roc.R, [0.1, 0.6, 0.9])
    assert roc.n.tolist() == [2, 2, 2]


def test_per_sample_table_places_samples_in_their_shards_with_class_names():
    rows = score_rows({o: [0.1 * k, 0.2 * k] for k, o in enumerate(analysis.SCORES, 1)},
                      true=(3, 0), predicted=(1, 0))
    rows = [{**r, "sample_id": {"0": "17", "1": "4"}[r["sample_id"]]} for r in rows]
    table = analysis.per_sample_table(pd.DataFrame(rows), shard_size=5,
                                      classes=["c0", "c1", "c2", "c3"])
    assert table.sample_id.tolist() == ["4", "17"]  # sorted by shard and position
    assert table.shard.tolist() == [0, 3] and table.position.tolist() == [4, 2]
    assert table.true.tolist() == ["c0", "c3"] and table.predicted.tolist() == ["c0", "c1"]
    assert table.loc[1, "accuracy_avg"] == pytest.approx(0.1)
    assert table.loc[1, "fpr_avg"] == pytest.approx(0.7)
    assert table.loc[1, "density_avg"] == pytest.approx(0.8)


def test_per_class_points_group_by_the_predicted_class():
    rows = (score_rows({"recall_avg": [0.1, 0.3, 0.8], "precision_avg": [0.5, 0.7, 0.2]},
                       added=2, true=(0, 0, 1), predicted=(0, 1, 1))
            + score_rows({"recall_avg": [0.9], "precision_avg": [0.9]}, added=0))
    points = analysis.per_class_points(pd.DataFrame(rows))
    assert points.added_conv_layers.tolist() == [2, 2]
    by_class = points.set_index("predicted")
    assert by_class.loc[0, "R_avg"] == pytest.approx(0.1)
    assert by_class.loc[1, "R_avg"] == pytest.approx(0.55)
    assert by_class.loc[1, "P_avg"] == pytest.approx(0.45)
    assert by_class.loc[1, "n"] == 2
    means = analysis.class_means(points)
    assert means.R_avg.tolist() == [pytest.approx(0.325)] and means.classes.tolist() == [2]


def test_channel_panels_sum_normalise_and_stratify():
    a = np.zeros((3, 2, 2), np.float32)
    a[0, 0, 0], a[1, 0, 0] = 1.0, 1.0  # h = 2 -> 1 after /max|h|: band 2
    a[2, 0, 1] = 0.8  # 0.4 after normalising: band 1 at t0 (0.3 < h <= 0.5)
    a[2, 1, 0] = -2.0  # -1: band -2
    panels = analysis.channel_panels(a)
    assert len(panels) == 6 and np.array_equal(panels[1], a[1])
    assert np.allclose(panels[3], [[1.0, 0.4], [-1.0, 0.0]])
    assert np.allclose(panels[4], [[1.0, 0.5], [-1.0, 0.0]])  # t0 = [-0.5, -0.3, 0.3, 0.5]
    assert np.allclose(panels[5], [[1.0, 1.0], [-1.0, 0.0]])  # t55: 0.4 > t2 = 0.225


# ---------------------------------------------------------------- findings on hand-made frames

METHODS = ["saliency", "input_x_gradient", "deeplift", "guided_backprop", "guided_gradcam",
           "deconvolution", "gradient_shap", "deeplift_shap"]
FAMILY_ARCH = {"resnet": "resnet34", "alexnet": "alexnet", "vgg": "vgg16_bn"}
N_SAMPLES, N_BRANCHES, N_THRESHOLDS = 12, 3, 6


def agreeing_world() -> dict:
    """Per (family, method) the mean of every score, chosen so that every claim agrees: Saliency
    leads recall (most on AlexNet), deconvolution has high recall, low precision and starts its
    ROC line with many FPs, Saliency's FPR is above DeepLIFT's, ResNet's maps are the sparsest
    and AlexNet's the densest, clamping moves AlexNet and VGG, every ROC line is poor."""
    world = {}
    for fam, base in (("resnet", 0.10), ("alexnet", 0.20), ("vgg", 0.15)):
        density = {"resnet": 0.05, "alexnet": 0.20, "vgg": 0.10}[fam]
        clamped = {"resnet": (0.51, 0.50), "alexnet": (0.70, 0.40), "vgg": (0.65, 0.45)}[fam]
        for m in METHODS:
            recall = {"saliency": 0.3 + base, "deconvolution": 0.2 + base}.get(m, base)
            fpr = {"saliency": 0.3, "deeplift": 0.1, "deeplift_shap": 0.1}.get(m, 0.15)
            world[fam, m] = {
                "standard/recall_avg": recall,
                "standard/precision_avg": 0.1 if m == "deconvolution" else 0.4,
                "standard/recall_best": 0.5, "standard/precision_best": 0.5,
                "standard/fpr_avg": fpr, "standard/density_avg": density,
                "clamped/recall_best": clamped[0], "clamped/precision_best": clamped[1],
                "fpr_start": 0.4 if m == "deconvolution" else 0.1, "roc_gap": 0.1}
    return world


def world_tables(world: dict, accuracy: dict | None = None, seed: int = 0
                 ) -> dict[str, pd.DataFrame]:
    """``results``, ``curves`` and ``summaries`` frames of a cells run whose per-sample values are
    the world's means plus noise (sd 0.01); ROC lines rise from (fpr_start, fpr_start + roc_gap)
    by 0.05 per threshold in both FPR and recall. ``accuracy``: branch id -> test accuracy
    (default 0.9 for all)."""
    rng = np.random.default_rng(seed)
    results, curves = [], []
    for (fam, method), means in world.items():
        for b in range(N_BRANCHES):
            common = {"study": "cells", "metric": FIVE_BAND, "model_id": f"{fam}-b{b}",
                      "architecture": fam, "branch": b, "added_conv_layers": 0, "method": method}
            for key, mean in means.items():
                if "/" not in key:
                    continue
                schedule, output = key.split("/")
                results += [{**common, "schedule": schedule, "output": output,
                             "sample_id": str(k), "value": mean + rng.normal(0, 0.01)}
                            for k in range(N_SAMPLES)]
            for k in range(N_SAMPLES):
                for m in range(N_THRESHOLDS):
                    fpr = means["fpr_start"] + 0.05 * m + rng.normal(0, 0.01)
                    for curve, value in (("fpr", fpr), ("recall", fpr + means["roc_gap"])):
                        curves.append({**common, "schedule": "standard", "curve": curve,
                                       "sample_id": str(k), "point": m, "value": value})
    accuracy = accuracy or {}
    summaries = [{"study": "cells", "model_id": f"{fam}-b{b}", "metric": "classification",
                  "output": "accuracy", "value": accuracy.get(f"{fam}-b{b}", 0.9)}
                 for fam in FAMILY_ARCH for b in range(N_BRANCHES)]
    return {"results": pd.DataFrame(results), "curves": pd.DataFrame(curves),
            "summaries": pd.DataFrame(summaries)}


def world_config(**overrides):
    models = {fam: {"arch": arch, "width": 0.25, "size": 128} for fam, arch in FAMILY_ARCH.items()}
    return cells.STUDY.config("small", [f"branches={N_BRANCHES}", f"n_samples={N_SAMPLES}",
                                        f"models={models}", *overrides])


def verdicts(world: dict, accuracy: dict | None = None) -> dict[str, tuple[str, str]]:
    found = findings.claims(world_tables(world, accuracy), world_config(), "small")
    assert len(found) == len(findings.CLAIMS)
    return {c.key: (f.verdict, f.note) for c, f in zip(findings.CLAIMS, found)}


def change(world: dict, family: str | None, method: str | None, **values) -> dict:
    """The world with ``values`` (keys with "__" for "/") set for the family's (every family's)
    method (every method)."""
    out = {k: dict(v) for k, v in world.items()}
    for (fam, m), means in out.items():
        if family in (None, fam) and method in (None, m):
            means.update({k.replace("__", "/"): v for k, v in values.items()})
    return out


def test_every_claim_agrees_on_the_agreeing_world():
    found = verdicts(agreeing_world())
    assert {k: v for k, (v, _) in found.items() if v != "agrees"} == {}
    assert "VGG = vgg16_bn for vgg16, random init" in found["resnet-sparsest"][1]


DISAGREEING = [
    ("saliency-alexnet-top", "vgg", "saliency", {"standard__recall_avg": 0.9}),
    *((f"saliency-recall-{fam}", fam, "saliency", {"standard__recall_avg": 0.0})
      for fam in FAMILY_ARCH),
    *((f"deconvolution-recall-{fam}", fam, "deconvolution", {"standard__recall_avg": 0.0})
      for fam in FAMILY_ARCH),
    *((f"deconvolution-precision-{fam}", fam, "deconvolution", {"standard__precision_avg": 0.9})
      for fam in FAMILY_ARCH),
    *((f"saliency-fpr-{fam}", fam, "saliency", {"standard__fpr_avg": 0.0})
      for fam in FAMILY_ARCH),
    ("resnet-sparsest", "resnet", None, {"standard__density_avg": 0.5}),
    ("vgg-sparser-than-alexnet", "vgg", None, {"standard__density_avg": 0.5}),
    ("alexnet-recall-over-vgg", "vgg", None, {"standard__recall_avg": 0.6}),
    ("clamping-alexnet-vgg", "resnet", None, {"clamped__recall_best": 0.9}),
    ("roc-poor-region", None, None, {"roc_gap": 0.6}),
    ("deconvolution-starts-fp", "vgg", "deconvolution", {"fpr_start": 0.0}),
]


@pytest.mark.parametrize("key, family, method, values", DISAGREEING,
                         ids=[d[0] for d in DISAGREEING])
def test_each_claim_flips_to_disagrees(key, family, method, values):
    found = verdicts(change(agreeing_world(), family, method, **values))
    assert found[key][0] == "disagrees", found[key]


def test_disagreeing_worlds_cover_every_claim():
    assert {d[0] for d in DISAGREEING} == {c.key for c in findings.CLAIMS}


def test_roc_poor_region_is_inconclusive_or_disagrees_near_the_bound():
    """Half the ROC lines poor: the share 0.5 sits on the bound, never a firm agreement."""
    world = change(agreeing_world(), "resnet", None, roc_gap=0.6)
    world = change(world, "alexnet", None, roc_gap=0.6)
    world = change(world, "vgg", "saliency", roc_gap=0.6)
    world = change(world, "vgg", "deeplift", roc_gap=0.6)
    # 16 + 2 of 24 lines not poor: share 6/24.
    assert verdicts(world)["roc-poor-region"][0] == "disagrees"


def test_a_branch_under_the_gate_makes_its_findings_not_testable():
    found = verdicts(agreeing_world(), accuracy={"vgg-b1": 0.5})
    for c in findings.CLAIMS:
        verdict, note = found[c.key]
        if "vgg" in c.families:
            assert verdict == "not testable here", c.key
            assert "vgg-b1 0.500" in note
        else:
            assert verdict == "agrees", c.key


def test_a_missing_method_or_architecture_is_not_testable():
    world = {k: v for k, v in agreeing_world().items() if k[1] != "deconvolution"}
    found = verdicts(world)
    assert found["deconvolution-recall-vgg"][0] == "not testable here"
    assert "deconvolution not run" in found["deconvolution-recall-vgg"][1]
    assert found["saliency-recall-vgg"][0] == "agrees"
    world = {k: v for k, v in agreeing_world().items() if k[0] != "resnet"}
    found = verdicts(world)
    assert found["resnet-sparsest"][0] == "not testable here"
    assert found["vgg-sparser-than-alexnet"][0] == "agrees"


def test_the_measured_values_follow_their_definitions():
    tables = world_tables(agreeing_world())
    found = {c.key: f for c, f in zip(findings.CLAIMS,
                                      findings.claims(tables, world_config(), "small"))}
    r = tables["results"]
    std = r[r.schedule == "standard"]

    def mean(fam, output, method=None, frame=std):
        rows = frame[(frame.architecture == fam) & (frame.output == output)]
        return rows[rows.method == method].value.mean() if method else \
            rows.groupby("method").value.mean().mean()

    density = {fam: mean(fam, "density_avg") for fam in FAMILY_ARCH}
    assert found["resnet-sparsest"].measured == pytest.approx(
        min(density["vgg"], density["alexnet"]) - density["resnet"])
    recall = {m: mean("vgg", "recall_avg", m) for m in METHODS}
    others = [v for m, v in recall.items() if m not in ("saliency", "deconvolution")]
    assert found["deconvolution-recall-vgg"].measured == pytest.approx(
        recall["deconvolution"] - np.mean(others))
    assert found["saliency-recall-vgg"].measured == pytest.approx(
        recall["saliency"] - max(v for m, v in recall.items() if m != "saliency"))
    f = found["saliency-alexnet-top"]
    assert f.low <= f.measured <= f.high and f.n == 3 * N_BRANCHES * N_SAMPLES
    assert found["saliency-recall-vgg"].n == N_BRANCHES * N_SAMPLES


def test_the_interval_counts_branch_spread():
    """Branches that disagree widen the interval: the bootstrap resamples branches too."""
    rng = np.random.default_rng(0)
    tight = rng.normal(0, 0.01, (4, 30, 1))
    spread = tight + np.array([-0.3, -0.1, 0.1, 0.3])[:, None, None]

    def width(values):
        cube = findings.Cube(tuple("abcd"), tuple(map(str, range(30))), ("m",), {"k": values})
        _, low, high, n = findings.two_way_interval(
            {"x": cube}, lambda d: d.point("x", "k")["m"], np.random.default_rng(1))
        assert n == 120
        return high - low

    assert width(spread) > 10 * width(tight)


# ---------------------------------------------------------------- a shrunken run end to end

SHRUNK = [
    "n=120", "shard_size=2", "branches=2", "n_samples=6", "gallery=2",
    ("models={alexnet: {arch: alexnet, width: 0.125, size: 32, continuous: {epochs: 1, lr: 0.001},"
     " regular: {epochs: 1, lr: 0.001, early_stop_limit: 4, val_shards: 2}}}"),
    "alexnet_added_layers=[1]", "variant_width=0.125", "variant_size=32",
    "variant_continuous={epochs: 1}", "variant_regular={epochs: 1, early_stop_limit: 4}",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    set_quiet(True)
    run_dir = tmp_path_factory.mktemp("cells")
    config = cells.STUDY.config("tiny", SHRUNK)
    summaries = run_study(cells.STUDY, config, run_dir, device="cpu")
    assert all(not s.failed for s in summaries.values()), summaries
    return run_dir, config, read_scores(run_dir)


def test_rows_for_every_model_method_schedule_output_sample(run):
    _, config, results = run
    models = {f"alexnet-b{b}" for b in range(config.branches)} | {"alexnet+1"}
    assert set(results.model_id) == models
    methods = {m.key for m in config.methods}
    assert len(methods) == 8
    counts = results.groupby(["model_id", "method", "schedule", "output"]).size()
    assert len(counts) == len(models) * len(methods) * 2 * len(analysis.SCORES)
    assert (counts == config.n_samples).all()
    variant = results[results.model_id == "alexnet+1"]
    assert set(variant.added_conv_layers) == {1} and set(variant.branch) == {0}
    table1 = results[results.model_id != "alexnet+1"]
    assert set(table1.added_conv_layers) == {0} and set(table1.architecture) == {"alexnet"}
    assert set(results.direction[results.output == "fpr_avg"]) == {"lower"}
    assert set(results.direction[results.output == "density_avg"]) == {"none"}
    higher = ~results.output.isin(["fpr_avg", "density_avg"])
    assert set(results.direction[higher]) == {"higher"}
    values = results.value.to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()


def test_best_is_at_least_average(run):
    _, _, results = run
    wide = results.pivot_table(index=["model_id", "method", "schedule", "sample_id"],
                               columns="output", values="value")
    for score in ("accuracy", "precision", "recall"):
        assert (wide[f"{score}_best"] >= wide[f"{score}_avg"] - 1e-12).all()


def test_scores_are_those_of_the_predicted_class(run):
    """Document 001, 3.3: heatmaps of the predicted class. Recompute one method's scores."""
    run_dir, config, results = run
    samples = select_samples(run_dir, load_dataset(run_dir, grid.data_spec(config, 32)),
                             config.n_samples)
    model = load_model(run_dir, "alexnet-b0", "cpu")
    with torch.no_grad():
        predicted = model(samples.x).argmax(1)
    rows = results[(results.model_id == "alexnet-b0") & (results.method == "input_x_gradient")
                   & (results.schedule == "standard")
                   & (results.output == "recall_best")].set_index("sample_id")
    ids = samples.meta.sample_id.astype(str).tolist()
    assert rows.loc[ids, "predicted"].tolist() == predicted.tolist()
    a = explain(model, samples.x, predicted, "input_x_gradient")
    expected = soft_five_band(a, samples.masks).recall_best
    assert np.allclose(rows.loc[ids, "value"].to_numpy(), expected.numpy(), atol=1e-6)
    # density_avg: the share of pixels in a nonzero band, one stratified map per threshold
    h = channel_adjust(a)
    literal = np.mean([(stratify(h, t1, t2) != 0).double().mean((1, 2)).numpy()
                       for t1, t2 in zip(STANDARD.t1, STANDARD.t2)], axis=0)
    density = results[(results.model_id == "alexnet-b0")
                      & (results.method == "input_x_gradient") & (results.schedule == "standard")
                      & (results.output == "density_avg")].set_index("sample_id")
    assert np.allclose(density.loc[ids, "value"].to_numpy(), literal, atol=1e-9)


def test_branches_start_from_the_base_and_differ(run):
    """Section 3.2: each branch is trained from the base model with its own seed."""
    run_dir, _, _ = run
    base = load_model(run_dir, "alexnet-base", "cpu").state_dict()
    b0 = load_model(run_dir, "alexnet-b0", "cpu").state_dict()
    b1 = load_model(run_dir, "alexnet-b1", "cpu").state_dict()
    key = next(k for k in base if k.endswith("weight"))
    assert not torch.equal(b0[key], b1[key])
    assert not torch.equal(b0[key], base[key])


def test_variant_has_its_added_layer_and_factors(run):
    run_dir, _, _ = run
    variant = load_model(run_dir, "alexnet+1", "cpu")
    plain = load_model(run_dir, "alexnet-b0", "cpu")
    assert spec_of(variant).added_conv_layers == 1

    def convs(model):
        return sum(isinstance(m, nn.Conv2d) for m in model.modules())

    assert convs(variant) == convs(plain) + 1
    summaries = read_results(run_dir, "summaries")
    accuracy = summaries[summaries.output == "accuracy"].set_index("model_id")
    assert accuracy.loc["alexnet+1-base", "mode"] == "continuous"
    assert accuracy.loc["alexnet+1", "added_conv_layers"] == 1
    assert accuracy.loc["alexnet-b1", "branch"] == 1
    assert accuracy.loc["alexnet-base", "added_conv_layers"] == 0


def test_report_section(run):
    run_dir, config, _ = run
    section = cells.report_section(run_dir)
    names = {f.name for f in section.figures}
    assert {"cells-fig3A", "cells-fig3B", "cells-fig3C", "cells-fig4",
            "cells-channels-alexnet", "cells-alexnet-added"} <= names
    tables = {t.name: t.data for t in section.tables}
    table1 = tables["cells-table1"]
    summaries = read_results(run_dir, "summaries")
    accuracy = summaries[(summaries.output == "accuracy")
                         & summaries.model_id.isin(["alexnet-b0", "alexnet-b1"])].value
    assert table1.loc["AlexNet", "<Acc.>"] == pytest.approx(accuracy.mean())
    assert table1.loc["AlexNet", "branches"] == config.branches
    per_sample = tables["cells-per-sample"]
    assert {"shard", "position", "true", "predicted"} <= set(per_sample.columns)
    dataset = load_dataset(run_dir, grid.data_spec(config, 32))
    shard_of = dict(zip(dataset.meta.sample_id.astype(str), dataset.meta.shard))
    assert all(shard_of[s] == sh for s, sh in zip(per_sample.sample_id, per_sample["shard"]))
    curves = read_results(run_dir, "curves")
    roc = analysis.roc_points(curves)
    assert len(roc) == config.branches * 8 * len(STANDARD.t1)  # m = 0 … 55
    assert set(roc.n) == {config.n_samples}
    full = pd.read_csv(run_dir / "report" / "cells-per-sample-full.csv")
    assert len(full) == (config.branches + 1) * 8 * 2 * config.n_samples


def test_findings_of_a_chance_level_run_are_not_testable(run):
    """The shrunk run has AlexNet only, at chance: every finding is not testable, and says why."""
    run_dir, config, _ = run
    found = cells.STUDY.findings(run_dir, "tiny")
    assert len(found) == len(findings.CLAIMS)
    assert {f.verdict for f in found} == {"not testable here"}
    alexnet_only = [f for c, f in zip(findings.CLAIMS, found) if c.families == ("alexnet",)]
    assert alexnet_only and all("gate 0.8 missed: alexnet-b0" in f.note for f in alexnet_only)
    assert all("no scored" in f.note for c, f in zip(findings.CLAIMS, found)
               if "resnet" in c.families)
    assert {"study", "claim", "section", "document", "measured", "low", "high", "n", "verdict",
            "scale"} <= set(found[0].to_dict())
    section = cells.report_section(run_dir)
    gate = section.lead_tables[0].data
    assert set(gate.index) == {"alexnet-b0", "alexnet-b1"}
    assert (gate["passes"] == "NO — MISSED").all() and "ACCURACY GATE MISSED" in section.text


def test_config_errors():
    with pytest.raises(ConfigError, match="branches"):
        cells.STUDY.config("tiny", ["branches=0"])
    with pytest.raises(ConfigError, match="arch"):
        cells.STUDY.config("tiny", ["models={x: {arch: lenet}}"])
    with pytest.raises(ConfigError, match="alexnet_added_layers"):
        cells.STUDY.config("tiny", ["alexnet_added_layers=[0]"])
    with pytest.raises(ConfigError, match="epoch"):
        cells.STUDY.config("tiny", ["variant_regular={epoch: 2}"])


def test_job_configs_hold_only_their_inputs():
    """A changed gallery size reruns no training or scoring job."""
    config = cells.STUDY.config("tiny")
    other = cells.STUDY.config("tiny", ["gallery=3"])
    keys = {s.name: {j.key for j in s.jobs} for s in cells.STUDY.stages(config)}
    changed = {s.name: {j.key for j in s.jobs} for s in cells.STUDY.stages(other)}
    assert [n for n in keys if keys[n] != changed[n]] == ["gallery"]


@pytest.mark.slow
def test_tiny_preset(tmp_path):
    set_quiet(True)
    config = cells.STUDY.config("tiny")
    summaries = run_study(cells.STUDY, config, tmp_path, device="cpu")
    assert all(not s.failed for s in summaries.values())
    section = cells.report_section(tmp_path)
    assert len(section.figures) >= 4 + len(config.models)


def test_every_row_carries_the_registry_direction(run):
    """Issue 11: every row the study writes ranks correctly with no name parsing."""
    assert_rankable(run[0] if isinstance(run, tuple) else run)
