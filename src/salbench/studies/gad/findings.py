"""The ``gad`` study's findings (document 004, section 6): each claim of tables 1-2 tested on the
run's ``results`` and ``summaries`` rows (:func:`salbench.results.read_results`).

- **Table 1** (section 6.1), per base method: the share of maps with RC = A(CH_GAD) / A(CH_Orig)
  < 1. Unit: the image; its value is the share of its maps (every model, both outputs a) with
  RC < 1; measured: the mean over images with its bootstrap interval; the claim "most images"
  holds when the interval lies above 1/2.
- **Table 2** (section 6.2), per base method: r = the geometric mean over the (model, output)
  cells of mean RS(I, M_GAD, a) / mean RS(I, M_Orig − M_GAD, a), the means over the images where
  both are defined (table 2 compares the two means per cell; the geometric mean pools cells whose
  RS differ in scale by orders of magnitude). Images are resampled jointly across cells. D, GxI,
  GB, IG: the claim holds when the interval lies above 1. Saliency ("similar impacts"): the
  measured value is |log₂ r|, similar meaning within a factor of 2 (interval below 1): the
  document's own saliency ratios span 0.36-1.63 ("similar"), its deconvolution ratios
  1.85-2.53 ("effectively identifies the most impactful regions").

Every finding needs every model of the config to pass the accuracy gate (``accuracy_gate``,
:meth:`GADConfig.gate_threshold`); a model under it makes the finding ``not testable here``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from salbench.data import cells, mri_lesions
from salbench.models.training import preset
from salbench.results import read_results
from salbench.results.findings import (
    Finding,
    Gate,
    finding,
    gate,
    mean_interval,
    not_testable,
    rng_for,
    statistic_interval,
)
from salbench.studies.gad import analysis
from salbench.studies.gad.config import PAPER_METHODS, GADConfig
from salbench.studies.gad.grid import NAME, model_id

SUPPORT_EPOCHS, SUPPORT_LR, IMAGES = 10, 4e-5, 512  # document 004, section 6
LABELS = {m["name"]: m["label"] for m in PAPER_METHODS}  # section 6: S, D, GxI, GB, IG
MOST = 0.5  # "most images": more than half
SIMILAR_LOG2 = 1.0  # "similar impacts": within a factor of 2 (see the module docstring)
# Document 004, table 1: images with RC < 1 ("GAD r (ours)" rows) of 512, over its 8 rows
# (2 datasets x 2 architectures x 2 outputs), as shares.
TABLE1 = {"saliency": "0.30-0.76", "deconvolution": "0.996-1", "input_x_gradient": "0.95-0.99",
          "guided_backprop": "0.83-0.92", "integrated_gradients": "0.94-0.99"}
# Document 004, table 2: mean RS(GAD r) / mean RS(Sup.r) over its 8 rows.
TABLE2 = {"saliency": "0.36-1.63", "deconvolution": "1.85-2.53", "input_x_gradient": "6.8-110",
          "guided_backprop": "3.9-141", "integrated_gradients": "13-80"}
TABLE1_CLAIM = ("GAD successfully reduces the area of importance for nearly all images and "
                "methods: RC < 1 for most images ({label})")
TABLE2_CLAIM = ("For Deconvolution, Gradient x Input, Guided-Backpropagation, and Integrated "
                "Gradients, GAD effectively identifies the most impactful regions: mean "
                "RS(GAD) > mean RS(Sup.) ({label})")
SALIENCY_CLAIM = ("In the case of Saliency visualization, both the areas selected by GAD and the "
                  "supplementary areas display similar impacts ({label})")


def class_names(config: GADConfig) -> list[str]:
    """The names of the config's class pair, where the data kind names its classes."""
    names = {"cells": cells.CLASSES, "mri_lesions": mri_lesions.CLASSES}.get(config.data.kind)
    return [names[c] if names else str(c) for c in config.classes]


def setting_note(config: GADConfig) -> str:
    """What replaces document 004's setting (section 6) in this run."""
    support = preset("gad-support", **config.support)
    first, second = class_names(config)
    weights = {m.weights for m in config.models}
    parts = [f"data: {config.data.kind} {first} vs {second} at {config.data.size} px (the "
             "document's cats vs dogs and CUB warblers vs sparrows are not here)",
             "models: " + ", ".join(model_id(m) for m in config.models)
             + (" from scratch (no ImageNet weights here)" if weights == {None} else "")]
    if (support.epochs, support.lr) != (SUPPORT_EPOCHS, SUPPORT_LR):
        parts.append(f"supports: {support.epochs} epochs at lr {support.lr:g} (document: "
                     f"{SUPPORT_EPOCHS} at {SUPPORT_LR:g})")
    if 2 * config.n_per_class != IMAGES:
        parts.append(f"{2 * config.n_per_class} images (document: {IMAGES})")
    return "; ".join(parts)


def model_gate(tables: dict[str, pd.DataFrame], config: GADConfig) -> Gate:
    """Test accuracy of every model of the config against the study's gate."""
    return gate(tables["summaries"], config.gate_threshold, "accuracy",
                models=[model_id(m) for m in config.models])


def per_model(values: pd.DataFrame, column: str) -> str:
    """``model value, ...`` of the per-model means of ``column``."""
    means = values.groupby("model_id")[column].mean()
    return ", ".join(f"{m} {v:.3g}" for m, v in means.items())


def rc_below_one(results: pd.DataFrame, key: str) -> pd.DataFrame:
    """RC rows of one base method with ``smaller`` = 1.0 where RC < 1 (undefined RC left out)."""
    rc = results[(results.metric == analysis.RC) & (results.method == key)]
    rc = rc[rc.value.notna()]
    return rc.assign(smaller=(rc.value < 1).astype(float))


def ratio_columns(paired: pd.DataFrame) -> list[np.ndarray]:
    """Per (model, output) cell of one method's :func:`analysis.paired_sensitivity` frame, three
    columns over the images (rows, by ``sample_id``): RS(GAD), RS(Sup.) and 1 where both are
    defined (the RS set to 0 elsewhere). Images with no defined pair in any cell are left out."""
    ids = sorted(paired.sample_id.unique())
    columns = []
    for _, cell in paired.groupby(["model_id", "role"]):
        cell = cell.set_index("sample_id").reindex(ids)
        both = cell.GAD.notna() & cell.supplementary.notna()
        columns += [cell.GAD.where(both, 0.0).to_numpy(float),
                    cell.supplementary.where(both, 0.0).to_numpy(float),
                    both.to_numpy(float)]
    if not columns:
        return columns
    used = np.sum(columns[2::3], axis=0) > 0
    return [c[used] for c in columns]


def mean_ratio(*columns: np.ndarray) -> float:
    """Geometric mean of mean RS(GAD) / mean RS(Sup.) over the cells (columns of
    :func:`ratio_columns`) that have a defined pair; a cell without one (every supplementary
    region empty, e.g. an all-zero map) is left out; NaN when no cell has one, infinite where a
    mean RS is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = [np.log((g * w).sum() / (s * w).sum())
                for g, s, w in zip(columns[0::3], columns[1::3], columns[2::3]) if w.sum() > 0]
    return float(np.exp(np.mean(logs))) if logs else math.nan


def log2_distance_from_one(*columns: np.ndarray) -> float:
    """|log₂ r| of :func:`mean_ratio`: 0 for equal impacts, 1 for a factor of 2."""
    return float(abs(np.log2(mean_ratio(*columns))))


def complexity_finding(results: pd.DataFrame, name: str, key: str | None, config: GADConfig,
                       scale: str, model_gate_: Gate, note: str) -> Finding:
    """Table 1 for the base method ``name`` (run under ``key``; None: not run): the share of
    maps with RC < 1, per image."""
    label = key or LABELS[name]
    claim, section = TABLE1_CLAIM.format(label=label), "6.1, table 1"
    rc = rc_below_one(results, label)
    if key is None or rc.empty:
        return not_testable(NAME, claim, section, TABLE1[name],
                            f"no RC rows for {label} in this run; {note}", scale=scale)
    per_image = rc.groupby("sample_id").smaller.mean()
    interval = mean_interval(per_image.to_numpy(),
                             rng_for(NAME, "table1", label, seed=config.seed))
    how = ("share of maps (models x both outputs) with RC < 1 per image, mean over images; "
           f"per model: {per_model(rc, 'smaller')}")
    return finding(NAME, claim, section, TABLE1[name], interval, scale=scale, bound=MOST,
                   side="above", note=f"{how}; {note}", gate_=model_gate_)


def sensitivity_finding(paired: pd.DataFrame, name: str, key: str | None, config: GADConfig,
                        scale: str, model_gate_: Gate, note: str) -> Finding:
    """Table 2 for the base method ``name`` (run under ``key``; None: not run): GAD's region
    more influential per pixel than the supplementary one (D, GxI, GB, IG), or similar to it
    (saliency)."""
    label, saliency = key or LABELS[name], name == "saliency"
    claim = (SALIENCY_CLAIM if saliency else TABLE2_CLAIM).format(label=label)
    section, document = "6.2, table 2", f"RS(GAD)/RS(Sup.) {TABLE2[name]}"
    rows = paired[paired.method == label]
    columns = ratio_columns(rows)
    if key is None or not columns:
        return not_testable(NAME, claim, section, document,
                            f"no RS rows for {label} in this run; {note}", scale=scale)
    statistic = log2_distance_from_one if saliency else mean_ratio
    interval = statistic_interval(statistic, *columns,
                                  rng=rng_for(NAME, "table2", label, seed=config.seed))
    defined = rows.dropna(subset=["GAD", "supplementary"])
    how = ("r = geometric mean over (model, output) of mean RS(GAD) / mean RS(Sup.) = "
           f"{mean_ratio(*columns):.3g}; "
           + ("measured |log2 r|, similar = within a factor of 2; " if saliency else "")
           + f"{len(defined)} of {len(rows)} maps with both RS defined (an empty "
             "supplementary region leaves RS undefined)")
    bound, side = (SIMILAR_LOG2, "below") if saliency else (1.0, "above")
    return finding(NAME, claim, section, document, interval, scale=scale, bound=bound,
                   side=side, note=f"{how}; {note}", gate_=model_gate_)


def claims(tables: dict[str, pd.DataFrame], config: GADConfig, scale: str) -> list[Finding]:
    """Document 004's claims of tables 1-2, one finding per base method and table (table 1
    first), from the ``results`` and ``summaries`` frames of this study."""
    results, note = tables["results"], setting_note(config)
    model_gate_ = model_gate(tables, config)
    paired = analysis.paired_sensitivity(results)
    run = {m.name: m.key for m in config.methods}
    return ([complexity_finding(results, name, run.get(name), config, scale, model_gate_, note)
             for name in LABELS]
            + [sensitivity_finding(paired, name, run.get(name), config, scale, model_gate_, note)
               for name in LABELS])


def study_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """This study's ``results`` and ``summaries`` rows of a run."""
    tables = {}
    for table in ("results", "summaries"):
        rows = read_results(run_dir, table)
        tables[table] = rows[rows.study == NAME]
    return tables


def findings(run_dir: Path, scale: str) -> list[Finding]:
    """The findings of the run's ``gad`` rows (its ``config.yaml`` names models and methods)."""
    run_dir = Path(run_dir)
    config = GADConfig.from_yaml(run_dir / "config.yaml")
    return claims(study_tables(run_dir), config, scale)
