"""salbench.results.stats against literal re-implementations, scipy, and hand-computed cases."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from salbench.results.stats import (
    _paired_test,
    bootstrap_ci,
    holm,
    leaderboard,
    metric_agreement,
    ranked_rows,
    signed_rank_test,
)

LOWER = {"max_sensitivity"}


def literal_bootstrap(values, n_boot, confidence, seed):
    """The definition, one resample per loop iteration: draw n indices, take the mean."""
    rng = np.random.default_rng(seed)
    x = np.asarray(values, dtype=float)
    n = len(x)
    means = []
    for _ in range(n_boot):
        idx = [int(u * n) for u in rng.random(n)]
        means.append(sum(x[i] for i in idx) / n)
    alpha = (1 - confidence) / 2
    return x.mean(), np.quantile(means, alpha), np.quantile(means, 1 - alpha)


def literal_holm_reject(p, alpha):
    """Holm's step-down procedure as stated: reject p_(1..k-1) where k is the first i with
    p_(i) > alpha / (m - i + 1)."""
    order = np.argsort(p, kind="stable")
    m = len(p)
    reject = np.zeros(m, dtype=bool)
    for i, j in enumerate(order, start=1):
        if p[j] > alpha / (m - i + 1):
            break
        reject[j] = True
    return reject


def rec(method, metric, sample_id, value, dataset="d", model_id="m", direction=None):
    """A ``results`` row; its direction is what the registry says for these metrics."""
    return {"dataset": dataset, "model_id": model_id, "method": method, "metric": metric,
            "output": metric, "sample_id": sample_id, "value": value,
            "direction": direction or ("lower" if metric in LOWER else "higher")}


def rows(records):
    """Results rows as the leaderboard reads them (:func:`ranked_rows`)."""
    frame = pd.DataFrame(records)
    for col, default in (("study", "s"), ("run", "r"), ("metric_params", "{}"),
                         ("method_params", "{}"), ("meta", "{}")):
        if col not in frame:
            frame[col] = default
    return ranked_rows(frame)


# --- bootstrap -------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [4_000_000, 7])  # one chunk, and many chunks of one resample
def test_bootstrap_matches_literal_loop(chunk):
    values = np.random.default_rng(3).normal(size=23)
    got = bootstrap_ci(values, n_boot=300, confidence=0.9, rng=11, chunk_elements=chunk)
    want = literal_bootstrap(values, 300, 0.9, 11)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=30), st.integers(0, 2**31),
       st.integers(1, 60))
def test_bootstrap_matches_literal_loop_random(values, seed, n_boot):
    got = bootstrap_ci(values, n_boot=n_boot, rng=seed, chunk_elements=50)
    want = literal_bootstrap(values, n_boot, 0.95, seed)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_bootstrap_width_matches_normal_theory():
    """For a mean of n normal values the 95 % interval is about ±1.96 σ/√n."""
    x = np.random.default_rng(0).normal(2.0, 3.0, size=400)
    mean, low, high = bootstrap_ci(x, n_boot=4000, rng=1)
    expected = 2 * 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert mean == pytest.approx(x.mean())
    assert low < mean < high
    assert (high - low) == pytest.approx(expected, rel=0.08)


def test_bootstrap_edge_cases_and_errors():
    assert bootstrap_ci([4.0], n_boot=10) == (4.0, 4.0, 4.0)
    assert all(np.isnan(v) for v in bootstrap_ci([], n_boot=10))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([1.0], n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0], confidence=1.0)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([1.0, np.nan])


# --- Holm ------------------------------------------------------------------------------------

def test_holm_hand_computed():
    # sorted 0.005, 0.01, 0.03, 0.04 -> ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 -> cummax
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.3]), [0.6, 0.6])          # 0.6, max(0.6, 0.5)
    np.testing.assert_allclose(holm([0.4, 0.6, 0.9]), [1.0, 1.0, 1.0])  # clipped at 1
    out = holm([np.nan, 0.02, 0.5])                                   # NaN excluded: m = 2
    assert np.isnan(out[0])
    np.testing.assert_allclose(out[1:], [0.04, 0.5])
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError, match="p_values"):
        holm([0.1, 1.5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.sampled_from([0.01, 0.05, 0.2]))
def test_holm_rejections_match_step_down_procedure(p, alpha):
    p = np.array(p)
    adjusted = holm(p)
    assert np.all(adjusted >= p - 1e-15) and np.all(adjusted <= 1)
    np.testing.assert_array_equal(adjusted <= alpha, literal_holm_reject(p, alpha))


# --- leaderboard -----------------------------------------------------------------------------

def paired_frame(seed=0, n=18, drop=("b", "5")):
    """Methods a, b, c on samples 0..n-1 of one model; method b lacks sample 5."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n)
    records = []
    for method, shift in (("a", 0.0), ("b", 0.8), ("c", 0.1)):
        vals = base + shift + rng.normal(scale=0.5, size=n)
        for s in range(n):
            if (method, str(s)) == drop:
                continue
            records.append(rec(method, "top_k_precision", str(s), vals[s]))
    frame = rows(records)
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)  # order must not matter


def test_wilcoxon_p_values_match_scipy_on_aligned_pairs():
    frame = paired_frame()
    board = leaderboard(frame, n_boot=50)
    wide = frame.pivot(index="sample_id", columns="method", values="value")
    ps = []
    for a, b in (("a", "b"), ("a", "c"), ("b", "c")):
        pair = wide[[a, b]].dropna()
        ref = sps.wilcoxon(pair[a], pair[b])
        row = board.tests[(board.tests.method_a == a) & (board.tests.method_b == b)].iloc[0]
        assert row["n"] == len(pair) == (17 if "b" in (a, b) else 18)
        assert row["statistic"] == pytest.approx(ref.statistic)
        assert row["p"] == pytest.approx(ref.pvalue, rel=1e-12)
        assert row["median_diff"] == pytest.approx(np.median(pair[a] - pair[b]))
        ps.append(ref.pvalue)
    np.testing.assert_allclose(board.tests["p_holm"], holm(ps))
    significant = board.tests[board.tests.p_holm <= 0.05]
    assert set(significant["better"]) <= {"b"}  # b's shift of 0.8 is the only real effect
    assert (board.tests.loc[board.tests.p_holm > 0.05, "better"] == "").all()


@pytest.mark.parametrize("kind", ["continuous", "small integers", "one decimal", "sevenths"])
def test_signed_rank_test_equals_scipys_wilcoxon_on_every_path(kind):
    """scipy's method="auto" takes four paths: exact (n <= 50, no ties or zeros), the 2**n sign
    flips (n <= 13 with ties or zeros), and the normal approximation (n > 50, or ties/zeros at
    14 <= n <= 50). Sizes 1..60 and inputs with and without ties and zeros reach each one; the
    p-values must be bitwise scipy's."""
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    draw = {"continuous": lambda n: rng.normal(size=n),
            "small integers": lambda n: rng.integers(-3, 4, size=n).astype(float),
            "one decimal": lambda n: np.round(rng.normal(size=n), 1),
            "sevenths": lambda n: rng.integers(-20, 21, size=n) / 7.0}[kind]
    checked = 0
    for n in [*range(1, 61), *range(1, 61)]:
        d = draw(n)
        if not np.any(d != 0):
            continue
        statistic, p = signed_rank_test(d)
        ref = sps.wilcoxon(d, zero_method="wilcox")
        assert statistic == float(ref.statistic)
        assert p == float(ref.pvalue), (n, d)
        checked += 1
    assert checked > 100


def test_signed_rank_test_by_hand():
    """d = (1, -2, 3): R+ = 1 + 3 = 4, R- = 2; the 8 sign patterns give R+ in
    {0, 1, 2, 3, 3, 4, 5, 6}, so P(R+ >= 4) = 3/8 and p = 2 * 3/8 = 0.75. With a zero added
    (dropped) and a tie, d = (0, 1, -1, 2): ranks 1.5, 1.5, 3, R+ = 4.5, R- = 1.5; the subsets
    of {1.5, 1.5, 3} sum to {0, 1.5, 1.5, 3, 3, 4.5, 4.5, 6}: P(R+ >= 4.5) = 3/8, p = 0.75."""
    assert signed_rank_test(np.array([1.0, -2.0, 3.0])) == (2.0, 0.75)
    assert signed_rank_test(np.array([0.0, 1.0, -1.0, 2.0])) == (1.5, 0.75)
    with pytest.raises(ValueError, match="nonzero"):
        signed_rank_test(np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        signed_rank_test(np.array([np.nan, 1.0, 2.0]))


def test_the_same_infinity_on_a_unit_is_a_zero_difference():
    """Both methods at +inf on one unit: inf - inf is NaN, which must neither rank (as the
    largest negative difference) nor poison the test; it is a tie, dropped like any zero."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20), rng.normal(size=20)
    a[3] = b[3] = np.inf
    row = _paired_test(a, b, "a", "b", lower=False)
    with np.errstate(invalid="ignore"):
        d = a - b
    d[3] = 0.0
    ref = sps.wilcoxon(d, zero_method="wilcox")
    assert (row["statistic"], row["p"]) == (float(ref.statistic), float(ref.pvalue))
    assert row["median_diff"] == np.median(d)


def test_identical_methods_get_p_one():
    frame = paired_frame()
    twin = frame[frame.method == "a"].assign(method="a2")
    board = leaderboard(pd.concat([frame, twin]), n_boot=20)
    row = board.tests[(board.tests.method_a == "a") & (board.tests.method_b == "a2")].iloc[0]
    assert row["p"] == 1.0 and row["statistic"] == 0.0


def test_ranks_and_directions_on_hand_case():
    means = {"x": (0.9, 0.1), "y": (0.5, 0.5), "z": (0.5, 0.3)}  # (top_k_precision, max_sens.)
    records = [rec(m, metric, str(s), v[k] + (0.01 if s else -0.01))
               for m, v in means.items() for s in range(2)
               for k, metric in enumerate(("top_k_precision", "max_sensitivity"))]
    board = leaderboard(rows(records), n_boot=20)
    rank = board.scores.set_index(["score", "method"])["rank"]
    # higher-better: 0.9 > 0.5 = 0.5 -> 1, 2, 2 (ties share the best rank)
    assert [rank["top_k_precision", m] for m in "xyz"] == [1, 2, 2]
    # max_sensitivity is lower-better: 0.1 < 0.3 < 0.5 -> x 1, z 2, y 3
    assert [rank["max_sensitivity", m] for m in "xyz"] == [1, 3, 2]
    # the direction is read from the rows: flip it there and the ranks flip
    flipped = [{**r, "direction": "higher" if r["direction"] == "lower" else "lower"}
               for r in records]
    rank = leaderboard(rows(flipped), n_boot=20).scores.set_index(["score", "method"])["rank"]
    assert [rank["max_sensitivity", m] for m in "xyz"] == [3, 1, 2]
    assert [rank["top_k_precision", m] for m in "xyz"] == [3, 1, 1]
    table = board.table("d")
    assert list(table.index) == ["x", "z", "y"]  # by mean rank: 1, 2, 2.5
    assert table.loc["x", "max_sensitivity ↓"].endswith("#1")
    assert table["mean rank"].tolist() == [1.0, 2.0, 2.5]


def test_ranked_rows_take_directions_from_the_rows_and_name_the_params():
    """No name is parsed: a metric called like a lower-is-better one ranks upward when its row
    says higher, rows with direction ``none`` do not rank, and non-default parameters name the
    score (region perturbation's LRF AUC is higher-better, its MoRF AUC lower-better)."""
    records = [rec("a", "max_sensitivity", "0", 1.0, direction="higher"),
               rec("a", "haas", "0", 1.0, direction="none"),
               {**rec("a", "region_perturbation", "0", 0.2, direction="lower"), "output": "auc",
                "metric_params": '{"order": "morf"}'},
               {**rec("a", "region_perturbation", "0", 0.7, direction="higher"), "output": "auc",
                "metric_params": '{"order": "lrf"}'}]
    ranked = rows(records).set_index("score")
    assert set(ranked.index) == {"max_sensitivity", "region_perturbation.auc",
                                 "region_perturbation.auc [order=lrf]"}
    assert ranked.loc["max_sensitivity", "direction"] == "higher"
    assert ranked.loc["region_perturbation.auc [order=lrf]", "direction"] == "higher"
    assert ranked.loc["region_perturbation.auc", "direction"] == "lower"
    clash = [rec("a", "iou", "0", 1.0), rec("b", "iou", "0", 1.0, direction="lower")]
    with pytest.raises(ValueError, match="both directions"):
        rows(clash)


def test_scores_pool_units_and_use_per_group_seeds():
    frame = paired_frame()
    # the same method scored with two params on every unit: averaged per unit, n counts units
    dup = frame[frame.method == "c"].assign(value=lambda f: f.value + 1.0,
                                            method_params='{"p": 2}')
    board = leaderboard(pd.concat([frame, dup]), n_boot=100, seed=7)
    c = board.scores.set_index("method").loc["c"]
    unit = frame[frame.method == "c"].sort_values("sample_id").value.to_numpy() + 0.5
    assert c["n"] == 18 and c["mean"] == pytest.approx(unit.mean())
    key = b"d\0top_k_precision\0c"
    # resampling follows the units' sorted order (run, model_id, sample_id)
    values = (pd.concat([frame, dup]).query("method == 'c'").groupby("sample_id").value.mean()
              .to_numpy())
    want = bootstrap_ci(values, n_boot=100, rng=np.random.default_rng([7, zlib.crc32(key)]))
    assert (c["mean"], c["ci_low"], c["ci_high"]) == pytest.approx(want)
    # entry=("method", "method_params") ranks each setting on its own
    split = leaderboard(pd.concat([frame, dup]), n_boot=20, entry=("method", "method_params"))
    c_rows = split.scores[split.scores.method == "c"]
    assert sorted(c_rows.method_params) == ["{\"p\": 2}", "{}"] and (c_rows.n == 18).all()
    assert c_rows["mean"].max() - c_rows["mean"].min() == pytest.approx(1.0)
    # adding a method leaves the others' intervals unchanged
    extra = frame[frame.method == "a"].assign(method="new", value=lambda f: f.value * 2)
    again = leaderboard(pd.concat([frame, dup, extra]), n_boot=100, seed=7)
    pd.testing.assert_frame_equal(
        again.scores[again.scores.method != "new"].drop(columns="rank").reset_index(drop=True),
        board.scores.drop(columns="rank").reset_index(drop=True))


def test_non_finite_values_are_left_out():
    frame = paired_frame()
    bad = frame[frame.method == "a"].head(2).assign(value=[np.nan, np.inf], sample_id=["x", "y"])
    board = leaderboard(pd.concat([frame, bad]), n_boot=30)
    clean = leaderboard(frame, n_boot=30)
    pd.testing.assert_frame_equal(board.scores, clean.scores)
    rho = metric_agreement(pd.concat([frame, bad]))
    assert rho.shape == (1, 1)


def test_leaderboard_is_per_dataset_and_checks_input():
    frame = pd.concat([paired_frame(0).assign(dataset="d1"), paired_frame(1).assign(dataset="d2")])
    board = leaderboard(frame, n_boot=20)
    assert sorted(board.scores.dataset.unique()) == ["d1", "d2"]
    assert len(board.tests) == 6  # 3 pairs per dataset
    with pytest.raises(ValueError, match="missing columns"):
        leaderboard(frame.drop(columns="sample_id"))
    with pytest.raises(TypeError, match="DataFrame"):
        leaderboard(frame.to_dict())
    with pytest.raises(ValueError, match="alpha"):
        leaderboard(frame, alpha=2)
    with pytest.raises(ValueError, match="seed"):
        leaderboard(frame, seed=-1)
    with pytest.raises(ValueError, match="dataset"):
        board.table("nope")


# --- metric agreement ------------------------------------------------------------------------

def test_metric_agreement_against_scipy_on_unit_means():
    rng = np.random.default_rng(5)
    records = []
    for model in ("m1", "m2"):
        for method in ("a", "b", "c", "d"):
            quality = rng.normal()
            for s in range(4):
                noise = rng.normal(scale=0.3)
                records += [
                    rec(method, "top_k_precision", str(s), quality + noise, model_id=model),
                    rec(method, "max_sensitivity", str(s), -quality + rng.normal(), model_id=model),
                    # iou is a monotone function of top_k_precision here: rho = 1
                    rec(method, "iou", str(s), np.exp(quality + noise), model_id=model),
                ]
    frame = rows(records)
    rho = metric_agreement(frame)
    means = frame.groupby(["model_id", "method", "score"]).value.mean().unstack()
    assert rho.loc["top_k_precision", "iou"] == pytest.approx(
        sps.spearmanr(means["top_k_precision"], means["iou"]).statistic)
    # oriented: lower-better max_sensitivity is negated before correlating
    want = sps.spearmanr(means["top_k_precision"], -means["max_sensitivity"]).statistic
    assert rho.loc["top_k_precision", "max_sensitivity"] == pytest.approx(want)
    raw = metric_agreement(frame, oriented=False)
    assert raw.loc["top_k_precision", "max_sensitivity"] == pytest.approx(-want)
    assert np.allclose(np.diag(rho), 1.0) and np.allclose(rho, rho.T, equal_nan=True)


def test_metric_agreement_needs_enough_units():
    records = [rec(m, k, "0", v) for m, v in (("a", 1.0), ("b", 2.0)) for k in ("p", "q")]
    rho = metric_agreement(rows(records))
    assert np.isnan(rho.loc["p", "q"]) and rho.loc["p", "p"] == 1.0
    with pytest.raises(ValueError, match="min_units"):
        metric_agreement(rows(records), min_units=1)
