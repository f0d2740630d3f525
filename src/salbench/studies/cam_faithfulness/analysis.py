"""The cam-faithfulness analysis: pure functions from the result tables to document 003's tables.

Inputs are frames of :func:`salbench.results.read_results` (``results``, ``curves``,
``summaries``) of this study, with the factor columns the grid writes (``arch``, ``head``,
``trained``, ``layer_choice``, ``layer``, ``heatmap``, ``region``, ``radius``,
``document_radius``). Tidy functions return one row per model / method / factor level with the
value and its ``n``; the ``*_table`` functions shape them for the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

ARCH_LABELS = {"vgg16": "VGG-16", "vgg19": "VGG-19", "vgg16_bn": "VGG-16-BN",
               "vgg19_bn": "VGG-19-BN", "resnet18": "ResNet-18", "resnet34": "ResNet-34",
               "resnet50": "ResNet-50", "alexnet": "AlexNet"}
HEAD_LABELS = {"conv_flatten_fc": "Flatten", "gap_fc": "GAP", "classifier": "Dense"}
STRUCTURES = {"gap_fc": "Conv – GAP – Class scores",
              "conv_flatten_fc": "Conv – Flatten – Class scores",
              "classifier": "Conv – GAP/Flatten – Dense – Class scores"}
GRADCAM, HIRESCAM, CAM = "Grad-CAM", "HiResCAM", "CAM"
# Document 003, table 1: (head, gradients w.r.t. the last conv layer?) -> (equivalent, the methods
# whose raw map sums to the class score). Layer choice "last_conv2d" is not in the document.
DOCUMENT_TABLE_1 = {
    ("gap_fc", "last"): (True, (GRADCAM, HIRESCAM)),
    ("gap_fc", "earlier"): (False, ()),
    ("conv_flatten_fc", "last"): (False, (HIRESCAM,)),
    ("conv_flatten_fc", "earlier"): (False, ()),
    ("classifier", "last"): (False, ()),
    ("classifier", "earlier"): (False, ()),
}
# Document 003, section 5.4 / table 10: on how many of its 8 Conv–Flatten models HiResCAM wins.
DOCUMENT_COUNTS = {"the lower mean max-sensitivity": (8, 8),
                   "a mean AOPC at least as high as Grad-CAM's": (8, 8),
                   "a HAAS above 1": (1, 8)}


# ---------------------------------------------------------------- models

def model_label(arch: str, head: str, trained: bool = True) -> str:
    """"ResNet-34 Flatten", "VGG-19 Dense (untrained)"."""
    text = f"{ARCH_LABELS.get(arch, arch)} {HEAD_LABELS.get(head, head)}"
    return text if trained else f"{text} (untrained)"


def model_labels(frame: pd.DataFrame) -> pd.Series:
    """``model_id`` → :func:`model_label` from a frame's ``arch``, ``head`` (and ``trained``)."""
    if frame.empty or not {"arch", "head"} <= set(frame.columns):
        return pd.Series(dtype=str, name="model")
    rows = frame.drop_duplicates("model_id")
    trained = rows["trained"] if "trained" in rows else pd.Series(True, index=rows.index)
    return pd.Series([model_label(a, h, bool(t) if pd.notna(t) else True)
                      for a, h, t in zip(rows["arch"], rows["head"], trained)],
                     index=rows.model_id.to_numpy(), name="model")


def model_scores(summaries: pd.DataFrame) -> pd.DataFrame:
    """Test-set classification scores, model × score (document 003, table 4), with the model's
    ``arch`` and ``head``."""
    rows = summaries[summaries.metric == "classification"]
    if rows.empty:
        return pd.DataFrame()
    table = rows.pivot_table(index="model_id", columns="output", values="value")
    table.columns.name = None
    return rows.groupby("model_id")[["arch", "head"]].first().join(table)


# ---------------------------------------------------------------- table 1

def identity_medians(results: pd.DataFrame) -> pd.DataFrame:
    """Median over the images of each ``cam_identities`` output: one row per model, layer
    choice, method and output, with ``n`` images."""
    rows = results[results.metric == "cam_identities"]
    if rows.empty:
        return pd.DataFrame()
    keys = ["model_id", "arch", "head", "trained", "layer_choice", "layer", "method", "output"]
    return (rows.groupby(keys, sort=False).value.agg(["median", "count"])
            .rename(columns={"count": "n"}).reset_index())


def verdict(equivalent: bool, contributes: Sequence[str]) -> str:
    """Table 1's wording: "Not equivalent; only HiResCAM contributes to the class score"."""
    first = "Equivalent" if equivalent else "Not equivalent"
    if not contributes:
        return f"{first}; none contributes to the class score"
    if len(contributes) >= 2:
        return f"{first}; both contribute to the class score"
    return f"{first}; only {contributes[0]} contributes to the class score"


def measured_verdict(distance: float, errors: Mapping[str, float], tolerance: float) -> str:
    """The verdict of measured medians: equivalent iff the Grad-CAM–HiResCAM ``distance`` is
    below ``tolerance``; a method contributes iff its contribution error is."""
    return verdict(bool(distance < tolerance),
                   [m for m in (GRADCAM, HIRESCAM) if errors.get(m, np.nan) < tolerance])


def document_claim(head: str, layer_choice: str) -> str | None:
    """Document 003's table-1 verdict for a head and layer choice (None where it has none)."""
    claim = DOCUMENT_TABLE_1.get((head, layer_choice))
    return None if claim is None else verdict(*claim)


def agreement(measured: str, claim: str | None) -> str:
    """"yes" / "NO" whether a measured verdict is the document's, "—" where it has none."""
    if claim is None:
        return "—"
    return "yes" if measured == claim else "NO"


def table_1(results: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """The measured table 1: per model and layer choice the median Grad-CAM–HiResCAM distance,
    each method's median contribution error (CAM/(D1·D2)'s on GAP models), the measured verdict
    under ``tolerance``, the document's and whether they agree."""
    medians = identity_medians(results)
    if medians.empty:
        return pd.DataFrame()
    labels = model_labels(medians)
    out = []
    for (mid, choice), part in medians.groupby(["model_id", "layer_choice"], sort=False):
        value = part.set_index(["method", "output"])["median"]
        first = part.iloc[0]
        distance = value.get((GRADCAM, "distance_to_hirescam"), np.nan)
        errors = {m: value.get((m, "contribution_error"), np.nan) for m in (GRADCAM, HIRESCAM)}
        measured = measured_verdict(distance, errors, tolerance)
        claim = document_claim(first["head"], choice)
        size = (f"{value.get((HIRESCAM, 'feature_height'), np.nan):.0f}×"
                f"{value.get((HIRESCAM, 'feature_width'), np.nan):.0f}")
        record = {"structure": STRUCTURES[first["head"]], "model": labels[mid],
                  "layer": f"{choice} ({first['layer']}, {size})",
                  "Grad-CAM vs HiResCAM distance": distance,
                  "Grad-CAM contribution error": errors[GRADCAM],
                  "HiResCAM contribution error": errors[HIRESCAM]}
        if (CAM, "contribution_error") in value.index:
            record["CAM/(D1·D2) contribution error"] = value[(CAM, "contribution_error")]
            record["CAM/(D1·D2) vs HiResCAM distance"] = value[(CAM, "distance_to_hirescam")]
        record |= {"measured": measured, "document (table 1)": claim or "—",
                   "agrees": agreement(measured, claim), "n": int(part.n.min())}
        out.append(record)
    columns = list(dict.fromkeys(k for record in out for k in record))
    tail = ["measured", "document (table 1)", "agrees", "n"]
    table = pd.DataFrame(out, columns=[c for c in columns if c not in tail] + tail)
    order = table.structure.map({s: i for i, s in enumerate(STRUCTURES.values())})
    return table.assign(_order=order).sort_values(["_order", "model", "layer"], kind="stable") \
        .drop(columns="_order").reset_index(drop=True)


# ---------------------------------------------------------------- AOPC, max-sensitivity, HAAS

def aopc_means(results: pd.DataFrame) -> pd.DataFrame:
    """Mean AOPC over the scored (correctly classified) images per model, method and heatmap
    size (document 003, table 5), largest regions first."""
    rows = results[(results.metric == "aopc") & (results.output == "aopc")]
    if rows.empty:
        return pd.DataFrame()
    return (rows.groupby(["model_id", "method", "heatmap", "region"]).value
            .agg(aopc="mean", n="count").reset_index()
            .sort_values(["region", "model_id", "method"], ascending=[False, True, True],
                         kind="stable").reset_index(drop=True))


def aopc_table(means: pd.DataFrame) -> pd.DataFrame:
    """:func:`aopc_means` as (heatmap, method) × model."""
    if means.empty:
        return pd.DataFrame()
    order = list(dict.fromkeys(means.heatmap))
    table = means.pivot_table(index=["heatmap", "method"], columns="model_id", values="aopc")
    return table.reindex(order, level=0)


def morf_curves(curves: pd.DataFrame, heatmap: str = "8x8") -> pd.DataFrame:
    """Mean MoRF curve (class probability after k regions, the AOPC curve ``score``) per model
    and method at one heatmap size (document 003, figure 14); the largest regions when
    ``heatmap`` was not run. Columns ``model_id, method, heatmap, step, probability, n``."""
    rows = curves[(curves.metric == "aopc") & (curves.curve == "score")]
    if rows.empty:
        return pd.DataFrame()
    if heatmap not in set(rows.heatmap):
        heatmap = rows.sort_values("region", ascending=False).heatmap.iloc[0]
    rows = rows[rows.heatmap == heatmap]
    return (rows.groupby(["model_id", "method", "heatmap", "point"]).value
            .agg(probability="mean", n="count").reset_index()
            .rename(columns={"point": "step"}))


def sensitivity_means(results: pd.DataFrame) -> pd.DataFrame:
    """Mean max-sensitivity per model, method and radius (document 003, figure 15);
    ``document_radius`` on the document's [−1, 1] scale, ``radius`` as applied."""
    rows = results[(results.metric == "max_sensitivity") & (results.output == "max_sensitivity")]
    if rows.empty:
        return pd.DataFrame()
    return (rows.groupby(["model_id", "method", "document_radius", "radius"]).value
            .agg(max_sensitivity="mean", n="count").reset_index())


def haas_scores(results: pd.DataFrame, summaries: pd.DataFrame) -> pd.DataFrame:
    """Per model and method: Acc(x) and Acc(HA) over the scored images (per-sample
    ``correct_x`` / ``correct_ha``) and HAAS = Acc(HA) / Acc(x) as the metric wrote it
    (``summaries``; eq. 10, document 003 table 7), with ``n`` images."""
    rows = results[results.metric == "haas"]
    if rows.empty:
        return pd.DataFrame()
    acc = rows.pivot_table(index=["model_id", "method"], columns="output", values="value",
                           aggfunc="mean")
    n = rows[rows.output == "correct_x"].groupby(["model_id", "method"]).size()
    ratio = summaries[(summaries.metric == "haas") & (summaries.output == "haas")]
    out = pd.DataFrame({"acc_x": acc["correct_x"], "acc_ha": acc["correct_ha"]})
    out["haas"] = ratio.set_index(["model_id", "method"]).value
    out["n"] = n
    return out.reset_index()


# ---------------------------------------------------------------- table 10 and section 5.4

def summary_table(models: pd.DataFrame, aopc: pd.DataFrame, sensitivity: pd.DataFrame,
                  haas: pd.DataFrame) -> pd.DataFrame:
    """Document 003, table 10, per model (index ``model_id``): its ``head``, balanced accuracy,
    mean AUC and per method the mean AOPC over heatmap sizes, the mean max-sensitivity over
    radii and HAAS."""
    out = pd.DataFrame(index=models.index)
    out["head"] = models["head"]
    out["balanced accuracy"] = models.get("balanced_accuracy")
    out["mean AUC"] = models.get("mean_auc")
    parts = [("mean AOPC", aopc, "aopc"), ("mean max-sens", sensitivity, "max_sensitivity"),
             ("HAAS", haas, "haas")]
    for name, frame, column in parts:
        if frame.empty:
            continue
        means = frame.groupby(["model_id", "method"])[column].mean()
        for method in (GRADCAM, HIRESCAM):
            if method in means.index.get_level_values("method"):
                out[f"{name} {method}"] = means.xs(method, level="method")
    return out


def conclusion_counts(summary: pd.DataFrame) -> pd.DataFrame:
    """On how many Conv–Flatten models (``head == "conv_flatten_fc"`` rows of
    :func:`summary_table`) HiResCAM has the lower mean max-sensitivity, a mean AOPC at least
    Grad-CAM's and a HAAS above 1, next to the document's counts (section 5.4, table 10).
    Columns ``claim, k, n, document_k, document_n``."""
    rows = summary[summary["head"] == "conv_flatten_fc"]
    tests = {
        "the lower mean max-sensitivity": ("mean max-sens", lambda h, g: h < g),
        "a mean AOPC at least as high as Grad-CAM's": ("mean AOPC", lambda h, g: h >= g),
        "a HAAS above 1": ("HAAS", lambda h, g: h > 1),
    }
    out = []
    for claim, (name, wins) in tests.items():
        columns = [f"{name} {HIRESCAM}", f"{name} {GRADCAM}"]
        if rows.empty or not set(columns) <= set(rows.columns):
            continue
        scored = rows.dropna(subset=columns)
        k = int(wins(scored[columns[0]], scored[columns[1]]).sum())
        out.append({"claim": claim, "k": k, "n": len(scored),
                    "document_k": DOCUMENT_COUNTS[claim][0],
                    "document_n": DOCUMENT_COUNTS[claim][1]})
    return pd.DataFrame(out, columns=["claim", "k", "n", "document_k", "document_n"])


def count_text(counts: pd.DataFrame) -> str:
    """One sentence of :func:`conclusion_counts`: "Measured here, HiResCAM has the lower mean
    max-sensitivity on 2 of 3 Conv–Flatten models (document: 8 of 8); …"."""
    parts = [f"{row.claim} on {row.k} of {row.n}{' Conv–Flatten models' if i == 0 else ''} "
             f"(document: {row.document_k} of {row.document_n})"
             for i, row in enumerate(counts.itertuples())]
    return f"Measured here, HiResCAM has {'; '.join(parts)}." if parts else ""


def against_accuracy(models: pd.DataFrame, values: pd.DataFrame, column: str,
                     method: str = HIRESCAM) -> pd.DataFrame:
    """``method``'s ``column`` per model (one row per heatmap size or radius where the values
    have them) with the model's balanced accuracy (document 003, figures 16–18)."""
    rows = values[values.method == method]
    accuracy = models["balanced_accuracy"].rename("balanced accuracy")
    return rows[["model_id", column]].join(accuracy, on="model_id")
