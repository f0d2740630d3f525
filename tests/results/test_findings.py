"""Findings: verdicts computed from intervals (and flipping with the data), gates that make a
finding untestable, and the bootstrap helpers against their definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from salbench.results.findings import (
    VERDICTS,
    Finding,
    Gate,
    decide,
    finding,
    gate,
    mean_interval,
    not_testable,
    paired_difference,
    pearson,
    rng_for,
    statistic_interval,
    verdict_counts,
)


@pytest.mark.parametrize("low, high, bound, side, verdict", [
    (0.1, 0.3, 0.0, "above", "agrees"), (-0.3, -0.1, 0.0, "above", "disagrees"),
    (-0.1, 0.2, 0.0, "above", "inconclusive"), (0.91, 0.95, 0.9, "above", "agrees"),
    (0.85, 0.89, 0.9, "above", "disagrees"), (0.85, 0.89, 0.9, "below", "agrees"),
    (0.95, 0.99, 0.9, "below", "disagrees"), (np.nan, 0.3, 0.0, "above", "not testable here"),
])
def test_decide_compares_the_interval_with_the_bound(low, high, bound, side, verdict):
    assert decide(low, high, bound, side) == verdict


def test_a_claim_flips_from_agrees_to_disagrees_with_the_data():
    """"A's precision is higher than B's", paired over samples: the verdict follows the data."""
    rng = np.random.default_rng(0)
    base = pd.Series(rng.random(60), index=[f"s{i}" for i in range(60)])
    for shift, verdict in ((0.2, "agrees"), (-0.2, "disagrees"), (0.0, "inconclusive")):
        a = base + shift + pd.Series(rng.normal(0, 0.01, 60), index=base.index)
        f = finding("demo", "A beats B", "4.1", "A > B",
                    paired_difference(a, base, rng_for("demo", shift)), scale="tiny")
        assert f.verdict == verdict, shift
        assert f.low <= f.measured <= f.high and f.n == 60


def test_a_missed_gate_makes_the_finding_untestable_and_says_why():
    summaries = pd.DataFrame([
        {"metric": "classification", "output": "accuracy", "model_id": m, "value": v}
        for m, v in (("vgg", 0.5), ("resnet", 0.97))])
    g = gate(summaries, 0.9)
    assert not g.passed and g.failing == {"vgg": 0.5}
    f = finding("demo", "claim", "4", "> 0.9", (0.5, 0.4, 0.6, 100), scale="tiny", gate_=g,
                bound=0.9)
    assert f.verdict == "not testable here" and "vgg 0.500" in f.note
    # a finding that needs only the model that passed is tested
    f = finding("demo", "claim", "4", "> 0.9", (0.97, 0.95, 0.99, 100), scale="tiny", gate_=g,
                models=["resnet"], bound=0.9)
    assert f.verdict == "agrees"
    missing = gate(summaries, 0.9, models=["alexnet"])
    assert not missing.passed and np.isnan(missing.failing["alexnet"])


def test_too_few_observations_are_not_testable():
    f = finding("demo", "claim", "4", "r > 0", (0.9, 0.5, 1.0, 2), scale="tiny")
    assert f.verdict == "not testable here" and "only 2" in f.note


def test_mean_interval_and_statistic_interval_match_their_definitions():
    x = np.arange(20.0)
    mean, low, high, n = mean_interval(np.append(x, np.nan), rng_for("x"))
    assert (mean, n) == (9.5, 20) and low < mean < high
    y = 2 * x + 1
    r, lo, hi, n = statistic_interval(pearson, x, y, rng=rng_for("r"))
    assert r == pytest.approx(1.0) and lo == pytest.approx(1.0) and n == 20
    ratio, lo, hi, _ = statistic_interval(lambda a, b: a.mean() / b.mean(), x + 1, y + 1,
                                          rng=rng_for("q"))
    assert ratio == pytest.approx((x + 1).mean() / (y + 1).mean()) and lo <= ratio <= hi
    assert np.isnan(pearson(np.ones(5), x[:5]))


def test_findings_serialise_and_count_and_bad_verdicts_are_refused():
    found = [finding("d", "c", "1", "x", (1.0, 0.5, 1.5, 10), scale="small"),
             not_testable("d", "c2", "2", "y", "no ImageNet weights here", scale="small")]
    assert found[0].to_dict()["verdict"] == "agrees"
    assert verdict_counts(found) == {"agrees": 1, "disagrees": 0, "inconclusive": 0,
                                     "not testable here": 1}
    assert set(verdict_counts([])) == set(VERDICTS)
    with pytest.raises(ValueError, match="verdict"):
        Finding("d", "c", "1", "x", 1.0, 0.0, 2.0, 3, "maybe", "tiny")


def test_the_gate_banner_says_missed_passed_or_not_checked():
    missed = Gate("accuracy", 0.9, {"a": 0.95, "b": 0.5})
    assert missed.banner().startswith("ACCURACY GATE MISSED (accuracy gate 0.9 missed: b 0.500)")
    assert Gate("accuracy", 0.9, {"a": 0.95}).banner() == ""
    assert Gate("accuracy", 0.9, {}).banner().startswith("ACCURACY GATE NOT CHECKED")
