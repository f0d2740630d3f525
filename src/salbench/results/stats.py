"""Statistics over a run's long results: leaderboard with bootstrap CIs, ranks, paired tests, and
metric agreement.

None of this is in the source documents; it is salbench's cross-study summary (issue 7, "Beyond
the documents"). Input everywhere is the long frame of :func:`salbench.results.read_results`
(columns ``study, run, dataset, model_id, method, metric, sample_id, value, params, meta``).

Choices (each an argument):

- The unit of observation is one (``run``, ``model_id``, ``sample_id``) triple (``units``). Rows of
  one method on one unit (e.g. several ``params`` of the same method) are averaged first; a study
  that wants each parameter setting ranked separately names them as separate methods or passes
  ``entry=("method", "params")``.
- Means are pooled over every model and sample of a dataset; the CI is the percentile bootstrap
  over units.
- Paired tests compare two methods on the units both were scored on (two-sided Wilcoxon
  signed-rank, zero differences dropped: ``zero_method="wilcox"``); Holm's correction runs over
  all method pairs of one (dataset, metric).
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

UNITS = ("run", "model_id", "sample_id")
"""Columns that identify one paired observation (one sample, explained on one model of one run)."""

LOWER_IS_BETTER = frozenset({
    "max_sensitivity",           # document 003, section 2.2.2: smaller change = more robust
    "avg_sensitivity",
    "complexity_ratio",          # document 004, section 5: RC < 1 = simpler than the original
    "conservation_error",        # document 002, section 3.2: relevance lost or created
    "fpr",                       # document 001, section 3.3: false-positive rate
    "fpr_avg",
})
"""Metric names ranked lower-is-better by default; every other metric is higher-is-better, except
by the rules of :func:`is_lower_better`. Override with ``lower_is_better``."""


def is_lower_better(metric: str, lower_is_better: Collection[str] | Mapping[str, bool] | None = None
                    ) -> bool:
    """Direction of ``metric``.

    ``lower_is_better`` (a set of names, or name -> bool) decides where it names the metric.
    Otherwise lower is better when the metric, or its last ``/``-part (``soft_five_band/fpr_avg``),
    is in :data:`LOWER_IS_BETTER`; when that part names MoRF without LRF (``morf_auc``: the score
    should drop fast when the most relevant patches go first, document 002, section 2.2); and for
    ``model_randomisation/…`` similarities (a map should change when the weights are randomised).
    """
    if isinstance(lower_is_better, Mapping):
        if metric in lower_is_better:
            return bool(lower_is_better[metric])
    elif lower_is_better is not None and metric in lower_is_better:
        return True
    base = metric.rsplit("/", 1)[-1].lower()
    return (metric in LOWER_IS_BETTER or base in LOWER_IS_BETTER
            or ("morf" in base and "lrf" not in base)
            or metric.startswith("model_randomisation/"))


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


MODEL_METHODS = ("model",)
"""``method`` values of rows that score the model, not an explanation (accuracy, correctness)."""


def explanation_rows(df: pd.DataFrame, model_methods: Collection[str] = MODEL_METHODS
                     ) -> pd.DataFrame:
    """The rows that score one explanation of one sample: drops model rows (``method`` in
    ``model_methods``), whole-set rows (``sample_id == "all"``) and curve or ROC points
    (``sample_id`` starting with ``point:``), which the studies store beside per-sample scores."""
    _check_columns(df, ["method", "sample_id"])
    sample = df["sample_id"].astype(str)
    keep = (~df["method"].isin(list(model_methods)) & (sample != "all")
            & ~sample.str.startswith("point:"))
    return df[keep]


def unit_means(df: pd.DataFrame, entry: Sequence[str] = ("method",),
               units: Sequence[str] = UNITS, by: Sequence[str] = ("dataset",)) -> pd.DataFrame:
    """One value per (by…, metric, entry…, unit…): the mean of the rows sharing those keys.
    Non-finite values (a metric undefined on a sample) are left out."""
    _check_columns(df, [*by, *entry, *units, "metric", "value"])
    keys = [*by, "metric", *entry, *units]
    df = df[np.isfinite(df["value"].to_numpy(dtype=np.float64))]
    return df.groupby(keys, sort=True, dropna=False, observed=True)["value"].mean().reset_index()


@dataclass(frozen=True)
class Leaderboard:
    """Result of :func:`leaderboard`.

    ``scores``: one row per (dataset, metric, method) with ``n`` (units), ``mean``, ``ci_low``,
    ``ci_high``, ``lower_is_better`` and ``rank`` (1 = best within the dataset and metric; ties
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
        label = scores[list(self.entry)].astype(str).agg(" ".join, axis=1)
        cell = [f"{m:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}] #{int(r)}"
                for m, lo, hi, r in zip(scores["mean"], scores["ci_low"], scores["ci_high"],
                                        scores["rank"])]
        frame = pd.DataFrame({"method": label, "metric": scores["metric"], "cell": cell,
                              "rank": scores["rank"]})
        wide = frame.pivot(index="method", columns="metric", values="cell")
        wide.columns = [f"{c} {'↓' if _lower_col(scores, c) else '↑'}"
                        for c in wide.columns]
        wide["mean rank"] = frame.groupby("method")["rank"].mean().round(2)
        wide = wide.sort_values("mean rank", kind="stable").fillna("–")
        wide.columns.name = None
        return wide


def _lower_col(scores: pd.DataFrame, metric: str) -> bool:
    return bool(scores.loc[scores["metric"] == metric, "lower_is_better"].iloc[0])


def leaderboard(df: pd.DataFrame, *,
                lower_is_better: Collection[str] | Mapping[str, bool] | None = None,
                n_boot: int = 2000, confidence: float = 0.95, alpha: float = 0.05,
                seed: int = 0, entry: Sequence[str] = ("method",),
                units: Sequence[str] = UNITS, by: Sequence[str] = ("dataset",)) -> Leaderboard:
    """Every method × every metric per dataset: bootstrap mean and CI, rank, paired tests.

    ``df``: long results (see the module docstring). Each (dataset, metric, method) gets its own
    generator ``default_rng([seed, crc32(key)])``, so adding a method never changes another's CI.
    ``lower_is_better`` overrides metric directions (see :func:`is_lower_better`). Ranks follow the
    means; Wilcoxon tests use the units both methods share, with Holm's correction per dataset and
    metric at level ``alpha``.
    """
    entry, units, by = tuple(entry), tuple(units), tuple(by)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    means = unit_means(df, entry, units, by)
    score_rows, test_rows = [], []
    for key, group in means.groupby([*by, "metric"], sort=True, observed=True):
        key = dict(zip([*by, "metric"], key))
        lower = is_lower_better(key["metric"], lower_is_better)
        wide = group.pivot_table(index=list(units), columns=list(entry), values="value",
                                 aggfunc="first", observed=True)
        methods = list(wide.columns)
        for method in methods:
            values = wide[method].dropna().to_numpy()
            name = method if isinstance(method, tuple) else (method,)
            seed_key = "\0".join(str(v) for v in (*key.values(), *name)).encode()
            rng = np.random.default_rng([seed, zlib.crc32(seed_key)])
            mean, low, high = bootstrap_ci(values, n_boot=n_boot, confidence=confidence, rng=rng)
            score_rows.append({**key, **dict(zip(entry, name)), "n": values.size, "mean": mean,
                               "ci_low": low, "ci_high": high, "lower_is_better": lower})
        pair_rows = [_paired_test(wide, a, b, lower) for a, b in combinations(methods, 2)]
        adjusted = holm([r["p"] for r in pair_rows]) if pair_rows else []
        for row, p_adj in zip(pair_rows, adjusted):
            better = row.pop("_better")
            row.update(p_holm=p_adj, better=better if p_adj <= alpha else "")
            test_rows.append({**key, **row})
    score_cols = [*by, "metric", *entry, "n", "mean", "ci_low", "ci_high", "lower_is_better"]
    scores = pd.DataFrame(score_rows, columns=score_cols)
    if not scores.empty:
        signed = scores["mean"].where(~scores["lower_is_better"], -scores["mean"])
        scores["rank"] = (signed.groupby([scores[c] for c in [*by, "metric"]])
                          .rank(ascending=False, method="min").astype(int))
    else:
        scores["rank"] = pd.Series(dtype=int)
    test_cols = [*by, "metric", "method_a", "method_b", "n", "statistic", "p", "median_diff",
                 "p_holm", "better"]
    tests = pd.DataFrame(test_rows, columns=test_cols)
    return Leaderboard(scores=scores, tests=tests, entry=entry, confidence=confidence,
                       alpha=alpha)


def _paired_test(wide: pd.DataFrame, a, b, lower: bool) -> dict:
    """Two-sided Wilcoxon signed-rank test of methods ``a`` and ``b`` on their shared units."""
    pair = wide[[a, b]].dropna()
    x, y = pair[a].to_numpy(), pair[b].to_numpy()
    diff = x - y
    label = (lambda m: " ".join(map(str, m)) if isinstance(m, tuple) else str(m))
    row = {"method_a": label(a), "method_b": label(b), "n": int(diff.size),
           "statistic": np.nan, "p": np.nan,
           "median_diff": float(np.median(diff)) if diff.size else np.nan}
    if diff.size and np.all(diff == 0):
        row.update(statistic=0.0, p=1.0)  # identical scores: no evidence of a difference
    elif diff.size:
        res = sps.wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
        row.update(statistic=float(res.statistic), p=float(res.pvalue))
    a_better = diff.size and ((x.mean() < y.mean()) if lower else (x.mean() > y.mean()))
    row["_better"] = row["method_a"] if a_better else row["method_b"]
    return row


def metric_agreement(df: pd.DataFrame, *, units: Sequence[str] = ("dataset", "model_id",
                                                                   "method"),
                     oriented: bool = True,
                     lower_is_better: Collection[str] | Mapping[str, bool] | None = None,
                     min_units: int = 3) -> pd.DataFrame:
    """Spearman rank correlation between every pair of metrics over per-unit means.

    Each metric is first averaged per unit (default: one (dataset, model, method) triple, i.e.
    over samples); ρ(a, b) is Spearman's correlation over the units both metrics have. With
    ``oriented`` (default) lower-is-better metrics are negated first, so ρ > 0 always means the
    two metrics agree on which method/model is better. Non-finite values are left out. Returns a
    square metrics × metrics frame; a pair with fewer than ``min_units`` shared units or a
    constant metric is NaN.
    """
    units = list(units)
    _check_columns(df, [*units, "metric", "value"])
    if min_units < 2:
        raise ValueError(f"min_units must be at least 2, got {min_units!r}")
    finite = df[np.isfinite(df["value"].to_numpy(dtype=np.float64))]
    wide = finite.pivot_table(index=units, columns="metric", values="value", aggfunc="mean",
                              observed=True)
    metrics = list(wide.columns)
    if oriented:
        for metric in metrics:
            if is_lower_better(metric, lower_is_better):
                wide[metric] = -wide[metric]
    rho = pd.DataFrame(np.nan, index=pd.Index(metrics, name="metric"),
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
