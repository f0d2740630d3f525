"""Findings: a document's claim, what was measured, with a 95 % bootstrap interval and n, and a
verdict computed from the interval — never typed in.

A claim is tested against a **decision bound** (0 for "A is larger than B", 0.9 for "accuracy
above 90 %", 0 for "positively correlated"): the verdict is ``agrees`` when the whole interval
lies on the claimed side of the bound, ``disagrees`` when it lies wholly on the other side,
``inconclusive`` when it spans the bound, and ``not testable here`` when an ingredient is missing
(a model under its accuracy gate, too few samples or models, a method not run). A study's
``findings(run_dir)`` returns one :class:`Finding` per claim of its document, each computed from
the run's result tables with the helpers below.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from salbench.results.stats import bootstrap_ci

VERDICTS = ("agrees", "disagrees", "inconclusive", "not testable here")
Side = Literal["above", "below"]
N_BOOT = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Finding:
    """One claim of a document and its test in this run.

    ``claim``: the document's statement, in its words; ``section``: where it is made (section,
    figure or table); ``document``: the document's number or statement of the measured quantity
    ("> 0.9", "0.748", "Grad-CAM = HiResCAM"); ``measured``, ``low``, ``high``: the measured value
    and its 95 % interval; ``n``: the samples (or models, or units) behind it; ``verdict``: one
    of :data:`VERDICTS`; ``scale``: the preset run (tiny, small, paper, custom); ``note``: how it
    was measured, the substitutes for the document's setting (architecture, data, no ImageNet
    weights), and why a finding is not testable.
    """

    study: str
    claim: str
    section: str
    document: str
    measured: float | None
    low: float | None
    high: float | None
    n: int
    verdict: str
    scale: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def decide(low: float, high: float, bound: float = 0.0, side: Side = "above") -> str:
    """The verdict of an interval [low, high] for the claim "the value is ``side`` ``bound``"."""
    if side not in ("above", "below"):
        raise ValueError(f"side must be 'above' or 'below', got {side!r}")
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not testable here"
    if side == "above":
        return "agrees" if low > bound else ("disagrees" if high < bound else "inconclusive")
    return "agrees" if high < bound else ("disagrees" if low > bound else "inconclusive")


def rng_for(*key: object, seed: int = 0) -> np.random.Generator:
    """A generator per claim (like the leaderboard's per score), so intervals are reproducible and
    independent of which other claims are computed."""
    return np.random.default_rng([seed, zlib.crc32("\0".join(map(str, key)).encode())])


def mean_interval(values: Sequence[float] | np.ndarray, rng: np.random.Generator
                  ) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of finite ``values``: percentile bootstrap of the mean."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (np.nan, np.nan, np.nan, 0)
    mean, low, high = bootstrap_ci(x, n_boot=N_BOOT, confidence=CONFIDENCE, rng=rng)
    return (mean, low, high, int(x.size))


def paired_difference(a: pd.Series, b: pd.Series, rng: np.random.Generator
                      ) -> tuple[float, float, float, int]:
    """Mean of a − b over the units (index values) both have, with its bootstrap interval."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    return mean_interval((both["a"] - both["b"]).to_numpy(), rng)


def statistic_interval(statistic: Callable[..., float], *columns: np.ndarray,
                       rng: np.random.Generator) -> tuple[float, float, float, int]:
    """(statistic, low, high, n) with the percentile bootstrap over rows resampled jointly
    across ``columns`` (e.g. Pearson r of two columns, a ratio of two means)."""
    data = [np.asarray(c, dtype=np.float64) for c in columns]
    keep = np.all([np.isfinite(c) for c in data], axis=0)
    data = [c[keep] for c in data]
    n = len(data[0]) if data else 0
    if n < 2:
        return (np.nan, np.nan, np.nan, n)
    value = float(statistic(*data))
    draws = []
    for _ in range(N_BOOT):
        idx = (rng.random(n) * n).astype(np.intp)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws.append(statistic(*(c[idx] for c in data)))
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0 or not np.isfinite(value):
        return (value, np.nan, np.nan, n)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return (value, float(low), float(high), n)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r (NaN when either is constant)."""
    if np.std(x) == 0 or np.std(y) == 0:
        return np.nan
    return float(np.corrcoef(x, y)[0, 1])


@dataclass(frozen=True)
class Gate:
    """An accuracy gate: the models a finding needs must reach ``threshold`` on ``output`` of the
    ``classification`` summaries (test set). ``failing``: model -> score of those that do not (or
    NaN for a model without scores)."""

    output: str
    threshold: float
    scores: Mapping[str, float]

    @property
    def failing(self) -> dict[str, float]:
        return {m: s for m, s in self.scores.items() if not s >= self.threshold}

    @property
    def passed(self) -> bool:
        return bool(self.scores) and not self.failing

    def describe(self, models: Sequence[str] | None = None) -> str:
        """One line: the gate and the models that miss it (of ``models``, default all)."""
        failing = {m: s for m, s in self.failing.items() if models is None or m in models}
        if not failing:
            return f"{self.output} ≥ {self.threshold:g}: passed"
        shown = ", ".join(f"{m} {s:.3f}" for m, s in sorted(failing.items())[:6])
        more = f" and {len(failing) - 6} more" if len(failing) > 6 else ""
        return f"{self.output} gate {self.threshold:g} missed: {shown}{more}"

    def banner(self) -> str:
        """The report section's first paragraph when the gate is missed, else ``""``."""
        if self.passed:
            return ""
        if not self.scores:
            return ("ACCURACY GATE NOT CHECKED: the run holds no test accuracy of its models, so "
                    "the findings that need one are not testable here.\n\n")
        return (f"ACCURACY GATE MISSED ({self.describe()}): the findings that use these models "
                "are not testable here, and the numbers below describe models under the "
                "gate.\n\n")


def gate(summaries: pd.DataFrame, threshold: float, output: str = "accuracy",
         models: Sequence[str] | None = None) -> Gate:
    """The :class:`Gate` of ``models`` (default: every model with classification summaries)."""
    rows = summaries[(summaries["metric"] == "classification") & (summaries["output"] == output)]
    scores = rows.groupby("model_id")["value"].mean().to_dict()
    if models is not None:
        scores = {m: scores.get(m, np.nan) for m in models}
    return Gate(output, float(threshold), scores)


def finding(study: str, claim: str, section: str, document: str, interval, *, scale: str,
            bound: float = 0.0, side: Side = "above", note: str = "",
            gate_: Gate | None = None, models: Sequence[str] | None = None,
            min_n: int = 3) -> Finding:
    """A :class:`Finding` from ``interval`` = (measured, low, high, n), decided by :func:`decide`;
    ``not testable here`` when ``gate_`` fails for ``models`` (the note says which) or when fewer
    than ``min_n`` observations stand behind the value."""
    measured, low, high, n = interval
    notes = [note] if note else []
    verdict = decide(low, high, bound, side)
    if gate_ is not None and gate_.failing and (models is None or set(gate_.failing) & set(models)):
        verdict = "not testable here"
        notes.append(gate_.describe(models))
    elif n < min_n:
        verdict = "not testable here"
        notes.append(f"only {n} observation(s) (needs {min_n})")

    def clean(v):
        return None if v is None or not np.isfinite(v) else float(v)

    return Finding(study, claim, section, document, clean(measured), clean(low), clean(high),
                   int(n), verdict, scale, "; ".join(notes))


def not_testable(study: str, claim: str, section: str, document: str, reason: str, *,
                 scale: str) -> Finding:
    """A claim this run cannot test (an ingredient is absent), with the reason."""
    return Finding(study, claim, section, document, None, None, None, 0, "not testable here",
                   scale, reason)


def findings_frame(findings: Sequence[Finding]) -> pd.DataFrame:
    """Findings as a table, one row per claim, in the order given."""
    columns = ["study", "claim", "section", "document", "measured", "low", "high", "n",
               "verdict", "scale", "note"]
    return pd.DataFrame([f.to_dict() for f in findings], columns=columns)


def verdict_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """How many findings got each verdict (every verdict listed, zeros included)."""
    counts = dict.fromkeys(VERDICTS, 0)
    for f in findings:
        counts[f.verdict] += 1
    return counts
