"""The ``gad`` study's report section: tables 1-2 and figures 5-6 of document 004."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from salbench.metrics import hull_mask
from salbench.report import Figure, GalleryItem, Section, Table, figures, load_gallery_item
from salbench.report.gallery import gallery_files
from salbench.results.findings import Gate
from salbench.studies.gad import analysis
from salbench.studies.gad.config import GADConfig
from salbench.studies.gad.findings import model_gate, study_tables
from salbench.studies.gad.grid import NAME, gad_label

ORIGINAL_COLOR, GAD_COLOR = "red", "lime"  # section 6.4: original hulls red, GAD hulls green


def gallery(run_dir: Path) -> dict[str, list[GalleryItem]]:
    """The run's gallery items of this study per model, by class, least activated first."""
    items: dict[str, list[GalleryItem]] = {}
    for path in gallery_files(run_dir).get(NAME, []):
        item = load_gallery_item(path)
        items.setdefault(item.model_id, []).append(item)
    for group in items.values():
        group.sort(key=lambda i: (i.meta.get("true", 0), i.meta.get("logit_true", 0)))
    return items


def maps_figure(items: list[GalleryItem], methods: list[str], model: str):
    """Figure 5: per base method a row of original maps and a row of GAD maps (columns:
    images)."""
    labels = [label for method in methods for label in (method, gad_label(method))]
    rows = [[i.maps.get(label) for i in items] for label in labels]
    titles = [[f"y={i.meta.get('true')} ŷ={i.meta.get('predicted')}" for i in items]] * len(rows)
    return figures.map_grid(rows, row_labels=labels, titles=titles,
                            title=f"{model}: original and GAD maps")


def hull(item: GalleryItem, label: str, keep: float):
    """The convex hull ``[H, W]`` of the most important ``keep`` of the pixels of one stored
    map (the masks the metrics scored), or None when the item lacks that map."""
    if label not in item.maps:
        return None
    return hull_mask(torch.as_tensor(item.maps[label])[None], keep=keep)[0].numpy()


def hulls_figure(items: list[GalleryItem], methods: list[str], model: str, keep: float):
    """Figure 6: each image with the convex hull of the original map's most important pixels
    (red) and of the GAD map's (green), per base method."""
    masks = [[(hull(i, m, keep), hull(i, gad_label(m), keep)) for m in methods] for i in items]
    return figures.mask_contour_grid(
        [i.image for i in items], masks, colors=(ORIGINAL_COLOR, GAD_COLOR),
        labels=("original", "GAD"), col_labels=methods,
        row_labels=[f"y={i.meta.get('true')}" for i in items],
        title=f"{model}: convex hulls, original (red) and GAD (green)")


def gate_table(gate: Gate) -> Table:
    """The models' test accuracy against the gate; the caption names the models that miss it."""
    frame = pd.DataFrame({"test accuracy": pd.Series(gate.scores, dtype=float)})
    frame.index.name = "model"
    frame["gate"] = gate.threshold
    frame["passes"] = [m not in gate.failing for m in frame.index]
    if gate.failing:
        caption = (f"ACCURACY GATE MISSED ({gate.describe()}): the maps of these models do not "
                   "count; every finding is 'not testable here' and the tables below show "
                   "what models at chance produce, not evidence for or against document 004.")
    else:
        caption = (f"Every model passes the accuracy gate ({gate.threshold:g} test accuracy): "
                   "its maps count in the findings.")
    return Table(frame, caption, name="gad-gate", digits=3,
                 bold=frame.assign(**dict.fromkeys(frame.columns, ~frame.passes)))


def report_section(run_dir: Path) -> Section:
    """Tables 1-2 and figures 5-6 of document 004 from the run's results and gallery."""
    run_dir = Path(run_dir)
    cfg = GADConfig.from_yaml(run_dir / "config.yaml")
    methods = [m.key for m in cfg.methods]
    tables = study_tables(run_dir)
    results = tables["results"]
    counts = analysis.complexity_counts(results)
    means = analysis.sensitivity_means(results)
    comparison = analysis.sensitivity_comparison(analysis.paired_sensitivity(results))
    n_images = counts.groupby("model_id").n.max()
    text = (
        "Document 004: GAD keeps the features that the original model and every support "
        f"regression (α = {', '.join(f'{a:g}' for a in cfg.alphas)}) find important. RC = "
        "A(CH_GAD)/A(CH_Orig) of the convex hulls of the most important "
        f"{cfg.keep:.0%} of the pixels (RC < 1: GAD's region is smaller); RS = |N_a(I) − "
        "N_a(I·(1−M))| / ΣM for the GAD hull and the supplementary mask M_Orig − M_GAD.\n\n"
        f"Class pair {cfg.classes} of {cfg.data.kind}; images scored per model: "
        + ", ".join(f"{m} {n}" for m, n in n_images.items()) + ".")
    section_tables = [
        Table(analysis.complexity_table(counts, methods),
              "Images where the original (Orig.r, RC ≥ 1) or GAD (GAD r, RC < 1) has the "
              "smaller important area, maps of output r (document 004, table 1).",
              name="gad-table1", digits=4),
        Table(analysis.sensitivity_table(means, methods),
              "Mean RS × 10² for the supplementary (Sup.r) and GAD masks of output r, over the "
              "images where RS is defined (document 004, table 2).", name="gad-table2",
              digits=3),
        Table(analysis.sensitivity_table(means, methods, column="undefined", scale=1),
              "Images without RS (an empty mask: the GAD hull covers the original one, or GAD "
              "kept no pixel), left out of table 2's means.", name="gad-table2-undefined",
              digits=0),
        Table(analysis.comparison_table(comparison, methods),
              "Fraction of the images with both RS defined where RS(I, M_GAD, a) > "
              "RS(I, M_Orig − M_GAD, a), as section 5 expects for every image.",
              name="gad-rs-pairs", digits=3)]
    section_figures = []
    for model, items in sorted(gallery(run_dir).items()):
        section_figures.append(Figure(maps_figure(items, methods, model),
                                      f"{model}: original (odd rows) and GAD maps (even rows) of "
                                      "the least activated test images (document 004, fig. 5).",
                                      name=f"gad-fig5-{model}", embed="png"))
        section_figures.append(Figure(hulls_figure(items, methods, model, cfg.keep),
                                      f"{model}: convex hulls of the original (red) and GAD "
                                      "(green) maps, least activated images per class "
                                      "(document 004, fig. 6).",
                                      name=f"gad-fig6-{model}", embed="png"))
    gate = model_gate(tables, cfg)
    return Section("Gradient Artificial Distancing (document 004)", gate.banner() + text,
                   figures=section_figures, tables=section_tables,
                   lead_tables=[gate_table(gate)])
