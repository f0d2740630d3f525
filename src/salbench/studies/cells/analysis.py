"""The cells study's analysis (document 001): pure functions from the result tables to the
report's tables and plotted frames.

Inputs are frames of :func:`salbench.results.read_results` with the study's factor columns
(``architecture``, ``mode``, ``branch``, ``added_conv_layers``, ``schedule``; see
:mod:`salbench.studies.cells.grid`); per-sample frames also carry the explained sample's
``true`` and ``predicted`` class. Every function returns a tidy frame, one row per
architecture / branch / method / factor level, with the measured value and its ``n``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from salbench.metrics import STANDARD, channel_adjust, stratify

FIVE_BAND = "soft_five_band"
SCORES = ("accuracy_avg", "accuracy_best", "precision_avg", "precision_best", "recall_avg",
          "recall_best", "fpr_avg", "density_avg")
BRANCH = ["architecture", "branch", "model_id"]


def _table1_models(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of the table-1 models (no added conv layers)."""
    return frame[frame.added_conv_layers == 0]


def _five_band(results: pd.DataFrame, schedule: str) -> pd.DataFrame:
    return results[(results.metric == FIVE_BAND) & (results.schedule == schedule)]


def branch_accuracy(summaries: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy per table-1 architecture (table 1): the base model's (continuous mode),
    the mean and standard deviation (ddof 0) over the branches (<Acc.>), and ``n`` branches."""
    rows = _table1_models(summaries[(summaries.metric == "classification")
                                    & (summaries.output == "accuracy")])
    base = rows[rows["mode"] == "continuous"].groupby("architecture", sort=False).value.mean()
    branches = rows[rows["mode"] == "regular"].groupby("architecture", sort=False).value
    out = pd.DataFrame({"base_accuracy": base, "mean_accuracy": branches.mean(),
                        "sd": branches.std(ddof=0), "n": branches.size()})
    out["n"] = out["n"].fillna(0).astype(int)
    out.index.name = "architecture"
    return out.reset_index()


def training_table(settings: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """Table 1: the training ``settings`` (one row per architecture, column ``architecture``
    plus the settings) with the accuracies of :func:`branch_accuracy`."""
    columns = {"base_accuracy": "base acc.", "mean_accuracy": "<Acc.>", "sd": "sd",
               "n": "branches"}
    table = settings.merge(accuracy, on="architecture", how="left").rename(columns=columns)
    table["branches"] = table["branches"].fillna(0).astype(int)
    return table


def pr_points(results: pd.DataFrame, schedule: str, stat: str) -> pd.DataFrame:
    """Figure 3: per table-1 branch and method, R_stat and P_stat (``stat`` "avg" or "best") of
    the ``schedule``'s soft five-band scores, mean over the samples (X_stat = 1/N Σ_k X_stat^(k),
    section 4.1), with the standard deviations over the samples ``R_sd``, ``P_sd`` and ``n``."""
    rows = _table1_models(_five_band(results, schedule))
    names = {f"recall_{stat}": "R", f"precision_{stat}": "P"}
    rows = rows[rows.output.isin(names)]
    columns = [*BRANCH, "method", "R", "P", "R_sd", "P_sd", "n"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    stats = (rows.assign(score=rows.output.map(names))
             .groupby([*BRANCH, "method", "score"], sort=False).value
             .agg(["mean", "std", "size"]).unstack("score"))
    out = pd.DataFrame({"R": stats[("mean", "R")], "P": stats[("mean", "P")],
                        "R_sd": stats[("std", "R")], "P_sd": stats[("std", "P")],
                        "n": stats[("size", "R")].astype(int)}).reset_index()
    return out[columns]


def branch_means(points: pd.DataFrame) -> pd.DataFrame:
    """Mean over the branches of R and P per architecture and method (of :func:`pr_points`),
    with ``branches``, the number of branches behind each mean."""
    grouped = points.groupby(["architecture", "method"], sort=False)
    return grouped.agg(R=("R", "mean"), P=("P", "mean"),
                       branches=("model_id", "nunique")).reset_index()


def roc_points(curves: pd.DataFrame, schedule: str = "standard") -> pd.DataFrame:
    """Figure 4: per table-1 branch, method and threshold index m, the mean FPR and the mean
    recall over the samples (section 3.3: "for each threshold t_m, mean values of FPR and R over
    all samples contribute to a single point"), with the threshold ``label`` and ``n``."""
    rows = _table1_models(_five_band(curves, schedule))
    rows = rows[rows.curve.isin(["fpr", "recall"])]
    columns = [*BRANCH, "method", "m", "label", "FPR", "R", "n"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    stats = (rows.groupby([*BRANCH, "method", "x", "label", "curve"], sort=False).value
             .agg(["mean", "size"]).unstack("curve"))
    out = pd.DataFrame({"FPR": stats[("mean", "fpr")], "R": stats[("mean", "recall")],
                        "n": stats[("size", "fpr")].astype(int)}).reset_index()
    out = out.rename(columns={"x": "m"}).astype({"m": int})
    return out[columns].sort_values([*BRANCH, "method", "m"], ignore_index=True)


def per_sample_table(results: pd.DataFrame, shard_size: int,
                     classes: Sequence[str]) -> pd.DataFrame:
    """Section 3.3's per-sample file: one row per (model, method, schedule, evaluation sample)
    with the sample's ``shard`` and ``position`` in it (sample i is at position i mod
    ``shard_size`` of shard i div ``shard_size``, ``salbench.data.cells``), its true and
    predicted class names and every soft five-band score."""
    rows = results[results.metric == FIVE_BAND]
    index = ["architecture", "added_conv_layers", "branch", "model_id", "method", "schedule",
             "sample_id", "true", "predicted"]
    if rows.empty:
        return pd.DataFrame(columns=[*index, "shard", "position", *SCORES])
    wide = rows.pivot_table(index=index, columns="output", values="value").reset_index()
    wide.columns.name = None
    sample = wide.sample_id.astype(int)
    wide.insert(wide.columns.get_loc("sample_id") + 1, "shard", sample // shard_size)
    wide.insert(wide.columns.get_loc("shard") + 1, "position", sample % shard_size)
    names = np.asarray(classes)
    wide["true"] = names[wide["true"].astype(int)]
    wide["predicted"] = names[wide["predicted"].astype(int)]
    order = ["architecture", "added_conv_layers", "branch", "method", "schedule", "shard",
             "position"]
    return wide[[c for c in wide.columns if c not in SCORES]
                + [s for s in SCORES if s in wide]].sort_values(order, ignore_index=True)


def per_class_points(results: pd.DataFrame, schedule: str = "standard") -> pd.DataFrame:
    """Appendix fig. 1 (section 4.1): per AlexNet + k model (k = ``added_conv_layers`` ≥ 1) and
    **predicted** class, the mean R_avg and P_avg over the samples predicted as that class,
    with ``n`` samples (summed over methods)."""
    rows = _five_band(results, schedule)
    rows = rows[(rows.added_conv_layers > 0)
                & rows.output.isin(["recall_avg", "precision_avg"])]
    columns = ["added_conv_layers", "predicted", "R_avg", "P_avg", "n"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    stats = (rows.groupby(["added_conv_layers", "predicted", "output"]).value
             .agg(["mean", "size"]).unstack("output"))
    out = pd.DataFrame({"R_avg": stats[("mean", "recall_avg")],
                        "P_avg": stats[("mean", "precision_avg")],
                        "n": stats[("size", "recall_avg")].astype(int)}).reset_index()
    return out[columns]


def class_means(points: pd.DataFrame) -> pd.DataFrame:
    """Appendix fig. 1's x marks: per k, the mean over the predicted classes of
    :func:`per_class_points`, with ``classes``, the number of classes behind it."""
    grouped = points.groupby("added_conv_layers")
    return grouped.agg(R_avg=("R_avg", "mean"), P_avg=("P_avg", "mean"),
                       classes=("predicted", "nunique")).reset_index()


def channel_panels(a: np.ndarray) -> list[np.ndarray]:
    """Figures 5–6 for one raw map ``a`` ``[C, H, W]``: its C channels, the channel-adjusted map
    h = Σ_c a_c / max|h| (section 3.3), and its five-band stratification S⁵ / 2 (±1
    discriminative, ±0.5 localisation) at the first and last standard thresholds t₀ and t₅₅."""
    t = torch.from_numpy(np.asarray(a, np.float32))[None]
    h = channel_adjust(t)
    bands = [(stratify(h, t1, t2)[0].float() / 2).numpy()
             for t1, t2 in ((STANDARD.t1[0], STANDARD.t2[0]),
                            (STANDARD.t1[-1], STANDARD.t2[-1]))]
    return [np.asarray(a[c]) for c in range(a.shape[0])] + [h[0].numpy()] + bands
