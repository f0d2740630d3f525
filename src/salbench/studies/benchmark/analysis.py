"""The benchmark's answer, as pure functions of the result tables: per score the methods ranked
with 95 % intervals, the randomisation sanity check, and one recommendation in plain words.

Choices (salbench's; none is in the documents):

- A method is **among the best** on a score when its 95 % bootstrap interval overlaps the best
  method's interval. The **best supported** method is the one among the best on the most scores
  (ties: the lower mean rank); the null baselines (random map, Sobel, Laplace, random model) are
  never recommended, but a score on which one of them is among the best is named, since it
  cannot tell methods apart here.
- The **sanity check** (Adebayo et al. 2018): a method fails when its maps barely change as the
  model's layers are re-initialised — the mean Spearman correlation between the map and the
  randomised model's maps is above 0.5 with its whole interval; it passes when the whole interval
  is below 0.5.
- The model must classify the images better than chance before any of this means something.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from salbench.results.findings import decide, mean_interval, rng_for
from salbench.results.stats import leaderboard, ranked_rows
from salbench.studies.benchmark.plan import NULL_BASELINES

SANITY_BOUND = 0.5
NEAR_CHANCE = 0.25  # accuracy within a quarter of the way from chance to 1 is "close to chance"


def ranked_scores(results: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per score and method: mean, 95 % interval, n, rank (1 = best) and ``among_best``."""
    rows = ranked_rows(results)
    if rows.empty:
        return pd.DataFrame(columns=["score", "method", "mean", "ci_low", "ci_high", "n", "rank",
                                     "lower_is_better", "among_best"])
    scores = leaderboard(rows, n_boot=n_boot, seed=seed).scores.copy()
    flags = []
    for _, part in scores.groupby("score", sort=False):
        best = part.loc[part["rank"].idxmin()]
        overlap = (part["ci_low"] <= best["ci_high"]) & (part["ci_high"] >= best["ci_low"])
        flags.append(overlap)
    scores["among_best"] = pd.concat(flags).reindex(scores.index).fillna(False).astype(bool)
    return scores.sort_values(["score", "rank", "method"]).reset_index(drop=True)


def sanity(results: pd.DataFrame, similarity: str = "spearman") -> pd.DataFrame:
    """Per method: the mean similarity between its maps and the randomised model's (mean over
    the randomised layers, then over images), its interval, n and the verdict ``passes`` /
    ``fails`` / ``inconclusive`` against :data:`SANITY_BOUND`."""
    rows = results[(results.metric == "model_randomisation") & (results.output == similarity)]
    out = []
    for method, part in rows.groupby("method"):
        mean, low, high, n = mean_interval(part.value.to_numpy(), rng_for("sanity", method))
        verdict = {"agrees": "fails", "disagrees": "passes"}.get(
            decide(low, high, SANITY_BOUND, "above"), "inconclusive")
        out.append({"method": method, "similarity": mean, "low": low, "high": high, "n": n,
                    "verdict": verdict})
    return pd.DataFrame(out, columns=["method", "similarity", "low", "high", "n", "verdict"])


def support(scores: pd.DataFrame) -> pd.DataFrame:
    """Per method (null baselines excluded): on how many scores it is among the best, of how
    many it was scored on, and its mean rank; best supported first."""
    real = scores[~scores.method.isin(NULL_BASELINES)]
    table = real.groupby("method").agg(among_best=("among_best", "sum"), scores=("score", "size"),
                                       mean_rank=("rank", "mean"))
    return table.sort_values(["among_best", "mean_rank"], ascending=[False, True])


def recommendation(scores: pd.DataFrame, checks: pd.DataFrame, accuracy: float | None,
                   chance: float, n_images: int) -> list[str]:
    """The answer in sentences a clinician can read."""
    lines = []
    if accuracy is not None:
        if accuracy < chance - NEAR_CHANCE * chance:
            lines.append(f"Warning: the model classifies these images with accuracy "
                         f"{accuracy:.2f}, far below chance ({chance:.2f}): the classes of the "
                         "data are probably in another order than the model's outputs (image "
                         "folders are read in alphabetical order; an .npz's y sets its own), so "
                         "the maps explain the wrong class and none of the scores below is a "
                         "finding.")
        elif accuracy <= chance + NEAR_CHANCE * (1 - chance):
            lines.append(f"Warning: the model classifies these images with accuracy "
                         f"{accuracy:.2f}, close to chance ({chance:.2f}): its explanations "
                         "cannot show what it learned, and none of the scores below is a "
                         "finding.")
        else:
            lines.append(f"The model classifies these {n_images} images with accuracy "
                         f"{accuracy:.2f} (chance {chance:.2f}).")
    if scores.empty:
        return lines + ["No method could be scored."]
    ranked = support(scores)
    failing = set(checks.loc[checks.verdict == "fails", "method"]) if len(checks) else set()
    candidates = ranked[~ranked.index.isin(failing)]
    pick = candidates.index[0] if len(candidates) else ranked.index[0]
    row = ranked.loc[pick]
    best_scores = scores[(scores.method == pick) & scores.among_best]
    shown = "; ".join(f"{r.score} {r['mean']:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]"
                      for _, r in best_scores.head(4).iterrows())
    lines.append(f"Best supported: {pick}, among the best methods on {int(row.among_best)} of "
                 f"{int(row.scores)} scores" + (f" ({shown})." if shown else "."))
    others = [m for m in ranked.index[1:4] if m not in failing]
    if others:
        lines.append("Next: " + ", ".join(f"{m} ({int(ranked.loc[m].among_best)} of "
                                          f"{int(ranked.loc[m].scores)})" for m in others) + ".")
    if failing:
        worst = checks[checks.verdict == "fails"].sort_values("similarity", ascending=False)
        text = ", ".join(f"{r.method} (rank correlation {r.similarity:.2f})"
                         for r in worst.itertuples())
        lines.append(f"Fails the sanity check: {text}: these maps barely change when the "
                     "model's weights are randomised, so they do not show what the model "
                     "learned; do not trust them.")
    elif len(checks):
        lines.append("Every method checked passes or is inconclusive in the sanity check "
                     "(maps change when the model's weights are randomised).")
    weak = sorted(set(scores[scores.method.isin(NULL_BASELINES) & scores.among_best].score))
    if weak:
        lines.append("A null baseline (random map, edge filter or random model) is among the "
                     f"best on {', '.join(weak)}: those scores cannot tell the methods apart on "
                     "these images.")
    return lines


def chance_level(predictions: pd.DataFrame) -> float:
    """Accuracy of always predicting the most frequent true class."""
    if predictions.empty:
        return np.nan
    return float(predictions["true"].value_counts(normalize=True).max())
