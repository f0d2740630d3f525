"""Which metrics to trust: pure functions from the long frame of scores to the tables.

The **scores** frame has one row per (metric output, map kind, seed, sample): columns ``metric``,
``output``, ``score`` (the display label), ``direction`` (``higher`` / ``lower``), ``kind`` (one
of :data:`~salbench.studies.meta.maps.KINDS`), ``seed``, ``sample_id`` and ``value``.

- **Discrimination** of a degraded kind: for each sample and seed the good map's score is
  compared with the degraded map's in the declared direction, ``sign`` = +1 (good better), 0 (a
  tie) or −1. The **share** is P(good better) + ½ P(tie) over those pairs; the **effect** is the
  paired dominance δ = P(good better) − P(degraded better) (the paired form of Cliff's delta, in
  [−1, 1]), each sample's signs averaged over the seeds first, with a 95 % percentile-bootstrap
  interval over samples. A kind is **separated** when the interval lies above 0.
- **Resilience**: the mean |score change| under the invariant changes (× 2, 1 % jitter), the
  worse of the two, divided by the gap |mean good − mean uniform random|; resilience =
  max(0, 1 − that ratio): 1 when changes that should not matter move nothing, 0 when they move the
  score as much as replacing the map by noise does.
- **Stability**: the standard deviation over seeds of the per-seed effect, the largest over the
  degraded kinds (NaN with one seed).
- **Verdict**: ``flagged`` when the metric cannot tell the good map from the uniform random one
  (interval includes 0, or the effect points the wrong way); ``weak`` when it can but fails a
  severe kind (:data:`~salbench.studies.meta.maps.SEVERE`), its resilience is under
  :data:`MIN_RESILIENCE` or its seed spread above :data:`MAX_SEED_SD`; ``trust`` otherwise;
  ``not testable`` (set by :func:`salbench.studies.meta.under_gate`) for a metric that reads a
  model under its accuracy gate.
- **Agreement**: Spearman's ρ between every pair of scores over all scored maps (kind × seed ×
  sample), lower-is-better scores negated first so ρ > 0 means the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from salbench.results.findings import CONFIDENCE, N_BOOT, rng_for
from salbench.results.stats import bootstrap_ci, metric_agreement
from salbench.studies.meta.maps import DEGRADED, GOOD, INVARIANT, RANDOM, SEVERE

NOT_TESTABLE = "not testable"
"""The verdict of a metric that reads the model when the model misses its accuracy gate."""
VERDICTS = ("trust", "weak", "flagged", NOT_TESTABLE)
MIN_RESILIENCE = 0.5
MAX_SEED_SD = 0.25
TIE = 1e-9  # relative difference under which two scores tie
SCORE_COLUMNS = ("metric", "output", "score", "direction", "kind", "seed", "sample_id", "value")


def _check(scores: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(scores, pd.DataFrame):
        raise TypeError(f"scores must be a DataFrame, got {type(scores).__name__}")
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"scores frame lacks columns {missing}")
    bad = sorted(set(scores["direction"]) - {"higher", "lower"})
    if bad:
        raise ValueError(f"scores must rank (direction higher or lower), got {bad}")
    return scores


def _paired(scores: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Good and ``kind`` values side by side per (score, sample, seed), both finite."""
    keys = ["score", "direction", "sample_id", "seed"]
    good = scores[scores["kind"] == GOOD].set_index(keys)["value"].rename("good")
    other = scores[scores["kind"] == kind].set_index(keys)["value"].rename("other")
    both = pd.concat([good, other], axis=1, join="inner")
    both = both[np.isfinite(both["good"]) & np.isfinite(both["other"])]
    return both.reset_index()


def _signed(scores: pd.DataFrame, kind: str) -> pd.DataFrame:
    """:func:`_paired` with ``sign``: :func:`oriented_signs` of good against ``kind``."""
    both = _paired(scores, kind)
    both["sign"] = oriented_signs(both["good"].to_numpy(), both["other"].to_numpy(),
                                  both["direction"].to_numpy())
    return both


def oriented_signs(good: np.ndarray, other: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """+1 where ``good`` is better than ``other`` in ``direction`` (higher/lower), −1 where it is
    worse, 0 for a tie (relative difference under :data:`TIE`)."""
    diff = np.where(np.asarray(direction) == "lower", other - good, good - other)
    scale = np.maximum(1.0, np.maximum(np.abs(good), np.abs(other)))
    return np.where(np.abs(diff) <= TIE * scale, 0.0, np.sign(diff))


def discrimination(scores: pd.DataFrame, kinds: Sequence[str] = DEGRADED) -> pd.DataFrame:
    """Per score and degraded kind: ``share``, ``effect`` (paired dominance δ), ``low``,
    ``high`` (95 % bootstrap over samples), ``n`` (samples), ``separated`` (low > 0)."""
    _check(scores)
    rows = []
    for kind in kinds:
        both = _signed(scores, kind)
        if both.empty:
            continue
        for (score, direction), part in both.groupby(["score", "direction"], sort=True):
            per_sample = part.groupby("sample_id")["sign"].mean().to_numpy()
            effect, low, high = bootstrap_ci(per_sample, n_boot=N_BOOT, confidence=CONFIDENCE,
                                             rng=rng_for("meta", score, kind))
            signs = part["sign"].to_numpy()
            rows.append({"score": score, "direction": direction, "kind": kind,
                         "share": float(np.mean(signs > 0) + 0.5 * np.mean(signs == 0)),
                         "effect": effect, "low": low, "high": high, "n": len(per_sample),
                         "separated": bool(low > 0)})
    return pd.DataFrame(rows, columns=["score", "direction", "kind", "share", "effect", "low",
                                       "high", "n", "separated"])


def resilience(scores: pd.DataFrame) -> pd.DataFrame:
    """Per score: ``change`` (mean |Δ| under the worse invariant change), ``gap`` (|mean good −
    mean uniform random|), ``ratio`` = change / gap and ``resilience`` = max(0, 1 − ratio)."""
    _check(scores)
    rows = []
    for score, part in scores.groupby("score", sort=True):
        good = part[part["kind"] == GOOD]["value"]
        noise = part[part["kind"] == RANDOM]["value"]
        changes = []
        for kind in INVARIANT:
            both = _paired(part, kind)
            if len(both):
                changes.append(float(np.mean(np.abs(both["good"] - both["other"]))))
        change = max(changes) if changes else np.nan
        gap = abs(float(np.nanmean(good)) - float(np.nanmean(noise))) \
            if good.notna().any() and noise.notna().any() else np.nan
        if not np.isfinite(gap) or not np.isfinite(change):
            ratio = np.nan
        elif gap == 0:
            ratio = 0.0 if change == 0 else np.inf
        else:
            ratio = change / gap
        rows.append({"score": score, "change": change, "gap": gap, "ratio": ratio,
                     "resilience": np.nan if np.isnan(ratio) else max(0.0, 1.0 - ratio)})
    return pd.DataFrame(rows, columns=["score", "change", "gap", "ratio", "resilience"])


def stability(scores: pd.DataFrame, kinds: Sequence[str] = DEGRADED) -> pd.DataFrame:
    """Per score: ``seed_sd``, the largest over ``kinds`` of the standard deviation (ddof 1) over
    seeds of the per-seed effect δ, and ``n_seeds``."""
    _check(scores)
    per_seed = []
    for kind in kinds:
        both = _signed(scores, kind)
        if both.empty:
            continue
        effect = both.groupby(["score", "seed"])["sign"].mean().rename("effect").reset_index()
        effect["kind"] = kind
        per_seed.append(effect)
    if not per_seed:
        return pd.DataFrame(columns=["score", "seed_sd", "n_seeds"])
    effects = pd.concat(per_seed)
    spread = effects.groupby(["score", "kind"])["effect"].agg(
        lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else np.nan)
    out = spread.groupby("score").max().rename("seed_sd").to_frame()
    out["n_seeds"] = effects.groupby("score")["seed"].nunique()
    return out.reset_index()


def verdict(separated: dict[str, bool], effect_random: float, resilience_value: float,
            seed_sd: float) -> tuple[str, str]:
    """(verdict, reason) from the separated kinds (kind -> bool), the effect against the uniform
    random map, the resilience and the seed spread (see the module docstring)."""
    if not separated.get(RANDOM, False):
        how = ("ranks the random map above the ground truth" if effect_random < 0
               else "cannot tell the ground truth from the random map")
        return "flagged", how
    failed = [k for k in SEVERE if k in separated and not separated[k]]
    reasons = [f"cannot tell {', '.join(failed)}"] if failed else []
    if np.isfinite(resilience_value) and resilience_value < MIN_RESILIENCE:
        reasons.append(f"resilience {resilience_value:.2f} < {MIN_RESILIENCE}")
    if np.isfinite(seed_sd) and seed_sd > MAX_SEED_SD:
        reasons.append(f"seed sd {seed_sd:.2f} > {MAX_SEED_SD}")
    return ("weak", "; ".join(reasons)) if reasons else ("trust", "")


def trust_table(scores: pd.DataFrame, costs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per score: metric, direction, ``effect:<kind>``, ``low:<kind>``, ``high:<kind>``,
    ``share:<kind>`` per degraded kind, resilience, seed_sd, the cost columns of ``costs`` (per
    ``metric``: ``forward``, ``seconds_per_map``) and the verdict with its reason."""
    _check(scores)
    disc = discrimination(scores)
    res = resilience(scores).set_index("score")
    stab = stability(scores).set_index("score")
    first = scores.drop_duplicates("score").set_index("score")
    rows = []
    for score in sorted(first.index):
        part = disc[disc["score"] == score].set_index("kind")
        row = {"score": score, "metric": first.loc[score, "metric"],
               "output": first.loc[score, "output"],
               "direction": first.loc[score, "direction"]}
        for kind in DEGRADED:
            if kind in part.index:
                for column in ("effect", "low", "high", "share"):
                    row[f"{column}:{kind}"] = float(part.loc[kind, column])
        row["resilience"] = float(res.loc[score, "resilience"]) if score in res.index else np.nan
        row["seed_sd"] = float(stab.loc[score, "seed_sd"]) if score in stab.index else np.nan
        effect_random = float(part.loc[RANDOM, "effect"]) if RANDOM in part.index else np.nan
        row["verdict"], row["reason"] = verdict(
            {k: bool(part.loc[k, "separated"]) for k in part.index}, effect_random,
            row["resilience"], row["seed_sd"])
        rows.append(row)
    table = pd.DataFrame(rows)
    if costs is not None and len(table):
        table = table.merge(costs, on="metric", how="left")
    return table


def agreement(scores: pd.DataFrame) -> pd.DataFrame:
    """Spearman's ρ between every pair of scores over the scored maps (kind × seed × sample),
    oriented so ρ > 0 means agreement (``salbench.results.stats.metric_agreement``)."""
    _check(scores)
    return metric_agreement(scores, units=("kind", "seed", "sample_id"), oriented=True)
