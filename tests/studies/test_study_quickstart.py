"""The quickstart's grid and analysis on hand-made result frames (the run itself is tested end to
end through the CLI in tests/cli/test_command_line.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from salbench.studies.quickstart import STUDY, analysis
from salbench.studies.quickstart.grid import stages


def results(rows):
    return pd.DataFrame([{"metric_params": "{}", "method_params": "{}", "meta": "{}", "study": "s",
                          "run": "r", "dataset": "d", "model_id": "m", **row} for row in rows])


def score_rows(method, metric, values, direction):
    return [{"method": method, "metric": metric, "output": metric, "sample_id": str(i),
             "value": v, "direction": direction} for i, v in enumerate(values)]


def haas_rows(method, ratio):
    return {"method": method, "metric": "haas", "output": "haas", "value": ratio,
            "direction": "higher", "n": 4}


def test_oriented_ranks_put_the_best_method_first_whatever_the_direction():
    frame = results(score_rows("a", "top_k_precision", [0.9, 0.7], "higher")
                    + score_rows("b", "top_k_precision", [0.2, 0.4], "higher")
                    + score_rows("a", "max_sensitivity", [5.0, 7.0], "lower")
                    + score_rows("b", "max_sensitivity", [1.0, 1.0], "lower"))
    sums = pd.DataFrame([haas_rows("a", 0.5), haas_rows("b", 1.5)])
    means = analysis.method_means(frame, sums)
    assert means.loc["a", "top_k_precision"] == pytest.approx(0.8)
    assert means.loc["b", "max_sensitivity"] == pytest.approx(1.0)
    ranks = analysis.oriented_ranks(means, analysis.directions(frame, sums))
    assert ranks.loc["a", "top_k_precision"] == 1.0 and ranks.loc["b", "top_k_precision"] == 0.5
    # lower is better: b's smaller sensitivity ranks first
    assert ranks.loc["b", "max_sensitivity"] == 1.0 and ranks.loc["a", "max_sensitivity"] == 0.5
    # HAAS = Acc(HA)/Acc(x), higher is better: b's 1.5 ranks first
    assert means.loc["b", "haas"] == 1.5 and ranks.loc["b", "haas"] == 1.0


def test_rows_that_rank_nothing_are_not_means_columns():
    frame = results(score_rows("a", "iou", [0.5], "higher")
                    + [{"method": "a", "metric": "haas", "output": "correct_x", "sample_id": "0",
                        "value": 1.0, "direction": "none"}])
    assert list(analysis.method_means(frame, pd.DataFrame(columns=["metric", "output"])).columns) \
        == ["iou"]


def test_randomisation_curves_average_over_samples_per_layer():
    curves = pd.DataFrame([{"method": "saliency", "metric": "model_randomisation",
                            "curve": "spearman", "sample_id": s, "x": x, "value": v}
                           for s, values in (("0", (0.9, 0.1)), ("1", (0.7, 0.3)))
                           for x, v in zip((1.0, 2.0), values)])
    out = analysis.randomisation_curves(curves)
    assert out["spearman"].tolist() == pytest.approx([0.8, 0.2])
    assert out["layers randomised"].tolist() == [1.0, 2.0]


def test_model_scores_pivot_the_classification_summaries():
    sums = pd.DataFrame([{"model_id": "m", "metric": "classification", "output": o, "value": v}
                         for o, v in (("accuracy", 0.9), ("balanced_accuracy", 0.8))]
                        + [haas_rows("a", 1.2) | {"model_id": "m"}])
    table = analysis.model_scores(sums)
    assert table.loc["m", "accuracy"] == 0.9 and "haas" not in table.columns


def test_one_explain_job_per_model_and_no_gallery_in_scoring_keys():
    config = STUDY.config("tiny")
    by_stage = {s.name: s.jobs for s in stages(config)}
    assert len(by_stage["explain and score"]) == len(config.parts)
    bigger = STUDY.config("tiny", ["gallery=5"])
    again = {s.name: s.jobs for s in stages(bigger)}
    for name in ("data", "train", "explain and score"):
        assert [j.key for j in again[name]] == [j.key for j in by_stage[name]], name
    assert [j.key for j in again["gallery"]] != [j.key for j in by_stage["gallery"]]
