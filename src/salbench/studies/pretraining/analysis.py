"""The ``pretraining`` study's analysis (document 000): pure functions from the result tables.

Inputs are frames of :func:`salbench.results.read_results` (``results``, ``summaries``) with the
study's factor columns: ``corpus`` ("within-domain", "out-of-domain"; "none" for the random
model), ``degree``, ``seed``, ``lr`` on every model's rows, ``best``/``matched`` (selection
membership) on the fine-tuned models' explain rows and ``null_baseline`` ("random model",
"sobel", "laplace") on the null baselines' rows. Nothing here reads files or draws.

Definitions: *explanation performance* is top-n precision (section 2.5); *classification
performance* is test accuracy (section 3); the *group* of a precision row is its model's corpus
for a fine-tuned model and its null baseline otherwise (figures 4 and 10's boxes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PRECISION_METRIC = "top_k_precision"
SELECTIONS = ("best", "matched")
MODEL_COLUMNS = ["model_id", "corpus", "degree", "seed", "lr"]
SCORE_COLUMNS = MODEL_COLUMNS + ["best", "matched", "null_baseline", "group", "method",
                                 "sample_id", "value"]


def _columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with every column of ``columns`` (missing factor columns as nulls)."""
    return frame.reindex(columns=list(dict.fromkeys([*frame.columns, *columns])))


def model_accuracy(summaries: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy of every fine-tuned model (rows with a ``degree``): ``model_id, corpus,
    degree, seed, lr, accuracy, n`` (n: test samples)."""
    rows = _columns(summaries, MODEL_COLUMNS + ["metric", "output", "method", "value", "n"])
    rows = rows[(rows.metric == "classification") & (rows.output == "accuracy")
                & (rows.method == "") & rows.degree.notna()]
    out = rows[MODEL_COLUMNS + ["value", "n"]].rename(columns={"value": "accuracy"})
    return out.drop_duplicates("model_id").reset_index(drop=True)


def precision_scores(results: pd.DataFrame) -> pd.DataFrame:
    """Top-n precision rows (one per model × method × image) with their model's factors and
    ``group``: the corpus of a fine-tuned model, the ``null_baseline`` of a null-baseline row."""
    rows = _columns(results, SCORE_COLUMNS + ["metric"])
    rows = rows[rows.metric == PRECISION_METRIC].copy()
    rows["group"] = rows.null_baseline.where(rows.null_baseline.notna(), rows.corpus)
    for column in SELECTIONS:
        rows[column] = rows[column].astype("boolean").fillna(False).astype(bool)
    return rows[SCORE_COLUMNS].reset_index(drop=True)


def selected_models(scores: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """The explained fine-tuned models: ``model_id, corpus, degree, seed, lr, best, matched,
    accuracy`` (from :func:`precision_scores` and :func:`model_accuracy`)."""
    fine = scores[scores.null_baseline.isna()]
    models = fine[MODEL_COLUMNS + list(SELECTIONS)].drop_duplicates("model_id")
    return models.merge(accuracy[["model_id", "accuracy"]], on="model_id", how="left"
                        ).reset_index(drop=True)


def null_rows(scores: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """The null baselines per method panel: the random model explained with that method, and
    the edge filters, which depend on neither model nor method, repeated in every panel
    (section 4: "identical results are presented for edge filters in each subfigure")."""
    null = scores[scores.null_baseline.notna()]
    edge = null[~null.method.isin(methods)]
    random = null[null.method.isin(methods)]
    return pd.concat([random] + [edge.assign(method=m) for m in methods], ignore_index=True)


def box_frame(scores: pd.DataFrame, selection: str, methods: list[str],
              degrees: list[str]) -> pd.DataFrame:
    """Figures 4 (``selection`` "best") and 10 ("matched"): the selected fine-tuned models'
    precision rows, plus the null baselines (:func:`null_rows`) repeated at every degree."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    fine = scores[scores.null_baseline.isna() & scores[selection] & scores.method.isin(methods)]
    null = null_rows(scores, methods)
    null = pd.concat([null.assign(degree=d) for d in degrees], ignore_index=True)
    return pd.concat([fine, null], ignore_index=True)


def accuracy_lines(models: pd.DataFrame, selection: str) -> pd.DataFrame:
    """Mean test accuracy of the ``selection``'s models per corpus and degree (the lines of
    figures 4 and 10): ``corpus, degree, accuracy, models``."""
    part = models[models[selection]]
    return (part.groupby(["corpus", "degree"], as_index=False, sort=False)
            .agg(accuracy=("accuracy", "mean"), models=("model_id", "nunique")))


def precision_by_degree(scores: pd.DataFrame, selection: str) -> pd.DataFrame:
    """Mean top-n precision of the ``selection``'s models per corpus, degree and method:
    ``corpus, degree, method, precision, models, n`` (n: precision rows = models × images)."""
    part = scores[scores.null_baseline.isna() & scores[selection]]
    return (part.groupby(["corpus", "degree", "method"], as_index=False)
            .agg(precision=("value", "mean"), models=("model_id", "nunique"),
                 n=("value", "size")))


def model_precision(scores: pd.DataFrame, models: pd.DataFrame, selection: str = "best"
                    ) -> pd.DataFrame:
    """Each selected model's mean top-n precision per method, beside its test accuracy:
    ``corpus, method, model_id, degree, precision, images, accuracy`` (the points of fig. 8)."""
    part = scores[scores.null_baseline.isna() & scores[selection]]
    per_model = (part.groupby(["corpus", "method", "model_id"], as_index=False)
                 .agg(precision=("value", "mean"), images=("value", "size")))
    return per_model.merge(models[["model_id", "degree", "accuracy"]], on="model_id")


def precision_accuracy_correlation(per_model: pd.DataFrame) -> pd.DataFrame:
    """Pearson r between the models' mean precision and test accuracy per corpus and method
    (document 000, appendix G, fig. 8): ``corpus, method, r, n`` (n: models; r is NaN for fewer
    than 3 models or no variation in either)."""
    rows = []
    for (corpus, method), part in per_model.groupby(["corpus", "method"], sort=False):
        r = np.nan
        if len(part) >= 3 and part.precision.nunique() > 1 and part.accuracy.nunique() > 1:
            r = float(np.corrcoef(part.precision, part.accuracy)[0, 1])
        rows.append({"corpus": corpus, "method": method, "r": r, "n": len(part)})
    return pd.DataFrame(rows, columns=["corpus", "method", "r", "n"])


def matched_table(models: pd.DataFrame, corpora: list[str], degrees: list[str]) -> pd.DataFrame:
    """Appendix G, table 1: per corpus and degree the accuracy-matched models' learning rates,
    test accuracies, their mean and the number of models."""
    matched = models[models.matched]
    rows = []
    for corpus in corpora:
        for degree in degrees:
            part = matched[(matched.corpus == corpus) & (matched.degree == degree)]
            if part.empty:
                continue
            rows.append({"corpus": corpus, "degree": degree,
                         "learning rates": ", ".join(f"{v:g}" for v in part.lr),
                         "test accuracies": ", ".join(f"{v:.3f}" for v in part.accuracy),
                         "mean accuracy": float(part.accuracy.mean()), "models": len(part)})
    return pd.DataFrame(rows, columns=["corpus", "degree", "learning rates", "test accuracies",
                                       "mean accuracy", "models"])


def precision_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and count of top-n precision per group (corpus or null baseline) and method,
    every explained model pooled."""
    return (scores.groupby(["group", "method"], as_index=False)["value"]
            .agg(["mean", "median", "count"]))


def gallery_models(models: pd.DataFrame, selection: str, corpora: list[str],
                   degrees: list[str]) -> pd.DataFrame:
    """Figures 3 and 9's columns: per corpus and degree (in that order) the most accurate model
    of the ``selection``: ``corpus, degree, model_id``."""
    part = models[models[selection]].sort_values("accuracy", ascending=False, kind="stable")
    first = part.drop_duplicates(["corpus", "degree"]).set_index(["corpus", "degree"])
    rows = [{"corpus": c, "degree": d, "model_id": first.loc[(c, d), "model_id"]}
            for c in corpora for d in degrees if (c, d) in first.index]
    return pd.DataFrame(rows, columns=["corpus", "degree", "model_id"])
