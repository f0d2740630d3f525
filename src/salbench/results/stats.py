"""Statistics over a run's long results: leaderboard with bootstrap CIs, ranks, paired tests, and
metric agreement.

None of this is in the source documents; it is salbench's cross-study summary (issue 7, "Beyond
the documents"). Input is the ``results`` table (:func:`salbench.results.read_results`) reduced
to the rows that rank (:func:`ranked_rows`): each row's ``direction`` says whether higher or
lower is better, and ``score`` names the metric output and its non-default parameters.

Choices (each an argument):

- The unit of observation is one (``run``, ``model_id``, ``sample_id``) triple (``units``). Rows of
  one method on one unit (e.g. several ``method_params`` of the same method) are averaged first;
  a study that wants each setting ranked separately names them as separate methods or passes
  ``entry=("method", "method_params")``.
- Means are pooled over every model and sample of a dataset; the CI is the percentile bootstrap
  over units.
- Paired tests compare two methods on the units both were scored on (two-sided Wilcoxon
  signed-rank, zero differences dropped: ``zero_method="wilcox"``); Holm's correction runs over
  all method pairs of one (dataset, score).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from salbench.metrics.registry import label

UNITS = ("run", "model_id", "sample_id")
"""Columns that identify one paired observation (one sample, explained on one model of one run)."""

RANKED = ("higher", "lower")
"""Directions that rank methods; rows with direction ``none`` describe, they do not rank."""


def ranked_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of a ``results`` table that rank methods (direction ``higher`` or ``lower``, from
    the metric registry, carried by each row), with ``score`` naming what was measured:
    :func:`salbench.metrics.label` of (metric, output, metric params), e.g. ``aopc [region=14]``.
    Nothing here reads a direction from a name."""
    _check_columns(results, ["metric", "output", "metric_params", "direction", "value"])
    rows = results[results["direction"].isin(RANKED)].copy()
    keys = rows[["metric", "output", "metric_params"]].drop_duplicates()
    names = {(m, o, p): _label(m, o, p) for m, o, p in keys.itertuples(index=False)}
    rows["score"] = [names[k] for k in zip(rows["metric"], rows["output"], rows["metric_params"])]
    clash = rows.groupby("score")["direction"].nunique()
    if bool((clash > 1).any()):
        raise ValueError(f"scores {list(clash[clash > 1].index)} carry both directions")
    return rows


def _label(metric: str, output: str, params: str) -> str:
    try:
        return label(metric, output, json.loads(params) if params else {})
    except (ValueError, TypeError):  # a metric this version does not register
        return metric if output == metric else f"{metric}.{output}"


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, n_boot: int = 2000,
                 confidence: float = 0.95, rng: np.random.Generator | int = 0,
                 chunk_elements: int = 4_000_000) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval ``(mean, low, high)``.

    Resample b draws n indices ``floor(u * n)`` from ``u = rng.random(n)`` (so resample b uses
    exactly the numbers a per-resample loop would draw), takes the mean; ``low``/``high`` are the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (linear interpolation) of the
    ``n_boot`` resampled means. Vectorised in chunks of at most ``chunk_elements`` draws. A single
    value gives a zero-width interval; an empty input gives NaNs.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite (NaN or infinite values are not scored)")
    rng = np.random.default_rng(rng)
    n = x.size
    if n == 0:
        return (np.nan, np.nan, np.nan)
    rows = max(1, chunk_elements // n)
    means = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = (rng.random((stop - start, n)) * n).astype(np.intp)
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(x.mean()), float(low), float(high))


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order.

    With the m finite p-values sorted ascending, p_(1) ≤ … ≤ p_(m):
    p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)). Rejecting where p̃ ≤ α controls the
    family-wise error rate at α. NaN entries stay NaN and do not count in m.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p_values must lie in [0, 1] (NaN allowed)")
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def unit_means(df: pd.DataFrame, entry: Sequence[str] = ("method",),
               units: Sequence[str] = UNITS, by: Sequence[str] = ("dataset",)) -> pd.DataFrame:
    """One value per (by…, score, entry…, unit…): the mean of the rows sharing those keys.
    Non-finite values (a metric undefined on a sample) are left out."""
    _check_columns(df, [*by, *entry, *units, "score", "direction", "value"])
    keys = [*by, "score", "direction", *entry, *units]
    df = df[np.isfinite(df["value"].to_numpy(dtype=np.float64))]
    return df.groupby(keys, sort=True, dropna=False, observed=True)["value"].mean().reset_index()


@dataclass(frozen=True)
class Leaderboard:
    """Result of :func:`leaderboard`.

    ``scores``: one row per (dataset, score, method) with ``n`` (units), ``mean``, ``ci_low``,
    ``ci_high``, ``lower_is_better`` and ``rank`` (1 = best within the dataset and score; ties
    share the best rank). ``tests``: one row per (dataset, metric, method_a, method_b) with ``n``
    shared units, ``statistic`` and ``p`` of the Wilcoxon signed-rank test, ``median_diff``
    (median of a − b), ``p_holm`` and ``better`` (the method with the better mean where
    ``p_holm ≤ alpha``, else empty).
    """

    scores: pd.DataFrame
    tests: pd.DataFrame
    entry: tuple[str, ...]
    confidence: float
    alpha: float

    def table(self, dataset: str, digits: int = 3) -> pd.DataFrame:
        """Display table for one dataset: methods × metrics cells "mean [low, high] #rank",
        plus a ``mean rank`` column, rows sorted by mean rank."""
        scores = self.scores[self.scores["dataset"] == dataset]
        if scores.empty:
            raise ValueError(f"dataset {dataset!r} has no scores; "
                             f"have {sorted(self.scores['dataset'].unique())}")
        names = scores[list(self.entry)].astype(str).agg(" ".join, axis=1)
        cell = [f"{m:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}] #{int(r)}"
                for m, lo, hi, r in zip(scores["mean"], scores["ci_low"], scores["ci_high"],
                                        scores["rank"])]
        frame = pd.DataFrame({"method": names, "score": scores["score"], "cell": cell,
                              "rank": scores["rank"]})
        wide = frame.pivot(index="method", columns="score", values="cell")
        wide.columns = [f"{c} {'↓' if _lower_col(scores, c) else '↑'}"
                        for c in wide.columns]
        wide["mean rank"] = frame.groupby("method")["rank"].mean().round(2)
        wide = wide.sort_values("mean rank", kind="stable").fillna("–")
        wide.columns.name = None
        return wide


def _lower_col(scores: pd.DataFrame, score: str) -> bool:
    return bool(scores.loc[scores["score"] == score, "lower_is_better"].iloc[0])


def leaderboard(df: pd.DataFrame, *, n_boot: int = 2000, confidence: float = 0.95,
                alpha: float = 0.05, seed: int = 0, entry: Sequence[str] = ("method",),
                units: Sequence[str] = UNITS, by: Sequence[str] = ("dataset",)) -> Leaderboard:
    """Every method × every score per dataset: bootstrap mean and CI, rank, paired tests.

    ``df``: :func:`ranked_rows` of a results table (columns ``score`` and ``direction``). Each
    (dataset, score, method) gets its own generator ``default_rng([seed, crc32(key)])``, so
    adding a method never changes another's CI. Ranks follow the means in each row's direction;
    Wilcoxon tests use the units both methods share, with Holm's correction per dataset and
    score at level ``alpha``.
    """
    entry, units, by = tuple(entry), tuple(units), tuple(by)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    means = unit_means(df, entry, units, by)
    score_rows, test_rows = [], []
    for key, group in means.groupby([*by, "score", "direction"], sort=True, observed=True):
        key = dict(zip([*by, "score", "direction"], key))
        lower = key.pop("direction") == "lower"
        wide = group.pivot_table(index=list(units), columns=list(entry), values="value",
                                 aggfunc="first", observed=True)
        methods = list(wide.columns)
        values = wide.to_numpy(dtype=np.float64)  # [unit, method], NaN where not scored
        scored = ~np.isnan(values)
        for k, method in enumerate(methods):
            name = method if isinstance(method, tuple) else (method,)
            seed_key = "\0".join(str(v) for v in (*key.values(), *name)).encode()
            rng = np.random.default_rng([seed, zlib.crc32(seed_key)])
            column = values[scored[:, k], k]
            mean, low, high = bootstrap_ci(column, n_boot=n_boot, confidence=confidence, rng=rng)
            score_rows.append({**key, **dict(zip(entry, name)), "n": column.size, "mean": mean,
                               "ci_low": low, "ci_high": high, "lower_is_better": lower})
        pair_rows = []
        for i, j in combinations(range(len(methods)), 2):
            shared = scored[:, i] & scored[:, j]
            pair_rows.append(_paired_test(values[shared, i], values[shared, j],
                                          methods[i], methods[j], lower))
        adjusted = holm([r["p"] for r in pair_rows]) if pair_rows else []
        for row, p_adj in zip(pair_rows, adjusted):
            better = row.pop("_better")
            row.update(p_holm=p_adj, better=better if p_adj <= alpha else "")
            test_rows.append({**key, **row})
    score_cols = [*by, "score", *entry, "n", "mean", "ci_low", "ci_high", "lower_is_better"]
    scores = pd.DataFrame(score_rows, columns=score_cols)
    if not scores.empty:
        signed = scores["mean"].where(~scores["lower_is_better"], -scores["mean"])
        scores["rank"] = (signed.groupby([scores[c] for c in [*by, "score"]])
                          .rank(ascending=False, method="min").astype(int))
    else:
        scores["rank"] = pd.Series(dtype=int)
    test_cols = [*by, "score", "method_a", "method_b", "n", "statistic", "p", "median_diff",
                 "p_holm", "better"]
    tests = pd.DataFrame(test_rows, columns=test_cols)
    return Leaderboard(scores=scores, tests=tests, entry=entry, confidence=confidence,
                       alpha=alpha)


def _paired_test(x: np.ndarray, y: np.ndarray, a, b, lower: bool) -> dict:
    """Two-sided Wilcoxon signed-rank test of methods ``a`` and ``b`` on their shared units,
    where they scored ``x`` and ``y``."""
    with np.errstate(invalid="ignore"):  # the same infinity on a unit: no difference, not NaN
        diff = np.where(x == y, 0.0, x - y)

    def label(m) -> str:
        return " ".join(map(str, m)) if isinstance(m, tuple) else str(m)

    row = {"method_a": label(a), "method_b": label(b), "n": int(diff.size),
           "statistic": np.nan, "p": np.nan,
           "median_diff": float(np.median(diff)) if diff.size else np.nan}
    if diff.size and np.all(diff == 0):
        row.update(statistic=0.0, p=1.0)  # identical scores: no evidence of a difference
    elif diff.size:
        statistic, p = signed_rank_test(diff)
        row.update(statistic=statistic, p=p)
    a_better = diff.size and ((x.mean() < y.mean()) if lower else (x.mean() > y.mean()))
    row["_better"] = row["method_a"] if a_better else row["method_b"]
    return row


EXACT_MAX_N = 50
"""Largest sample without ties or zeros whose p-value comes from the exact null distribution."""
SIGN_FLIP_MAX_N = 13
"""Largest sample with ties or zeros whose p-value enumerates all 2**n sign flips."""


def signed_rank_test(diff: np.ndarray) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired differences ``diff`` (not all zero), zeros
    dropped: ``(min(R+, R-), p)``, equal to ``scipy.stats.wilcoxon(diff, zero_method="wilcox")``
    (its ``method="auto"``) without its per-call overhead or its enumeration of sign flips.

    R+ (R-) is the sum of the average ranks of |d| over the positive (negative) nonzero d. The
    p-value follows scipy's choice: for n <= :data:`EXACT_MAX_N` without ties or zeros, or for
    n <= :data:`SIGN_FLIP_MAX_N` otherwise, the exact distribution of R+ under random signs,
    p = min(1, 2 min(P(R+ <= r), P(R+ >= r))) (zeros keep their sign under every flip, so they
    drop out of it); else the normal approximation with the tie correction
    Var = (m(m+1)(2m+1) - Σ(t³ - t)/2) / 24, m the nonzero count, t the tie group sizes."""
    n = diff.size
    if np.isnan(diff).any():
        raise ValueError("diff holds NaN; expected paired differences (the same infinity on "
                         "both sides is a difference of 0)")
    nonzero = diff[diff != 0]
    m = nonzero.size
    if m == 0:
        raise ValueError("diff must hold at least one nonzero difference")
    magnitude = np.abs(nonzero)
    order = np.argsort(magnitude, kind="stable")
    sorted_magnitude = magnitude[order]
    first = np.r_[True, sorted_magnitude[1:] != sorted_magnitude[:-1]]
    starts = np.flatnonzero(first)
    ties = np.diff(np.r_[starts, m])
    # twice the average rank of each tie group: (first + last) ordinal ranks, an exact integer
    twice_ranks = np.empty(m, dtype=np.int64)
    twice_ranks[order] = np.repeat(2 * starts + ties + 1, ties)
    twice_plus = int(twice_ranks[nonzero > 0].sum())
    twice_minus = int(twice_ranks.sum()) - twice_plus
    statistic = min(twice_plus, twice_minus) / 2
    has_ties, has_zeros = bool((ties > 1).any()), m < n
    if n <= SIGN_FLIP_MAX_N or (n <= EXACT_MAX_N and not (has_ties or has_zeros)):
        counts = _subset_sum_counts(tuple(sorted(twice_ranks.tolist())))
        below, above = counts[:twice_plus + 1].sum(), counts[twice_plus:].sum()
        return statistic, min(1.0, 2 * float(min(below, above)) / 2.0 ** m)
    mean = m * (m + 1) / 4
    tied = ties.astype(np.float64)  # t³ overflows int64 beyond 2**21 equal values
    variance = (m * (m + 1) * (2 * m + 1) - float((tied ** 3 - tied).sum()) / 2) / 24
    z = (twice_plus / 2 - mean) / np.sqrt(variance)
    return statistic, float(2 * special.ndtr(-abs(z)))


@lru_cache(maxsize=4096)
def _subset_sum_counts(twice_ranks: tuple[int, ...]) -> np.ndarray:
    """``counts[s]``: how many of the 2**m subsets of ``twice_ranks`` sum to ``s`` (the null
    distribution of 2 R+ when every sign is + or - with probability 1/2)."""
    counts = np.zeros(sum(twice_ranks) + 1, dtype=np.int64)
    counts[0] = 1
    for value in twice_ranks:
        counts[value:] = counts[value:] + counts[:counts.size - value]
    counts.setflags(write=False)  # cached: shared by every caller
    return counts


def metric_agreement(df: pd.DataFrame, *, units: Sequence[str] = ("dataset", "model_id",
                                                                   "method"),
                     oriented: bool = True, min_units: int = 3) -> pd.DataFrame:
    """Spearman rank correlation between every pair of scores over per-unit means.

    ``df``: :func:`ranked_rows` (columns ``score``, ``direction``). Each score is first averaged
    per unit (default: one (dataset, model, method) triple, i.e. over samples); ρ(a, b) is
    Spearman's correlation over the units both scores have. With ``oriented`` (default)
    lower-is-better scores are negated first, so ρ > 0 always means the two agree on which
    method/model is better. Non-finite values are left out. Returns a square scores × scores
    frame; a pair with fewer than ``min_units`` shared units or a constant score is NaN.
    """
    units = list(units)
    _check_columns(df, [*units, "score", "direction", "value"])
    if min_units < 2:
        raise ValueError(f"min_units must be at least 2, got {min_units!r}")
    finite = df[np.isfinite(df["value"].to_numpy(dtype=np.float64))]
    wide = finite.pivot_table(index=units, columns="score", values="value", aggfunc="mean",
                              observed=True)
    metrics = list(wide.columns)
    if oriented:
        lower = set(finite.loc[finite["direction"] == "lower", "score"])
        for metric in metrics:
            if metric in lower:
                wide[metric] = -wide[metric]
    rho = pd.DataFrame(np.nan, index=pd.Index(metrics, name="score"),
                       columns=pd.Index(metrics, name=None))
    for i, a in enumerate(metrics):
        rho.loc[a, a] = 1.0
        for b in metrics[i + 1:]:
            pair = wide[[a, b]].dropna()
            if len(pair) < min_units or pair[a].nunique() < 2 or pair[b].nunique() < 2:
                continue
            r = float(sps.spearmanr(pair[a], pair[b]).statistic)
            rho.loc[a, b] = rho.loc[b, a] = r
    return rho


def _check_columns(df: pd.DataFrame, columns: Iterable[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame of long results, got {type(df).__name__}")
    missing = [c for c in dict.fromkeys(columns) if c not in df.columns]
    if missing:
        raise ValueError(f"df is missing columns {missing}; expected the long results of "
                         "salbench.results.read_results")
