"""The ``gad`` study's analysis (document 004, section 6): pure functions from the ``results``
frame (:func:`salbench.results.read_results`, this study's rows) to tidy frames and tables 1-2.

Every tidy frame has one row per model, base method and output of the pair (columns
:data:`GROUP`: ``model_id``, ``method``, ``role`` 1 or 2, ``class_index`` the output a) with the
measured values and their n; undefined values (NaN: RS of an empty mask) are counted in
``undefined``, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from salbench.studies.gad.config import METRICS

RC, RS_GAD, RS_SUPPLEMENTARY = METRICS
GROUP = ["model_id", "method", "role", "class_index"]
MASKS = {RS_GAD: "GAD", RS_SUPPLEMENTARY: "supplementary"}
"""Metric -> the occlusion mask it scores: M_GAD or the supplementary M_Orig − M_GAD."""
ROLES = (1, 2)


def _rows(results: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    rows = results[results.metric.isin(metrics)]
    return rows.astype({"role": int, "class_index": int})


def complexity_counts(results: pd.DataFrame) -> pd.DataFrame:
    """Section 6.1 per model, base method and output: ``n`` images scored, ``gad`` the number
    with RC < 1 (GAD's important region is smaller: a point for GAD), ``orig`` those with
    RC ≥ 1 (a point for the original map), ``undefined`` those with no RC, and ``rc_mean``."""
    rc = _rows(results, [RC])
    flags = rc.assign(gad=rc.value < 1, orig=rc.value >= 1, undefined=rc.value.isna())
    return flags.groupby(GROUP, as_index=False).agg(
        n=("value", "size"), gad=("gad", "sum"), orig=("orig", "sum"),
        undefined=("undefined", "sum"), rc_mean=("value", "mean"))


def sensitivity_means(results: pd.DataFrame) -> pd.DataFrame:
    """Section 6.2 per model, base method, output and ``mask`` (``GAD``: RS(I, M_GAD, a);
    ``supplementary``: RS(I, M_Orig − M_GAD, a)): ``rs_mean`` over the images where RS is
    defined, their number ``n`` and the number ``undefined`` (empty mask)."""
    rs = _rows(results, list(MASKS))
    rs = rs.assign(mask=rs.metric.map(MASKS), undefined=rs.value.isna())
    return rs.groupby(GROUP + ["mask"], as_index=False).agg(
        rs_mean=("value", "mean"), n=("value", "count"), undefined=("undefined", "sum"))


def paired_sensitivity(results: pd.DataFrame) -> pd.DataFrame:
    """Both RS values of each image side by side: :data:`GROUP`, ``sample_id``, ``GAD``
    (RS of M_GAD) and ``supplementary`` (RS of M_Orig − M_GAD), NaN where undefined."""
    rs = _rows(results, list(MASKS))
    wide = (rs.set_index(GROUP + ["sample_id", "metric"]).value.unstack("metric")
            .reindex(columns=list(MASKS)).rename(columns=MASKS))
    wide.columns.name = None
    return wide.reset_index()


def sensitivity_comparison(paired: pd.DataFrame) -> pd.DataFrame:
    """Section 5 expects RS(I, M_GAD, a) > RS(I, M_Orig − M_GAD, a) for every image: per model,
    base method and output, ``n`` images with both RS defined, ``gad_larger`` of them meeting
    the expectation, their ``fraction``, ``undefined`` images and the ``mean_difference``
    RS(GAD) − RS(supplementary)."""
    defined = paired.GAD.notna() & paired.supplementary.notna()
    frame = paired.assign(defined=defined, undefined=~defined,
                          gad_larger=paired.supplementary < paired.GAD,
                          difference=paired.GAD - paired.supplementary)
    out = frame.groupby(GROUP, as_index=False).agg(
        n=("defined", "sum"), gad_larger=("gad_larger", "sum"), undefined=("undefined", "sum"),
        mean_difference=("difference", "mean"))
    return out.assign(fraction=out.gad_larger / out.n.where(out.n > 0))


def _table(frame: pd.DataFrame, methods: Sequence[str],
           rows: Sequence[tuple[str, Mapping[str, object], str]], scale: float = 1
           ) -> pd.DataFrame:
    """Per model, one row per ``(label, selection, column)``: the ``column`` of the rows
    matching ``selection``, per base method (columns in the order of ``methods``)."""
    out = []
    for model in sorted(frame.model_id.unique()):
        part = frame[frame.model_id == model]
        for label, selection, column in rows:
            chosen = part
            for key, value in selection.items():
                chosen = chosen[chosen[key] == value]
            out.append({"model": model, "row": label,
                        **(chosen.set_index("method")[column] * scale).to_dict()})
    if not out:
        return pd.DataFrame(columns=list(methods))
    table = pd.DataFrame(out).set_index(["model", "row"])
    return table[[m for m in methods if m in table.columns]]


def complexity_table(counts: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Document 004, table 1 from :func:`complexity_counts`: per model, the images with RC ≥ 1
    (``Orig.r``) and RC < 1 (``GAD r (ours)``) for the maps of output r."""
    rows = [row for r in ROLES for row in ((f"Orig.{r}", {"role": r}, "orig"),
                                           (f"GAD {r} (ours)", {"role": r}, "gad"))]
    return _table(counts, methods, rows)


def sensitivity_table(means: pd.DataFrame, methods: Sequence[str], column: str = "rs_mean",
                      scale: float = 100.0) -> pd.DataFrame:
    """Document 004, table 2 from :func:`sensitivity_means`: per model, mean RS × 10² of the
    supplementary mask (``Sup.r``) and of the GAD mask (``GAD r (ours)``) of output r; with
    ``column="undefined", scale=1`` the number of images where each is undefined."""
    rows = [row for r in ROLES for row in (
        (f"Sup.{r}", {"role": r, "mask": "supplementary"}, column),
        (f"GAD {r} (ours)", {"role": r, "mask": "GAD"}, column))]
    return _table(means, methods, rows, scale)


def comparison_table(comparison: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """From :func:`sensitivity_comparison`: per model and output r, the fraction of images with
    RS(GAD r) > RS(Sup.r)."""
    rows = [(f"RS(GAD {r}) > RS(Sup.{r})", {"role": r}, "fraction") for r in ROLES]
    return _table(comparison, methods, rows)
