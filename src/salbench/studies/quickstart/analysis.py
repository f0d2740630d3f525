"""The quickstart's analysis: pure functions from the result tables to the report's tables.

Inputs are the frames of :func:`salbench.results.read_results` (``results``, ``curves``,
``summaries``); nothing here reads files, so each function is tested on hand-made frames.
"""

from __future__ import annotations

import pandas as pd

from salbench.results.stats import ranked_rows


def model_scores(summaries: pd.DataFrame) -> pd.DataFrame:
    """Test-set classification scores: model × score (accuracy, balanced accuracy, …)."""
    rows = summaries[summaries.metric == "classification"]
    return rows.pivot_table(index="model_id", columns="output", values="value")


def method_means(results: pd.DataFrame, summaries: pd.DataFrame) -> pd.DataFrame:
    """Mean over samples per method and ranked score (``score`` names as in the leaderboard),
    plus HAAS = Acc(HA) / Acc(x) per method from the summaries (eq. 10 of document 003)."""
    rows = ranked_rows(results)
    means = rows.pivot_table(index="method", columns="score", values="value", aggfunc="mean")
    haas = summaries[(summaries.metric == "haas") & (summaries.output == "haas")]
    if not haas.empty:
        means["haas"] = haas.groupby("method").value.mean()
    return means


def directions(results: pd.DataFrame, summaries: pd.DataFrame) -> pd.Series:
    """Direction (``higher``/``lower``) of every column of :func:`method_means`."""
    rows = ranked_rows(results)
    out = rows.groupby("score").direction.first()
    haas = summaries[(summaries.metric == "haas") & (summaries.output == "haas")]
    if not haas.empty:
        out["haas"] = haas.direction.iloc[0]
    return out


def oriented_ranks(means: pd.DataFrame, direction: pd.Series) -> pd.DataFrame:
    """Percentile rank of each method within each score column, 1 = best: the highest mean where
    higher is better, the lowest where lower is better."""
    signed = means.copy()
    for column in signed.columns:
        if direction[column] == "lower":
            signed[column] = -signed[column]
    return signed.rank(pct=True)


def randomisation_curves(curves: pd.DataFrame, similarity: str = "spearman") -> pd.DataFrame:
    """Mean similarity between the original map and the map after randomising the first k layers
    (cascading, output side first), per method: columns ``method``, ``layers randomised``,
    ``similarity``."""
    rows = curves[(curves.metric == "model_randomisation") & (curves.curve == similarity)]
    return (rows.groupby(["method", "x"], as_index=False).value.mean()
            .rename(columns={"x": "layers randomised", "value": similarity}))
