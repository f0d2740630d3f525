"""Study ``pretraining`` (document 000): the grid's rows and factor columns, fine-tuning direction,
model selection from ``summaries``, the correctly-classified intersection from ``predictions``,
null-model theory, the analysis on hand-made frames and the report section."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from contract import assert_rankable

from salbench.config import ConfigError
from salbench.data import mri_lesions
from salbench.data.dataset import split_of_position
from salbench.explain import log_display
from salbench.models.checkpoints import load as load_checkpoint
from salbench.results import ResultStore, read_results
from salbench.runtime import set_quiet
from salbench.studies import pretraining as P
from salbench.studies.base import run_study
from salbench.studies.jobs import checkpoint_path
from salbench.studies.pretraining import analysis as A
from salbench.studies.pretraining import findings as F
from salbench.studies.pretraining import grid as G
from salbench.studies.pretraining.config import PretrainingConfig
from salbench.studies.pretraining.report import display_map, report_section

METHODS = ("[{name: saliency, absolute: true}, {name: input_x_gradient, absolute: true}, "
           "{name: lrp_epsilon, params: {epsilon: 1.0e-9}, absolute: true, label: lrp}, "
           "{name: deeplift, params: {baseline: zero}, absolute: true}]")
SHRUNK = ["data.n=96", "corpus.n=48", "natural_n=48", "degrees=[1conv,all]", "seeds=[0]",
          "pretrain.epochs=1", "finetune.epochs=1", "n_explain=3", f"methods={METHODS}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, PretrainingConfig]:
    set_quiet(True)
    cfg = P.STUDY.config("tiny", SHRUNK)
    out = tmp_path_factory.mktemp("pretraining") / "run"
    summaries = run_study(P.STUDY, cfg, out, device="cpu")
    failed = {name: s.failed for name, s in summaries.items() if s.failed}
    assert not failed, failed
    return out, cfg


# ---------------------------------------------------------------- the run

def test_every_selected_model_method_and_baseline_has_scores(run):
    out, cfg = run
    rows = read_results(out)
    precision = rows[rows.metric == A.PRECISION_METRIC]
    chosen, _ = G.explain_plan(out, cfg)
    methods = {m.key for m in cfg.methods}
    assert set(chosen.model_id) == set(G.finetune_grid(cfg).model_id)  # one seed: all selected
    for model_id in chosen.model_id:
        part = precision[precision.model_id == model_id]
        assert set(part.method) == methods
        assert (part.groupby("method").size() == cfg.n_explain).all()
    null = precision[precision.model_id == G.RANDOM_MODEL_ID]
    assert set(null.method) == methods | {"sobel", "laplace", "random"}
    assert precision.value.between(0, 1).all()
    assert (precision.direction == "higher").all()
    # every explain job scored the same test images (section 4.2: one common sample set)
    assert precision.groupby("model_id").sample_id.apply(frozenset).nunique() == 1


def test_rows_carry_the_model_factors_as_columns(run):
    """corpus, degree, seed, lr (and on explain rows best/matched, on null rows null_baseline)
    are columns of summaries, predictions and results: nothing parses a model id."""
    out, cfg = run
    grid = G.finetune_grid(cfg).set_index("model_id")
    summaries, predictions, results = (read_results(out, t)
                                       for t in ("summaries", "predictions", "results"))
    for frame in (summaries, predictions, results):
        fine = frame[frame.model_id.isin(grid.index)]
        assert not fine.empty
        expected = grid.loc[fine.model_id, ["corpus", "degree", "seed", "lr"]]
        pd.testing.assert_frame_equal(fine[["corpus", "degree", "seed", "lr"]].reset_index(
            drop=True), expected.reset_index(drop=True), check_dtype=False)
    fine = results[results.model_id.isin(grid.index)]
    assert fine.best.all() and fine.matched.all()  # one seed: each model is in both sets
    assert fine.null_baseline.isna().all()
    null = results[results.model_id == G.RANDOM_MODEL_ID]
    assert set(null.corpus) == {"none"}
    assert set(null.null_baseline) == {"random model", "sobel", "laplace", "random map"}
    assert set(null.loc[null.null_baseline == "random model", "method"]) == {
        m.key for m in cfg.methods}
    pre = summaries[summaries.model_id.str.startswith("pre-")]
    assert set(pre.corpus) == set(cfg.corpora)
    assert len(predictions[predictions.model_id == G.RANDOM_MODEL_ID]) > 0


def test_fine_tuning_degree_trains_blocks_from_the_output_side(run):
    """1conv keeps blocks 1-4 of the pre-trained model and changes block 5 (NOTES.md)."""
    out, cfg = run
    lr = f"{cfg.learning_rates[0]:g}"
    pre, _ = load_checkpoint(checkpoint_path(out, G.pretrain_id("within-domain")))
    one, _ = load_checkpoint(checkpoint_path(out, f"ft-within-domain-1conv-s0-lr{lr}"))
    everything, _ = load_checkpoint(checkpoint_path(out, f"ft-within-domain-all-s0-lr{lr}"))
    pre_w, one_w, all_w = (dict(m.named_parameters()) for m in (pre, one, everything))
    first, last = "features.0.weight", "features.28.weight"  # block 1 and block 5 convolutions
    assert torch.equal(one_w[first], pre_w[first])
    assert torch.equal(one_w["features.21.weight"], pre_w["features.21.weight"])  # block 4
    assert not torch.equal(one_w[last], pre_w[last])
    assert not torch.equal(all_w[first], pre_w[first])


def test_null_model_deeplift_lrp_and_input_x_gradient_agree(run):
    """On the untrained model (zero biases, ReLU, max-pooling) DeepLIFT with a zero baseline,
    LRP-0 and input×gradient give the same map, hence the same top-n precision."""
    out, _ = run
    rows = read_results(out)
    null = rows[(rows.null_baseline == "random model") & (rows.metric == A.PRECISION_METRIC)]
    wide = null.pivot_table(index="sample_id", columns="method", values="value")
    assert np.allclose(wide["deeplift"], wide["input_x_gradient"], atol=1e-6)
    assert np.allclose(wide["lrp"], wide["input_x_gradient"], atol=1e-6)


def test_report_section_has_figures_3_4_8_10_and_table_1(run):
    out, cfg = run
    section = report_section(out)
    names = {f.name for f in section.figures}
    assert {"pretraining-fig3", "pretraining-fig8"} <= names
    for method in cfg.methods:
        assert f"pretraining-fig4-{method.key}" in names
        assert f"pretraining-fig10-{method.key}" in names
    tables = {t.name: t.data for t in section.tables}
    table1 = tables["pretraining-table1"]
    assert len(table1) == len(cfg.corpora) * len(cfg.degrees)
    summaries = read_results(out, "summaries")
    accuracy = summaries.query("metric == 'classification' and output == 'accuracy'")
    for row in table1.to_dict("records"):
        model_id = f"ft-{row['corpus']}-{row['degree']}-s0-lr{cfg.learning_rates[0]:g}"
        expected = accuracy.loc[accuracy.model_id == model_id, "value"].item()
        assert row["mean accuracy"] == pytest.approx(expected)  # the one matched model
    assert list(tables["pretraining-fig8"].index) == list(cfg.corpora)


def test_rerun_skips_every_job_and_keeps_the_rows(run):
    out, cfg = run
    tables = ("results", "summaries", "predictions")
    before = {t: read_results(out, t).drop(columns="run") for t in tables}
    summaries = run_study(P.STUDY, cfg, out, device="cpu")
    assert all(not s.done and not s.failed for s in summaries.values())
    for t in tables:
        pd.testing.assert_frame_equal(before[t], read_results(out, t).drop(columns="run"))


def test_a_changed_gallery_size_reruns_no_scoring_job(run):
    out, cfg = run
    bigger = cfg.model_copy(update={"gallery": cfg.gallery + 1})
    for old, new in zip(G.stages(cfg)[:4], G.stages(bigger)[:4]):
        assert [j.key for j in old.expand(out)] == [j.key for j in new.expand(out)]
    assert ([j.key for j in G.stages(cfg)[4].expand(out)]
            != [j.key for j in G.stages(bigger)[4].expand(out)])


# ---------------------------------------------------------------- config and grid

def test_config_rejects_unknown_degree_and_empty_seeds():
    with pytest.raises(ConfigError, match="degrees"):
        P.STUDY.config("tiny", ["degrees=[5conv]"])
    with pytest.raises(ConfigError, match="seeds"):
        P.STUDY.config("tiny", ["seeds=[]"])
    with pytest.raises(ConfigError, match="preset"):
        P.STUDY.config("tiny", ["finetune={epochs: 2}"])


def test_paper_preset_is_the_documents_grid():
    """Section 3: 2 corpora × 5 degrees × 15 seeds at table 1's learning rates; section 2.4's
    eight methods with zero baselines and absolute maps; appendix D's 2500 test images."""
    cfg = P.STUDY.config("paper")
    grid = G.finetune_grid(cfg)
    assert len(grid) == 2 * 5 * 15
    lrs = grid.groupby(["corpus", "degree"]).lr.unique().map(list).to_dict()
    assert lrs[("within-domain", "1conv")] == [0.038]
    assert lrs[("out-of-domain", "all")] == [0.004]
    assert [m.key for m in cfg.methods] == [
        "integrated_gradients", "gradient_shap", "lrp", "deeplift", "saliency", "deconvolution",
        "guided_backprop", "input_x_gradient"]
    assert all(m.absolute for m in cfg.methods)
    assert cfg.model.width == 1.0 and cfg.data.size == 270 and cfg.n_explain == 2500
    stages = G.stages(cfg)
    assert [s.name for s in stages] == ["data", "pretrain", "finetune", "explain", "gallery"]
    finetune = stages[2].expand(Path("unused"))
    assert len(finetune) == 150
    assert finetune[0].config["factors"] == {"corpus": "within-domain", "degree": "1conv",
                                             "seed": 0, "lr": 0.038}
    for preset in ("tiny", "small"):
        P.STUDY.config(preset)  # every preset validates


def test_paper_preset_splits_exactly_2500_2500_2500():
    """Appendix D: 2500 fine-tuning, 2500 validation and 2500 test slices (split by subject)."""
    data = P.STUDY.config("paper").data
    spec = mri_lesions.make_spec(size=data.size, **data.params)
    splits = [split_of_position(spec.backgrounds.locate(i)[0], spec.split_fractions)
              for i in range(data.n)]
    assert pd.Series(splits).value_counts().to_dict() == {"train": 2500, "val": 2500,
                                                          "test": 2500}


def test_selection_best_and_accuracy_matched_hand_case():
    cfg = PretrainingConfig.parse({"best_k": 2, "matched_k": 1, "matched_target": 0.9})
    table = pd.DataFrame({"model_id": list("abcdef"), "corpus": ["within-domain"] * 3
                          + ["out-of-domain"] * 3, "degree": "all",
                          "accuracy": [0.95, 0.88, 0.70, 0.99, 0.91, 0.60]})
    chosen = G.selections(table, cfg)
    best = chosen[chosen.selection == "best"]
    matched = chosen[chosen.selection == "matched"]
    assert sorted(best.model_id) == ["a", "b", "d", "e"]
    assert sorted(matched.model_id) == ["b", "e"]  # |0.88-0.9| < |0.95-0.9|; 0.91 closest
    factors = G.explained_models(chosen.assign(seed=0, lr=0.01))
    assert factors["a"]["best"] and not factors["a"]["matched"]
    assert factors["b"]["best"] and factors["b"]["matched"]
    assert set(factors) == {"a", "b", "d", "e"}


def _write_run(tmp_path: Path, cfg: PretrainingConfig, accuracy: dict[str, float],
               correct: dict[str, tuple[bool, ...]]) -> None:
    """A run folder holding fine-tuned models' accuracies and test predictions."""
    (tmp_path / "config.yaml").write_text(cfg.to_yaml())
    grid = G.finetune_grid(cfg).set_index("model_id")
    summaries = [{"study": G.NAME, "run": "r", "dataset": "d", "model_id": m, "method": "",
                  "metric": "classification", "output": "accuracy", "value": v,
                  "direction": "higher", "n": 3, **grid.loc[m].to_dict()}
                 for m, v in accuracy.items()]
    predictions = [{"study": G.NAME, "run": "r", "dataset": "d", "model_id": m, "split": "test",
                    "sample_id": s, "true": 0, "predicted": 0 if ok else 1, "correct": ok}
                   for m, values in correct.items() for s, ok in zip("xyz", values)]
    ResultStore(tmp_path).write("job", {"summaries": summaries, "predictions": predictions})


def test_explain_plan_selects_from_summaries_and_intersects_predictions(tmp_path):
    """Selection from the ``summaries`` accuracies; correct_for from the ``predictions``
    intersection (section 4.2); an empty intersection falls back to all test images."""
    cfg = PretrainingConfig.parse({"corpora": ["within-domain"], "degrees": ["all"],
                                   "seeds": [0, 1, 2], "best_k": 1, "matched_k": 1,
                                   "matched_target": 0.5})
    ids = list(G.finetune_grid(cfg).model_id)
    _write_run(tmp_path, cfg, dict(zip(ids, (0.9, 0.6, 0.2))),
               {ids[0]: (True, True, False), ids[1]: (True, False, True),
                ids[2]: (False, False, False)})
    chosen, correct_for = G.explain_plan(tmp_path, cfg)
    assert set(chosen.loc[chosen.selection == "best", "model_id"]) == {ids[0]}
    assert set(chosen.loc[chosen.selection == "matched", "model_id"]) == {ids[1]}
    assert correct_for == sorted([ids[0], ids[1]])
    off = cfg.model_copy(update={"correct_only": False})
    assert G.explain_plan(tmp_path, off)[1] == []


def test_explain_plan_falls_back_when_no_image_is_correct_for_all(tmp_path):
    cfg = PretrainingConfig.parse({"corpora": ["within-domain"], "degrees": ["all"],
                                   "seeds": [0, 1], "best_k": 1, "matched_k": 1,
                                   "matched_target": 0.6})
    ids = list(G.finetune_grid(cfg).model_id)
    _write_run(tmp_path, cfg, dict(zip(ids, (0.9, 0.6))),
               {ids[0]: (True, False, False), ids[1]: (False, True, True)})
    chosen, correct_for = G.explain_plan(tmp_path, cfg, warn=False)
    assert set(chosen.model_id) == set(ids) and correct_for == []


def test_validation_rows_are_classification_summaries():
    rows = G.validation_rows({"accuracy": 0.75, "balanced_accuracy": 0.7}, dataset="corpus",
                             model_id="pre-x", n=40, factors={"corpus": "within-domain"})
    assert [(r["output"], r["value"], r["direction"], r["n"]) for r in rows] == [
        ("accuracy", 0.75, "higher", 40), ("balanced_accuracy", 0.7, "higher", 40)]
    assert all(r["metric"] == "classification" and r["corpus"] == "within-domain" for r in rows)


# ---------------------------------------------------------------- analysis on hand-made frames

def _row(model_id, method, sample_id, value, **factors):
    return {"study": G.NAME, "model_id": model_id, "method": method, "metric": "top_k_precision",
            "output": "top_k_precision", "sample_id": sample_id, "value": value,
            "direction": "higher", **factors}


def _results() -> pd.DataFrame:
    """Two fine-tuned models (w: within-domain 1conv best only; o: out-of-domain 1conv best and
    matched), one method "sal", the random model and Sobel; two images each."""
    w = {"corpus": "within-domain", "degree": "1conv", "seed": 0, "lr": 0.01, "best": True,
         "matched": False}
    o = {"corpus": "out-of-domain", "degree": "1conv", "seed": 0, "lr": 0.02, "best": True,
         "matched": True}
    rows = [_row("w", "sal", s, v, **w) for s, v in (("a", 0.8), ("b", 0.6))]
    rows += [_row("o", "sal", s, v, **o) for s, v in (("a", 0.4), ("b", 0.2))]
    rows += [_row("r", "sal", s, v, corpus="none", null_baseline="random model")
             for s, v in (("a", 0.1), ("b", 0.3))]
    rows += [_row("r", "sobel", s, v, corpus="none", null_baseline="sobel")
             for s, v in (("a", 0.05), ("b", 0.15))]
    rows.append({**_row("w", "sal", "a", 0.5, **w), "metric": "iou", "output": "iou"})
    return pd.DataFrame(rows)


def _summaries() -> pd.DataFrame:
    base = {"study": G.NAME, "method": "", "metric": "classification", "direction": "higher",
            "n": 10}
    rows = [{**base, "model_id": "w", "output": "accuracy", "value": 0.9, "corpus":
             "within-domain", "degree": "1conv", "seed": 0, "lr": 0.01},
            {**base, "model_id": "w", "output": "balanced_accuracy", "value": 0.1,
             "corpus": "within-domain", "degree": "1conv", "seed": 0, "lr": 0.01},
            {**base, "model_id": "o", "output": "accuracy", "value": 0.7, "corpus":
             "out-of-domain", "degree": "1conv", "seed": 0, "lr": 0.02},
            {**base, "model_id": "r", "output": "accuracy", "value": 0.5, "corpus": "none"},
            {**base, "model_id": "pre-within-domain", "output": "accuracy", "value": 0.99,
             "corpus": "within-domain"}]
    return pd.DataFrame(rows)


def test_model_accuracy_keeps_the_fine_tuned_models_test_accuracy():
    table = A.model_accuracy(_summaries()).set_index("model_id")
    assert sorted(table.index) == ["o", "w"]  # no random or pre-trained model (no degree)
    assert table.accuracy.to_dict() == {"w": 0.9, "o": 0.7}  # accuracy, not balanced accuracy
    assert table.loc["w", "corpus"] == "within-domain" and table.loc["o", "lr"] == 0.02
    empty = A.model_accuracy(pd.DataFrame(columns=["model_id", "metric", "output", "value"]))
    assert list(empty.columns) == ["model_id", "corpus", "degree", "seed", "lr", "accuracy", "n"]


def test_precision_scores_label_each_row_with_its_group():
    scores = A.precision_scores(_results())
    assert len(scores) == 8  # the iou row is not a precision row
    groups = scores.groupby("model_id").group.unique().map(list).to_dict()
    assert groups["w"] == ["within-domain"] and groups["o"] == ["out-of-domain"]
    assert sorted(scores.loc[scores.model_id == "r", "group"].unique()) == [
        "random model", "sobel"]
    assert not scores.loc[scores.model_id == "r", "best"].any()


def test_box_frame_repeats_edge_filters_per_method_and_nulls_per_degree():
    scores = A.precision_scores(_results())
    best = A.box_frame(scores, "best", ["sal", "ig"], ["1conv", "all"])
    sobel = best[best.group == "sobel"]
    assert set(sobel.method) == {"sal", "ig"} and set(sobel.degree) == {"1conv", "all"}
    assert len(sobel) == 2 * 2 * 2  # images × methods × degrees
    random = best[best.group == "random model"]
    assert set(random.method) == {"sal"} and len(random) == 2 * 2  # only its own method
    assert set(best.loc[best.null_baseline.isna(), "model_id"]) == {"w", "o"}
    matched = A.box_frame(scores, "matched", ["sal"], ["1conv"])
    assert set(matched.loc[matched.null_baseline.isna(), "model_id"]) == {"o"}
    with pytest.raises(ValueError, match="selection"):
        A.box_frame(scores, "worst", ["sal"], ["1conv"])


def test_accuracy_lines_and_precision_by_degree_average_the_selection():
    scores = A.precision_scores(_results())
    models = A.selected_models(scores, A.model_accuracy(_summaries()))
    lines = A.accuracy_lines(models, "best").set_index("corpus")
    assert lines.accuracy.to_dict() == {"within-domain": 0.9, "out-of-domain": 0.7}
    assert set(A.accuracy_lines(models, "matched").corpus) == {"out-of-domain"}
    means = A.precision_by_degree(scores, "best").set_index("corpus")
    assert means.precision.to_dict() == pytest.approx({"within-domain": 0.7,
                                                       "out-of-domain": 0.3})
    assert means.n.to_dict() == {"within-domain": 2, "out-of-domain": 2}


def test_correlation_sign_and_its_minimum_of_three_models():
    """Pearson r of mean precision against accuracy: +1 when the more accurate models explain
    better, −1 when worse, NaN with fewer than three models (fig. 8)."""
    def per_model(precision):
        n = len(precision)
        return pd.DataFrame({"corpus": "within-domain", "method": "sal",
                             "model_id": list("abc")[:n], "precision": precision,
                             "accuracy": [0.6, 0.7, 0.9][:n]})
    up = A.precision_accuracy_correlation(per_model([0.1, 0.2, 0.4]))
    down = A.precision_accuracy_correlation(per_model([0.4, 0.3, 0.1]))
    assert up.r.item() == pytest.approx(1.0) and up.n.item() == 3
    assert down.r.item() == pytest.approx(-1.0)
    assert math.isnan(A.precision_accuracy_correlation(per_model([0.1, 0.2])).r.item())


def test_model_precision_is_the_mean_over_images_beside_the_models_accuracy():
    scores = A.precision_scores(_results())
    models = A.selected_models(scores, A.model_accuracy(_summaries()))
    points = A.model_precision(scores, models, "best").set_index("model_id")
    assert points.precision.to_dict() == pytest.approx({"w": 0.7, "o": 0.3})
    assert points.accuracy.to_dict() == {"w": 0.9, "o": 0.7}
    assert "r" not in points.index  # null baselines are no points of fig. 8


def test_matched_table_lists_the_matched_models_per_corpus_and_degree():
    models = pd.DataFrame({"model_id": list("abc"), "corpus": ["within-domain"] * 2
                           + ["out-of-domain"], "degree": ["all", "all", "1conv"],
                           "lr": [0.01, 0.03, 0.02], "accuracy": [0.88, 0.92, 0.6],
                           "matched": [True, True, False], "best": True})
    table = A.matched_table(models, ["within-domain", "out-of-domain"], ["1conv", "all"])
    assert len(table) == 1  # the out-of-domain model is not matched
    row = table.iloc[0]
    assert (row.corpus, row.degree, row.models) == ("within-domain", "all", 2)
    assert row["mean accuracy"] == pytest.approx(0.9)
    assert row["learning rates"] == "0.01, 0.03" and row["test accuracies"] == "0.880, 0.920"


def test_gallery_models_pick_the_most_accurate_per_corpus_and_degree():
    models = pd.DataFrame({"model_id": list("abcd"), "corpus": ["within-domain"] * 3
                           + ["out-of-domain"], "degree": ["all", "all", "1conv", "all"],
                           "accuracy": [0.7, 0.9, 0.5, 0.8], "best": [True, True, True, False],
                           "matched": True})
    best = A.gallery_models(models, "best", ["within-domain", "out-of-domain"], ["1conv", "all"])
    assert best.to_dict("records") == [
        {"corpus": "within-domain", "degree": "1conv", "model_id": "c"},
        {"corpus": "within-domain", "degree": "all", "model_id": "b"}]
    matched = A.gallery_models(models, "matched", ["out-of-domain"], ["all"])
    assert list(matched.model_id) == ["d"]


def test_precision_summary_pools_models_per_group_and_method():
    summary = A.precision_summary(A.precision_scores(_results())).set_index(["group", "method"])
    assert summary.loc[("within-domain", "sal"), "mean"] == pytest.approx(0.7)
    assert summary.loc[("sobel", "sobel"), "count"] == 2
    assert summary.loc[("random model", "sal"), "median"] == pytest.approx(0.2)


def test_display_map_is_the_documents_log_transform_of_the_absolute_map():
    a = torch.tensor([[[-2.0, 1.0], [0.0, 0.5]]])
    shown = display_map(a)
    expected = log_display(torch.tensor([[[1.0, 0.5], [0.0, 0.25]]]))
    assert torch.allclose(shown, expected)
    assert shown.max() == pytest.approx(1.0) and shown.min() == 0.0
    assert shown[0, 0, 1] > 0.5  # b = 0.5 brightens small scores: log(1.5) / log(2)


@pytest.mark.slow
def test_tiny_preset_runs_end_to_end(tmp_path):
    set_quiet(True)
    cfg = P.STUDY.config("tiny")
    summaries = run_study(P.STUDY, cfg, tmp_path / "run", device="cpu")
    assert not any(s.failed for s in summaries.values())
    section = report_section(tmp_path / "run")
    assert any(f.name == "pretraining-fig3" for f in section.figures)


def test_every_row_carries_the_registry_direction(run):
    """Issue 11: every row the study writes ranks correctly with no name parsing."""
    assert_rankable(run[0] if isinstance(run, tuple) else run)


# ---------------------------------------------------------------- findings on hand-made frames

DOC_METHODS = ("integrated_gradients", "gradient_shap", "lrp", "deeplift", "saliency",
               "deconvolution", "guided_backprop", "input_x_gradient")
DEGREES = ("1conv", "2conv", "3conv", "4conv", "all")


WITHIN_ACCURACY = dict(zip(DEGREES, (0.80, 0.94, 0.96, 0.97, 0.98)))


def _tables(*, spread=0.3, effect=None, slope=0.03, corr=2.0, matched_effect=0.1,
            accuracy=None, matched_accuracy=0.92, random_excess=None, edge=0.1, random_fine=0.0,
            images=40, test=200, seed=0) -> dict[str, pd.DataFrame]:
    """Result frames of a run that agrees with document 000: per corpus × degree two best models
    and one matched model.

    Precision of a fine-tuned model = method base (evenly spread over ``spread``) + ``slope`` ×
    degree index ± half the corpus effect (``effect[degree]``, within minus out, default 0.2 at
    1conv/2conv and 0.05 above; matched models ``matched_effect``) + ``corr`` × (accuracy − 0.95)
    + noise. Random model: chance (the random map's level, 0.05) + ``random_excess[method]``
    (default 0.1, saliency and deconvolution 0) + ``random_fine``; edge filters at ``edge``.
    ``accuracy[(corpus, degree)]``: the best models' test accuracy (within-domain
    ``WITHIN_ACCURACY``, out-of-domain 0.015 higher).
    """
    rng = np.random.default_rng(seed)
    effect = {d: 0.2 if d in ("1conv", "2conv") else 0.05 for d in DEGREES} | (effect or {})
    accuracy = {(c, d): a + (0.015 if c == "out-of-domain" else 0)
                for c in ("within-domain", "out-of-domain")
                for d, a in WITHIN_ACCURACY.items()} | (accuracy or {})
    random_excess = ({m: 0.0 if m in ("saliency", "deconvolution") else 0.1 for m in DOC_METHODS}
                     | (random_excess or {}))
    base = dict(zip(DOC_METHODS, np.linspace(0.6 - spread, 0.6, len(DOC_METHODS))))
    ids = [f"i{k}" for k in range(images)]
    results, summaries, predictions = [], [], []

    def precision_rows(model_id, method, values, **factors):
        return [{"study": G.NAME, "model_id": model_id, "method": method,
                 "metric": "top_k_precision", "output": "top_k_precision", "sample_id": s,
                 "value": float(np.clip(v, 0, 1)), "direction": "higher", **factors}
                for s, v in zip(ids, values)]

    for corpus in ("within-domain", "out-of-domain"):
        sign = 0.5 if corpus == "within-domain" else -0.5
        for k, degree in enumerate(DEGREES):
            for name, best, acc in (("b0", True, accuracy[(corpus, degree)]),
                                    ("b1", True, accuracy[(corpus, degree)] - 0.005),
                                    ("m0", False, matched_accuracy)):
                model_id = f"ft-{corpus}-{degree}-{name}"
                factors = {"corpus": corpus, "degree": degree, "seed": 0, "lr": 0.01}
                shift = sign * (effect[degree] if best else matched_effect)
                for method in DOC_METHODS:
                    values = (base[method] + slope * k + shift + corr * (acc - 0.95)
                              + rng.normal(0, 0.02, images))
                    results += precision_rows(model_id, method, values, best=best,
                                              matched=not best, **factors)
                summaries.append({"study": G.NAME, "model_id": model_id, "method": "",
                                  "metric": "classification", "output": "accuracy",
                                  "value": round(acc * test) / test, "n": test, **factors})
                correct = rng.permutation(np.arange(test) < round(acc * test))
                predictions += [{"study": G.NAME, "model_id": model_id, "split": "test",
                                 "sample_id": f"t{j}", "correct": bool(ok), **factors}
                                for j, ok in enumerate(correct)]
    chance = 0.05 + rng.normal(0, 0.01, images)
    null = {"corpus": "none"}
    for method in DOC_METHODS:
        results += precision_rows("random-init", method,
                                  chance + random_excess[method] + random_fine
                                  + rng.normal(0, 0.01, images),
                                  null_baseline="random model", **null)
    for name in ("sobel", "laplace"):
        results += precision_rows("random-init", name, edge + rng.normal(0, 0.01, images),
                                  null_baseline=name, **null)
    results += precision_rows("random-init", "random", chance, null_baseline="random map", **null)
    return {"results": pd.DataFrame(results), "summaries": pd.DataFrame(summaries),
            "predictions": pd.DataFrame(predictions)}


def _verdict(tables, keyword: str) -> str:
    found = [f for f in F.claims(tables, PretrainingConfig.parse({}), "test")
             if keyword in f.claim]
    assert len(found) == 1, [f.claim for f in found]
    return found[0].verdict


def test_findings_cover_every_claim_with_a_computed_verdict():
    found = F.claims(_tables(), PretrainingConfig.parse({}), "small")
    assert len(found) == 14
    assert all(f.study == "pretraining" and f.scale == "small" for f in found)
    verdicts = {f.claim: f.verdict for f in found}
    one_conv = next(c for c in verdicts if "here at 1conv" in c)
    assert verdicts.pop(one_conv) == "not testable here"  # 1conv models under the gate
    assert set(verdicts.values()) == {"agrees"}  # the hand-made run agrees with the rest
    assert all(f.low <= f.measured <= f.high for f in found if f.claim != one_conv)


@pytest.mark.parametrize(("keyword", "agree", "disagree"), [
    ("differ vastly", {"spread": 0.4}, {"spread": 0.02}),
    ("here at 2conv", {"effect": {"2conv": 0.1}}, {"effect": {"2conv": -0.1}}),
    ("largest at few", {}, {"effect": {"2conv": 0.0, "3conv": 0.3, "4conv": 0.3, "all": 0.3}}),
    ("generally increases", {"slope": 0.05, "corr": 0}, {"slope": -0.05, "corr": 0}),
    ("reached accuracies above", {}, {"accuracy": {("within-domain", "3conv"): 0.8}}),
    ("stay below 90%", {}, {"accuracy": {("within-domain", "1conv"): 0.99,
                                         ("out-of-domain", "1conv"): 0.97}}),
    ("ImageNet achieved higher accuracy", {},
     {"accuracy": {("out-of-domain", d): a - 0.03 for d, a in WITHIN_ACCURACY.items()}}),
    ("correlates with the classification", {"corr": 3.0, "slope": 0},
     {"corr": -3.0, "slope": 0}),
    ("controlling for classification", {"matched_effect": 0.1}, {"matched_effect": -0.1}),
    ("seem to give a higher", {}, {"random_excess": {"deeplift": -0.04}}),
    ("more homogeneous", {}, {"random_excess": {"saliency": 0.3}}),
    ("edge filters", {"edge": 0.05}, {"edge": 0.9}),
    ("same method on the random model", {}, {"random_fine": 0.6}),
])
def test_each_finding_flips_with_the_data(keyword, agree, disagree):
    """Frames that agree give ``agrees``, frames that contradict give ``disagrees``: no verdict is
    typed in."""
    assert _verdict(_tables(**agree), keyword) == "agrees"
    assert _verdict(_tables(**disagree), keyword) == "disagrees"


def test_a_model_under_the_gate_makes_the_map_findings_not_testable():
    """A best 2conv model at 0.85 test accuracy (gate 0.9): every finding pooling 2conv is not
    testable, naming the model; the accuracy claims (the gate's subject) are still decided."""
    tables = _tables(accuracy={("within-domain", "2conv"): 0.85})
    found = {f.claim: f for f in F.claims(tables, PretrainingConfig.parse({}), "small")}
    gated = [f for f in found.values() if "ft-within-domain-2conv-b0" in f.note]
    assert len(gated) >= 6
    assert all(f.verdict == "not testable here" and "gate 0.9 missed" in f.note for f in gated)
    assert next(f for c, f in found.items() if "reached accuracies" in c).verdict == "disagrees"
    assert next(f for c, f in found.items() if "seem to give" in c
                ).verdict == "agrees"  # the random model is not gated


def test_1conv_corpus_effect_is_gated_on_the_1conv_models():
    """The document's 1conv models stay under 90 %: their finding is not testable, the 2conv one
    is still decided."""
    tables = _tables(accuracy={("within-domain", "1conv"): 0.8, ("out-of-domain", "1conv"): 0.75})
    assert _verdict(tables, "here at 1conv") == "not testable here"
    assert _verdict(tables, "here at 2conv") == "agrees"
    assert _verdict(tables, "stay below 90%") == "agrees"


def test_findings_say_not_testable_when_an_ingredient_is_absent():
    tables = _tables()
    results = tables["results"]
    tables["results"] = results[results.null_baseline.isna()]  # no null baselines explained
    found = F.claims(tables, PretrainingConfig.parse({}), "small")
    nulls = [f for f in found if "random" in f.claim or "edge" in f.claim]
    assert nulls and all(f.verdict == "not testable here" and f.n == 0 for f in nulls)
