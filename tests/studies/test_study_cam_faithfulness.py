"""The cam-faithfulness study (document 003): the analysis on hand-made frames, the job grid,
and a shrunken tiny run end to end (rows, table 1, report, rerun)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from contract import assert_rankable
from torch import nn

from salbench.config import ConfigError
from salbench.metrics import score
from salbench.results import findings as F
from salbench.results import metric_rows, query, read_results
from salbench.runtime import JobContext, set_quiet
from salbench.studies import cam_faithfulness as cf
from salbench.studies.base import run_findings, run_study
from salbench.studies.cam_faithfulness import analysis as A
from salbench.studies.cam_faithfulness import findings as cf_findings
from salbench.studies.cam_faithfulness import grid
from salbench.studies.jobs import data_job, load_dataset

# ---------------------------------------------------------------- hand-made frames


def _identity_rows(model_id: str, arch: str, head: str, choice: str, values: dict,
                   trained: bool = True) -> list[dict]:
    """``cam_identities`` rows of two images: ``values[(method, output)] = value``."""
    return [{"model_id": model_id, "arch": arch, "head": head, "trained": trained,
             "layer_choice": choice, "layer": "layer4" if choice == "last" else "layer3",
             "metric": "cam_identities", "method": method, "output": output,
             "sample_id": str(i), "value": value}
            for (method, output), value in values.items() for i in range(2)]


def _identities(distance: float, gradcam: float, hirescam: float, size: int = 2) -> dict:
    return {("Grad-CAM", "distance_to_hirescam"): distance,
            ("HiResCAM", "distance_to_hirescam"): 0.0,
            ("Grad-CAM", "contribution_error"): gradcam,
            ("HiResCAM", "contribution_error"): hirescam,
            ("HiResCAM", "feature_height"): size, ("HiResCAM", "feature_width"): size}


def test_document_claims_are_table_1_of_the_document():
    """Document 003, table 1, row by row (a mislabelled entry fails here)."""
    assert A.document_claim("gap_fc", "last") == "Equivalent; both contribute to the class score"
    assert A.document_claim("conv_flatten_fc", "last") == (
        "Not equivalent; only HiResCAM contributes to the class score")
    for head, choice in [("gap_fc", "earlier"), ("conv_flatten_fc", "earlier"),
                         ("classifier", "last"), ("classifier", "earlier")]:
        assert A.document_claim(head, choice) == (
            "Not equivalent; none contributes to the class score"), (head, choice)
    assert A.document_claim("gap_fc", "last_conv2d") is None
    assert A.agreement("x", None) == "—"
    assert A.agreement("x", "x") == "yes" and A.agreement("x", "y") == "NO"


def test_measured_verdict_reads_the_tolerance():
    errors = {"Grad-CAM": 0.2, "HiResCAM": 1e-8}
    assert A.measured_verdict(0.3, errors, 1e-4) == (
        "Not equivalent; only HiResCAM contributes to the class score")
    assert A.measured_verdict(1e-9, {"Grad-CAM": 1e-9, "HiResCAM": 1e-9}, 1e-4) == (
        "Equivalent; both contribute to the class score")
    assert A.measured_verdict(0.3, errors, 1e-9) == (
        "Not equivalent; none contributes to the class score")


def test_table_1_labels_each_row_by_its_own_model_and_layer():
    rows = (_identity_rows("r-flat", "resnet34", "conv_flatten_fc", "last",
                           _identities(0.3, 0.2, 1e-8))
            + _identity_rows("r-gap", "resnet34", "gap_fc", "last", _identities(0.0, 1e-8, 1e-8))
            + _identity_rows("r-gap", "resnet34", "gap_fc", "earlier",
                             _identities(0.5, 0.3, 0.4, size=4))
            + _identity_rows("v-dense", "vgg19", "classifier", "last",
                             _identities(0.4, 0.5, 0.6), trained=False)
            # a Flatten model whose Grad-CAM sums to the score too: disagrees with the document
            + _identity_rows("r50-flat", "resnet50", "conv_flatten_fc", "last",
                             _identities(0.3, 1e-8, 1e-8)))
    table = A.table_1(pd.DataFrame(rows), tolerance=1e-4)
    assert list(table.structure) == ["Conv – GAP – Class scores"] * 2 + [
        "Conv – Flatten – Class scores"] * 2 + ["Conv – GAP/Flatten – Dense – Class scores"]
    assert list(table.model) == ["ResNet-34 GAP", "ResNet-34 GAP", "ResNet-34 Flatten",
                                 "ResNet-50 Flatten", "VGG-19 Dense (untrained)"]
    assert list(table.layer) == ["earlier (layer3, 4×4)", "last (layer4, 2×2)",
                                 "last (layer4, 2×2)", "last (layer4, 2×2)",
                                 "last (layer4, 2×2)"]
    assert list(table.agrees) == ["yes", "yes", "yes", "NO", "yes"]
    flatten = table.iloc[2]
    assert flatten["Grad-CAM contribution error"] == 0.2
    assert flatten["HiResCAM contribution error"] == 1e-8
    assert flatten["Grad-CAM vs HiResCAM distance"] == 0.3 and flatten.n == 2


def test_model_labels_and_scores():
    frame = pd.DataFrame([
        {"model_id": "a", "arch": "resnet34", "head": "conv_flatten_fc", "trained": True},
        {"model_id": "b", "arch": "vgg19", "head": "classifier", "trained": False},
        {"model_id": "c", "arch": "resnet50", "head": "gap_fc", "trained": None}])
    assert A.model_labels(frame).to_dict() == {"a": "ResNet-34 Flatten",
                                               "b": "VGG-19 Dense (untrained)",
                                               "c": "ResNet-50 GAP"}
    summaries = pd.DataFrame([
        {"model_id": m, "arch": "resnet34", "head": h, "metric": "classification", "output": o,
         "value": v}
        for m, h, scores in [("a", "conv_flatten_fc", (0.5, 0.7)), ("b", "gap_fc", (0.25, 0.6))]
        for o, v in zip(("balanced_accuracy", "mean_auc"), scores)])
    models = A.model_scores(summaries)
    assert models.loc["a", "balanced_accuracy"] == 0.5 and models.loc["b", "mean_auc"] == 0.6
    assert models.loc["b", "head"] == "gap_fc"


def _aopc_rows() -> pd.DataFrame:
    rows = []
    for region, heatmap, base in [(8, "8x8", 0.2), (16, "4x4", 0.1)]:
        for method, shift in [("Grad-CAM", 0.0), ("HiResCAM", 0.05)]:
            rows += [{"model_id": "m", "method": method, "metric": "aopc", "output": "aopc",
                      "region": region, "heatmap": heatmap, "sample_id": str(i),
                      "value": base + shift + 0.01 * i} for i in range(3)]
    return pd.DataFrame(rows)


def test_aopc_means_and_table_order_heatmaps_by_region():
    means = A.aopc_means(_aopc_rows())
    assert list(means.heatmap) == ["4x4", "4x4", "8x8", "8x8"]  # largest regions first
    assert means.n.tolist() == [3] * 4
    np.testing.assert_allclose(means.aopc, [0.11, 0.16, 0.21, 0.26])
    table = A.aopc_table(means)
    assert list(table.index) == [("4x4", "Grad-CAM"), ("4x4", "HiResCAM"), ("8x8", "Grad-CAM"),
                                 ("8x8", "HiResCAM")]
    assert table.loc[("8x8", "HiResCAM"), "m"] == pytest.approx(0.26)


def test_morf_curves_average_the_score_curve_per_step():
    rows = [{"model_id": "m", "method": "HiResCAM", "metric": "aopc", "curve": "score",
             "region": region, "heatmap": heatmap, "sample_id": str(i), "point": k,
             "value": 1.0 - 0.1 * k + 0.1 * i}
            for region, heatmap in [(8, "8x8"), (16, "4x4")] for i in range(2) for k in range(3)]
    curves = pd.DataFrame(rows)
    mean = A.morf_curves(curves)
    assert set(mean.heatmap) == {"8x8"} and mean.step.tolist() == [0, 1, 2]
    np.testing.assert_allclose(mean.probability, [1.05, 0.95, 0.85])
    assert set(A.morf_curves(curves, heatmap="14x14").heatmap) == {"4x4"}  # largest regions


def test_sensitivity_means_per_radius():
    rows = pd.DataFrame([{"model_id": "m", "method": "Grad-CAM", "metric": "max_sensitivity",
                          "output": "max_sensitivity", "document_radius": r, "radius": r / 2,
                          "sample_id": str(i), "value": 10 * r + i}
                         for r in (0.1, 0.5) for i in range(2)])
    means = A.sensitivity_means(rows)
    assert means.document_radius.tolist() == [0.1, 0.5] and means.radius.tolist() == [0.05, 0.25]
    np.testing.assert_allclose(means.max_sensitivity, [1.5, 5.5])


class _MeanThreshold(nn.Module):
    """Class 1 iff an image's mean exceeds 0.5 (class 0 on a tie)."""

    def forward(self, x):
        mean = x.mean((1, 2, 3))
        return torch.stack([0.5 - mean, mean - 0.5], 1)


def test_haas_is_acc_ha_over_acc_x_not_its_inverse():
    """Both images are classified correctly; their HA images (map −1: x_norm · 0 = mid-grey) are
    a tie, so only class 0 stays correct: HAAS = Acc(HA) / Acc(x) = 0.5 (the inverse is 2)."""
    x = torch.stack([torch.full((1, 4, 4), 0.6), torch.full((1, 4, 4), 0.4)])
    y = torch.tensor([1, 0])
    result = score("haas", model=_MeanThreshold(), x=x, y=y, a=-torch.ones_like(x),
                   input_range=(0.0, 1.0))
    rows = metric_rows(result, dataset="d", model_id="m", method="HiResCAM",
                       sample_ids=["0", "1"])
    scores = A.haas_scores(pd.DataFrame(rows["results"]), pd.DataFrame(rows["summaries"]))
    row = scores.iloc[0]
    assert (row.acc_x, row.acc_ha, row.n) == (1.0, 0.5, 2)
    assert row.haas == pytest.approx(0.5)


def _summary(head: str, sens: tuple, aopc: tuple, haas: tuple) -> dict:
    return {"head": head, "mean max-sens HiResCAM": sens[0], "mean max-sens Grad-CAM": sens[1],
            "mean AOPC HiResCAM": aopc[0], "mean AOPC Grad-CAM": aopc[1],
            "HAAS HiResCAM": haas[0], "HAAS Grad-CAM": haas[1]}


def test_conclusion_counts_orient_each_metric():
    """Max-sensitivity: lower is better for HiResCAM; AOPC: at least as high; HAAS: above 1; the
    GAP model is not counted."""
    summary = pd.DataFrame([
        _summary("conv_flatten_fc", (1.0, 2.0), (0.3, 0.2), (1.2, 0.9)),
        _summary("conv_flatten_fc", (3.0, 2.0), (0.2, 0.2), (0.8, 0.9)),
        _summary("conv_flatten_fc", (0.5, 0.6), (0.1, 0.2), (0.9, 0.9)),
        _summary("gap_fc", (9.0, 9.0), (0.0, 0.0), (5.0, 5.0))], index=list("abcd"))
    counts = A.conclusion_counts(summary).set_index("claim")
    assert counts.k.to_dict() == {"the lower mean max-sensitivity": 2,
                                  "a mean AOPC at least as high as Grad-CAM's": 2,
                                  "a HAAS above 1": 1}
    assert (counts.n == 3).all()
    assert counts.loc["a HAAS above 1", ["document_k", "document_n"]].tolist() == [1, 8]
    text = A.count_text(counts.reset_index())
    assert text.startswith("Measured here, HiResCAM has the lower mean max-sensitivity on 2 of "
                           "3 Conv–Flatten models (document: 8 of 8);")
    assert "a HAAS above 1 on 1 of 3 (document: 1 of 8)." in text
    assert A.count_text(A.conclusion_counts(summary[summary["head"] == "gap_fc"])) == ""


def test_summary_table_means_over_sizes_and_radii():
    models = pd.DataFrame({"arch": ["resnet34"], "head": ["conv_flatten_fc"],
                           "balanced_accuracy": [0.5], "mean_auc": [0.7]}, index=["m"])
    aopc = A.aopc_means(_aopc_rows())
    sens = pd.DataFrame({"model_id": "m", "method": ["HiResCAM", "HiResCAM", "Grad-CAM"],
                         "max_sensitivity": [1.0, 3.0, 4.0]})
    haas = pd.DataFrame({"model_id": "m", "method": ["HiResCAM"], "haas": [0.8]})
    summary = A.summary_table(models, aopc, sens, haas)
    row = summary.loc["m"]
    assert row["mean AOPC HiResCAM"] == pytest.approx((0.16 + 0.26) / 2)
    assert row["mean max-sens HiResCAM"] == 2.0 and row["mean max-sens Grad-CAM"] == 4.0
    assert row["HAAS HiResCAM"] == 0.8 and "HAAS Grad-CAM" not in summary
    points = A.against_accuracy(models, aopc, "aopc")
    assert points["balanced accuracy"].tolist() == [0.5, 0.5] and len(points) == 2


# ---------------------------------------------------------------- findings on hand-made frames

FLAT, GAP = "conv_flatten_fc", "gap_fc"
TINY, GAPS = 1e-8, ("r34-gap", "r50-gap")
FLAT_ROW, GAP_ROW = "Conv – Flatten – Class scores", "Conv – GAP – Class scores"


def _theory(flat_gradcam=0.3, flat_hirescam=TINY, gap_distance=TINY, gap_cam=TINY,
            earlier=0.4, dense=0.5) -> list[dict]:
    """cam_identities rows of two Flatten, two GAP and one untrained Dense model, with the given
    per-image medians (the theorems' world by default)."""
    rows = []
    for mid, arch in (("r34-flat", "resnet34"), ("r50-flat", "resnet50")):
        rows += _identity_rows(mid, arch, FLAT, "last", _identities(flat_gradcam, flat_gradcam,
                                                                    flat_hirescam))
        rows += _identity_rows(mid, arch, FLAT, "earlier", _identities(earlier, earlier, earlier))
    for mid, arch in zip(GAPS, ("resnet34", "resnet50")):
        values = _identities(gap_distance, TINY, TINY)
        values |= {("CAM", "distance_to_hirescam"): gap_cam, ("CAM", "contribution_error"): TINY}
        rows += _identity_rows(mid, arch, GAP, "last", values)
        rows += _identity_rows(mid, arch, GAP, "earlier", _identities(earlier, earlier, earlier))
    for choice in ("last", "earlier"):
        rows += _identity_rows("v-dense", "vgg19", "classifier", choice,
                               _identities(dense, dense, dense), trained=False)
    return rows


def _scores(accuracy: dict[str, float]) -> pd.DataFrame:
    heads = {"r34-flat": FLAT, "r50-flat": FLAT, "v-flat": FLAT, "r34-gap": GAP, "r50-gap": GAP,
             "v-gap": GAP}
    return pd.DataFrame([{"model_id": m, "arch": m.split("-")[0], "head": heads[m],
                          "metric": "classification", "output": "balanced_accuracy", "value": v}
                         for m, v in accuracy.items()])


def _metric_rows(model_id: str, head: str, gradcam: dict, hirescam: dict, n: int = 6
                 ) -> list[dict]:
    """AOPC (two heatmap sizes), max-sensitivity (two radii) and HAAS rows of one model:
    ``gradcam`` / ``hirescam`` give each image's ``aopc``, ``sens``, ``ha`` (correct_ha, a
    function of the image index) and ``x`` (correct_x)."""
    rows = []
    base = {"model_id": model_id, "arch": model_id.split("-")[0], "head": head, "trained": True}
    for method, v in (("Grad-CAM", gradcam), ("HiResCAM", hirescam)):
        for i in range(n):
            common = {**base, "method": method, "sample_id": str(i)}
            jitter = 0.01 * i
            rows += [{**common, "metric": "aopc", "output": "aopc", "heatmap": h,
                      "value": v["aopc"] + jitter + 0.005 * k} for k, h in enumerate(("4x4",
                                                                                      "8x8"))]
            rows += [{**common, "metric": "max_sensitivity", "output": "max_sensitivity",
                      "document_radius": r, "value": v["sens"] * (1 + r) + jitter}
                     for r in (0.05, 0.5)]
            rows += [{**common, "metric": "haas", "output": "correct_x", "value": v["x"](i)},
                     {**common, "metric": "haas", "output": "correct_ha", "value": v["ha"](i)}]
    return rows


def _always(value):
    return lambda i: float(value)


def _maps(aopc=0.3, sens=10.0, ha=_always(0), x=_always(1)) -> dict:
    return {"aopc": aopc, "sens": sens, "ha": ha, "x": x}


ACCURACY = {"r34-flat": 0.85, "r50-flat": 0.9, "v-flat": 0.95, "r34-gap": 0.82,
            "r50-gap": 0.88, "v-gap": 0.93}


def _world(theory=None, flat=None, gap=None, accuracy=None) -> dict[str, pd.DataFrame]:
    """Hand-made results and summaries: ``flat(model_id) -> (gradcam, hirescam)`` maps of the
    three Flatten models, ``gap`` those of the three GAP models (Grad-CAM = HiResCAM)."""
    accuracy = accuracy or ACCURACY
    flat = flat or (lambda m: (_maps(), _maps(aopc=0.35, sens=7.0)))
    gap = gap or (lambda m: (_maps(aopc=0.2 + accuracy[m] - 0.8),) * 2)
    rows = list(theory if theory is not None else _theory())
    for m in ("r34-flat", "r50-flat", "v-flat"):
        rows += _metric_rows(m, FLAT, *flat(m))
    for m in ("r34-gap", "r50-gap", "v-gap"):
        rows += _metric_rows(m, GAP, *gap(m))
    return {"results": pd.DataFrame(rows), "summaries": _scores(accuracy)}


def _findings(tables, **overrides) -> dict[str, F.Finding]:
    config = cf.STUDY.config("tiny", [f"{k}={v}" for k, v in overrides.items()])
    return {f.claim: f for f in cf_findings.claims(tables, config, "tiny")}


def _one(found: dict, *words: str) -> F.Finding:
    hits = [f for claim, f in found.items() if all(w in claim for w in words)]
    assert len(hits) == 1, (words, list(found))
    return hits[0]


def test_worst_median_takes_the_least_favourable_model():
    rng = np.random.default_rng(0)
    groups = [np.array([1e-8, 2e-8, 3e-8]), np.array([0.2, 0.3, 0.4, np.nan])]
    value, low, high, n = cf_findings.worst_median(groups, "max", rng)
    assert value == pytest.approx(0.3) and 0.2 <= low <= value <= high <= 0.4 and n == 6
    value, low, high, _ = cf_findings.worst_median(groups, "min", rng)
    assert value == pytest.approx(2e-8) and low >= 1e-8 and high <= 3e-8
    assert np.isnan(cf_findings.worst_median([np.array([np.nan])], "max", rng)[0])


def test_table_1_findings_agree_with_the_theorems():
    found = _findings(_world())
    table1 = [f for f in found.values() if "gradients w.r.t." in f.claim]
    assert len(table1) == 21  # 6 rows x 3 verdicts + propositions 1-3
    assert all(f.verdict == "agrees" for f in table1), [(f.claim, f.verdict) for f in table1]
    flatten = _one(found, FLAT_ROW, "last conv layer: yes", "HiResCAM contributes")
    assert flatten.measured == pytest.approx(TINY) and flatten.n == 4
    assert flatten.document == "Not equivalent; only HiResCAM contributes to the class score"
    assert "not gated" in flatten.note and "ResNet-50" in flatten.note


def test_table_1_findings_flip_when_an_identity_breaks_or_appears():
    found = _findings(_world(theory=_theory(flat_gradcam=TINY, flat_hirescam=0.3,
                                            gap_distance=0.2, gap_cam=0.2, earlier=TINY,
                                            dense=TINY)))
    flips = [(FLAT_ROW, "layer: yes", "Grad-CAM does not contribute"),
             (FLAT_ROW, "layer: yes", "HiResCAM contributes"),
             (FLAT_ROW, "layer: yes", "not equivalent"),
             (GAP_ROW, "layer: yes", "are equivalent"), (GAP_ROW, "layer: yes", "proposition 2"),
             (GAP_ROW, "layer: yes", "proposition 3"), (GAP_ROW, "layer: no", "HiResCAM does not"),
             ("Dense", "layer: no", "not equivalent")]
    for words in flips:
        assert _one(found, *words).verdict == "disagrees", words
    # one of two GAP models breaking the identity is enough: the worst model decides
    theory = [r if not (r["model_id"] == "r50-gap" and r["layer_choice"] == "last"
                        and r["method"] == "Grad-CAM" and r["output"] == "distance_to_hirescam")
              else {**r, "value": 0.2} for r in _theory()]
    assert _one(_findings(_world(theory=theory)), GAP_ROW, "layer: yes",
                "are equivalent").verdict == "disagrees"
    # a tolerance above the differences turns every difference into an identity
    loose = _findings(_world(), **{"table1.tolerance": 0.9})
    assert _one(loose, FLAT_ROW, "layer: yes", "Grad-CAM does not").verdict == "disagrees"


def test_table_1_rows_missing_are_not_testable():
    theory = [r for r in _theory() if r["head"] != "classifier"]
    found = _findings(_world(theory=theory))
    dense = [f for f in found.values() if "Dense" in f.claim]
    assert len(dense) == 6 and {f.verdict for f in dense} == {"not testable here"}


def test_gap_heads_score_both_methods_alike_or_not():
    found = _findings(_world())
    alike = _one(found, "score them alike")
    assert alike.verdict == "agrees" and alike.measured == 0.0
    skewed = _findings(_world(gap=lambda m: (_maps(), _maps(aopc=0.5, sens=20.0))))
    assert _one(skewed, "score them alike").verdict == "disagrees"


def test_aopc_and_sensitivity_favour_hirescam_or_not():
    found = _findings(_world())
    aopc = _one(found, "AOPC favours HiResCAM")
    assert aopc.verdict == "agrees" and aopc.measured == pytest.approx(0.05) and aopc.n == 18
    sens = _one(found, "Max-Sensitivity")
    assert sens.verdict == "agrees" and sens.measured < 1
    assert "lower in 6 of 6 (model, radius) cells" in sens.note
    reverse = _findings(_world(flat=lambda m: (_maps(aopc=0.35, sens=7.0), _maps())))
    assert _one(reverse, "AOPC favours HiResCAM").verdict == "disagrees"
    assert _one(reverse, "Max-Sensitivity").verdict == "disagrees"


def test_haas_below_one_and_favouring_neither():
    half = lambda i: float(i % 2)  # noqa: E731 - half the HA images correct
    found = _findings(_world(flat=lambda m: (_maps(ha=half), _maps(ha=half))))
    assert _one(found, "HAAS values below 1").verdict == "agrees"
    assert _one(found, "HAAS values below 1").measured == pytest.approx(0.5)
    neither = _one(found, "do not favour any algorithm")
    assert neither.verdict == "agrees" and neither.measured == 0.0
    above = _findings(_world(flat=lambda m: (_maps(ha=_always(1), x=half),
                                             _maps(ha=_always(1), x=half))))
    assert _one(above, "HAAS values below 1").verdict == "disagrees"
    favours = _findings(_world(flat=lambda m: (_maps(ha=_always(0)), _maps(ha=_always(1)))))
    assert _one(favours, "do not favour any algorithm").verdict == "disagrees"


def test_aopc_rises_with_balanced_accuracy_or_falls():
    def flat(m):
        return _maps(), _maps(aopc=0.2 + ACCURACY[m] - 0.8)

    found = _findings(_world(flat=flat))
    rising = _one(found, "higher balanced accuracy")
    assert rising.verdict == "agrees" and rising.measured == pytest.approx(1.0) and rising.n == 6
    falling = _findings(_world(flat=lambda m: (_maps(), _maps(aopc=1.0 - ACCURACY[m])),
                               gap=lambda m: (_maps(aopc=1.0 - ACCURACY[m]),) * 2))
    assert _one(falling, "higher balanced accuracy").verdict == "disagrees"


def test_a_model_under_the_gate_makes_model_findings_not_testable():
    found = _findings(_world(accuracy={**ACCURACY, "r50-flat": 0.5}))
    gated = [_one(found, w) for w in ("AOPC favours HiResCAM", "Max-Sensitivity",
                                      "HAAS values below 1", "do not favour any algorithm",
                                      "higher balanced accuracy")]
    assert all(f.verdict == "not testable here" for f in gated)
    assert all("r50-flat 0.500" in f.note for f in gated)
    # theorems are not gated; a GAP model under the gate leaves the Flatten findings testable
    assert _one(found, FLAT_ROW, "layer: yes", "HiResCAM contributes").verdict == "agrees"
    gap_only = _findings(_world(accuracy={**ACCURACY, "v-gap": 0.5}))
    assert _one(gap_only, "AOPC favours HiResCAM").verdict == "agrees"
    assert _one(gap_only, "higher balanced accuracy").verdict == "not testable here"
    lower = _findings(_world(accuracy={**ACCURACY, "r50-flat": 0.5}), accuracy_gate=0.4)
    assert _one(lower, "AOPC favours HiResCAM").verdict == "agrees"


# ---------------------------------------------------------------- the grid

def test_layer_names_and_scaling():
    assert grid.layer_name("vgg19", "conv_flatten_fc", "last") == "features.34"
    assert grid.layer_name("vgg19", "conv_flatten_fc", "earlier") == "features.25"
    assert grid.layer_name("vgg19", "gap_fc", "last_conv2d") == "features.34"
    assert grid.layer_name("resnet34", "gap_fc", "last") == "layer4"
    assert grid.layer_name("resnet34", "conv_flatten_fc", "last_conv2d") == "layer4.2.conv2"
    assert [grid.heatmap_label(r) for r in (56, 28, 21, 16)] == ["4x4", "8x8", "11x11", "14x14"]
    assert [grid.scaled_region(r, 224) for r in (56, 28, 21, 16)] == [56, 28, 21, 16]
    assert [grid.scaled_region(r, 64) for r in (56, 28, 21, 16)] == [16, 8, 6, 5]
    assert grid.applied_radius(0.5, (0.0, 1.0)) == 0.25
    assert grid.applied_radius(0.5, (-1.0, 1.0)) == 0.5


def test_bad_config_is_refused_before_work():
    with pytest.raises(ConfigError, match="input_range"):
        grid.stages(cf.STUDY.config("tiny", ["input_range=[1, 0]"]))
    with pytest.raises(ConfigError, match="sensitivity"):
        grid.stages(cf.STUDY.config("tiny", ["sensitivity=[[0, 3]]"]))


def _keys(config) -> dict[str, set[str]]:
    return {stage.name: {job.key for job in stage.jobs} for stage in grid.stages(config)
            if not callable(stage.jobs)}


def test_job_keys_cover_only_their_inputs():
    """A changed gallery size reruns only the gallery; a changed HAAS sample count only HAAS."""
    base = _keys(cf.STUDY.config("tiny"))
    assert {k: len(v) for k, v in base.items()} == {"data": 1, "table 1": 7,
                                                    "explain and score": 12, "gallery": 6}
    gallery = _keys(cf.STUDY.config("tiny", ["gallery=2"]))
    assert {k for k in base if base[k] != gallery[k]} == {"gallery"}
    haas = _keys(cf.STUDY.config("tiny", ["n_haas=16"]))
    assert {k for k in base if base[k] != haas[k]} == {"explain and score"}
    assert len(base["explain and score"] & haas["explain and score"]) == 6  # AOPC jobs kept
    metrics = grid.faithfulness_metrics(cf.STUDY.config("tiny"), 64)
    assert metrics[1]["factors"] == {"region": 8, "heatmap": "8x8"}
    assert metrics[-1]["factors"] == {"radius": 0.25, "document_radius": 0.5}


def test_folder_data_is_read_into_the_run(tmp_path):
    """A user's CRC/HAM10000-style folder (root/<class>/<image>) becomes the run's dataset."""
    import cv2

    rng = np.random.default_rng(0)
    for name in ("ADI", "TUM"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(10):
            cv2.imwrite(str(tmp_path / "images" / name / f"{i}.png"),
                        rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    config = cf.STUDY.config("tiny", [f"folder={{root: {tmp_path / 'images'}, size: 32}}"])
    spec = grid.data_spec(config)
    run_dir = tmp_path / "run"
    data_job({"data": spec.model_dump()}, JobContext(run_dir=run_dir, device="cpu", seed=0,
                                                     key="k"))
    dataset = load_dataset(run_dir, spec)
    assert dataset.classes == ["ADI", "TUM"]
    assert tuple(dataset.x.shape) == (20, 3, 32, 32)
    assert float(dataset.x.min()) >= 0 and float(dataset.x.max()) <= 1
    assert spec.kind == "folder" and grid.stages(config)[0].jobs[0].fn.endswith("jobs:data_job")


# ---------------------------------------------------------------- a shrunken tiny run

SHRUNK = [
    "archs=[resnet34]", "data.n=192", "data.params.shard_size=4", "train.epochs=1",
    "n_samples=2", "n_haas=8", "sensitivity=[[0.05, 1], [0.5, 1]]", "aopc_regions=[56, 28]",
    "table1.n_samples=2", "gallery=1",
]
METHODS = {"Grad-CAM", "HiResCAM"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    set_quiet(True)
    run_dir = tmp_path_factory.mktemp("cam")
    config = cf.STUDY.config("tiny", SHRUNK)
    summaries = run_study(cf.STUDY, config, run_dir, device="cpu")
    assert all(not s.failed for s in summaries.values()), summaries
    tables = {t: read_results(run_dir, t) for t in ("results", "curves", "summaries")}
    return run_dir, config, {t: f[f.study == cf.NAME] for t, f in tables.items()}


def test_rows_for_every_model_method_metric(run):
    _, config, tables = run
    results = tables["results"]
    scored = results[results.metric != "cam_identities"]
    models = {"resnet34-flatten", "resnet34-gap"}
    assert set(scored.model_id) == models and set(scored.method) == METHODS
    assert set(scored["head"]) == {"conv_flatten_fc", "gap_fc"} and set(scored.arch) == {
        "resnet34"}
    outputs = {("aopc", "aopc"), ("max_sensitivity", "max_sensitivity"), ("haas", "correct_x"),
               ("haas", "correct_ha")}
    for (mid, method), part in scored.groupby(["model_id", "method"]):
        assert set(zip(part.metric, part.output)) == outputs, (mid, method)
        assert set(part[part.metric == "aopc"].heatmap) == {"4x4", "8x8"}
        assert set(part[part.metric == "max_sensitivity"].document_radius) == {0.05, 0.5}
        assert (part[part.metric == "haas"].groupby("output").size() == config.n_haas).all()
    aopc = scored[scored.metric == "aopc"]
    assert aopc.value.between(-1, 1).all() and (aopc.direction == "higher").all()
    assert set(aopc.region) == {16, 8}
    sens = scored[scored.metric == "max_sensitivity"]
    # maps min-max scaled to [0, 1]: distances are at most the Frobenius norm of 64×64 ones
    assert sens.value.between(0, 64).all() and (sens.direction == "lower").all()
    assert set(scored[scored.metric == "haas"].value.unique()) <= {0.0, 1.0}
    identities = results[results.metric == "cam_identities"]
    assert (identities.direction == "none").all()
    assert set(identities.layer_choice) == {"last", "last_conv2d", "earlier"}
    curves = tables["curves"]
    assert set(curves.curve) == {"score"} and set(curves.heatmap) == {"4x4", "8x8"}
    classification = tables["summaries"][tables["summaries"].metric == "classification"]
    assert {"balanced_accuracy", "mean_auc"} <= set(classification.output)


def test_haas_scores_against_the_true_class(run):
    """Acc(x) of HAAS is the model's accuracy on those images (predictions table), not 1 by
    construction, and the written HAAS is Acc(HA) / Acc(x)."""
    run_dir, _, tables = run
    results = tables["results"]
    correct_x = results[(results.metric == "haas") & (results.output == "correct_x")]
    predictions = query(run_dir, "select model_id, sample_id, correct from predictions")
    merged = correct_x.merge(predictions, on=["model_id", "sample_id"])
    assert len(merged) == len(correct_x)
    assert (merged.value == merged.correct.astype(float)).all()
    scores = A.haas_scores(results, tables["summaries"])
    assert len(scores) == 4
    defined = scores[scores.acc_x > 0]
    np.testing.assert_allclose(defined.haas, defined.acc_ha / defined.acc_x)


def test_gap_models_score_gradcam_and_hirescam_alike(run):
    """Grad-CAM = HiResCAM on the GAP head at the last layer (proposition 2 = 3), so every metric
    gives both methods the same value (same noise seeds)."""
    results = run[2]["results"]
    rows = results[(results.model_id == "resnet34-gap") & (results.metric != "cam_identities")]
    wide = rows.pivot_table(index=["metric", "output", "heatmap", "document_radius",
                                   "sample_id"], columns="method", values="value", dropna=False)
    wide = wide.dropna(how="all")
    assert len(wide) == len(rows) / 2
    np.testing.assert_allclose(wide["Grad-CAM"], wide["HiResCAM"], atol=1e-4)


def test_measured_table_1_agrees_with_the_document(run):
    _, config, tables = run
    table = A.table_1(tables["results"], config.table1.tolerance)
    checked = table[table.agrees != "—"]
    assert len(checked) == 6  # flatten, gap, dense × last, earlier
    assert (checked.agrees == "yes").all(), checked[["model", "layer", "measured"]]


def test_report_section_has_every_table_and_figure(run):
    run_dir, _, _ = run
    section = cf.report_section(run_dir)
    names = {t.name for t in section.tables} | {f.name for f in section.figures}
    expected = {f"cam-table{k}" for k in (1, 3, 4, 5, 6, 7, 10)}
    expected |= {f"cam-fig{k}" for k in (14, 15, 16, 17, 18)}
    assert expected <= names
    summary = next(t.data for t in section.tables if t.name == "cam-table10")
    assert summary["balanced accuracy"].between(0, 1).all()
    assert list(summary.index) == ["ResNet-34 Flatten", "ResNet-34 GAP"]
    assert "HiResCAM has the lower mean max-sensitivity" in section.text


def test_findings_of_the_run_cover_every_claim(run):
    """`salbench findings RUN` for this study: every claim, a verdict each; table 1 agrees with
    the theorems whatever the accuracy; the model findings are gated by the run's scores."""
    run_dir, config, tables = run
    found = [f for f in run_findings(run_dir) if f.study == cf.NAME]
    assert len(found) == 27 and {f.scale for f in found} == {"custom"}
    keys = {"study", "claim", "section", "document", "measured", "low", "high", "n", "verdict",
            "scale"}
    assert all(keys <= set(f.to_dict()) for f in found)
    table1 = [f for f in found if "gradients w.r.t." in f.claim]
    assert len(table1) == 21 and all(f.verdict == "agrees" for f in table1), [
        (f.claim, f.verdict, f.measured) for f in table1 if f.verdict != "agrees"]
    gate = cf_findings.model_gate(tables, config)
    gated = found[22:]  # AOPC, max-sensitivity, HAAS (2), fig. 16: after table 1 and GAP
    if gate.failing:
        assert {f.verdict for f in gated} == {"not testable here"}
        assert all("balanced_accuracy gate 0.8 missed" in f.note for f in gated)
        section = cf.report_section(run_dir)
        assert section.text.startswith("ACCURACY GATE MISSED")
        assert section.lead_tables[0].name == "cam-gate"


def test_rerun_skips_every_job(run):
    run_dir, config, tables = run
    summaries = run_study(cf.STUDY, config, run_dir, device="cpu")
    assert all(len(s.done) == 0 and not s.failed for s in summaries.values())
    again = read_results(run_dir)
    assert len(again[again.study == cf.NAME]) == len(tables["results"])


def test_train_jobs_use_per_arch_settings_and_skip_normal_classes(run):
    """Table 3 trains each model with its own settings; early stopping monitors every class but
    the 'normal' one (NoCell, like the Covid-19 data's Normal class)."""
    run_dir, _, _ = run
    config = cf.STUDY.config("tiny", SHRUNK + ["archs=[resnet34, vgg19]",
                                               "train_per_arch={vgg19: {lr: 0.0001}}"])
    jobs = grid.stages(config)[1].expand(run_dir)
    lrs = {job.config["model_id"]: job.config["train"]["lr"] for job in jobs}
    assert lrs == {"resnet34-flatten": 3e-3, "resnet34-gap": 3e-3, "vgg19-flatten": 1e-4,
                   "vgg19-gap": 1e-4}
    assert all(job.config["train"]["monitored_classes"] == list(range(9)) for job in jobs)
    assert {job.config["model"]["head"] for job in jobs} == {"conv_flatten_fc", "gap_fc"}


@pytest.mark.slow
def test_full_tiny_preset(tmp_path):
    set_quiet(True)
    config = cf.STUDY.config("tiny")
    summaries = run_study(cf.STUDY, config, tmp_path, device="cpu")
    assert all(not s.failed for s in summaries.values()), summaries
    results = read_results(tmp_path)
    table = A.table_1(results[results.study == cf.NAME], config.table1.tolerance)
    assert (table[table.agrees != "—"].agrees == "yes").all()
    assert len(cf.report_section(tmp_path).figures) >= 5


def test_every_row_carries_the_registry_direction(run):
    """Issue 11: every row the study writes ranks correctly with no name parsing."""
    assert_rankable(run[0] if isinstance(run, tuple) else run)
