"""The lrp-grid report section: contours of the AUC over the grid (figures 4.1, 4.2), the AUC
distributions (figure 4.6), the optima, relevance range and conservation (figure 3.2) and the
maps at the optima (figure 4.3)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from salbench.report import Figure, Section, Table, figures, load_gallery_item
from salbench.report.gallery import gallery_files
from salbench.results import read_results
from salbench.studies.lrp_grid import analysis
from salbench.studies.lrp_grid.config import SORT_LABELS, LrpGridConfig
from salbench.studies.lrp_grid.findings import model_gate
from salbench.studies.lrp_grid.grid import NAME

TEXT = ("A VGG-16 is explained with two layer-index composites whose two free hyperparameters "
        "run over a grid (document 002: {0, 10⁻⁴ … 10⁰}, 16 values, 256 combinations per "
        "composite), with the denominator stabiliser (vanilla, zennit, tutorial; section 2.1.5) "
        "as a third factor. Each map is scored by region perturbation (section 2.2: 8×8 "
        "patches, inpainting, k² patches flipped after step k, repeated flipping, the last step "
        "all gray) in the MoRF, LRF and random orders, summarised by the area under the "
        "perturbation curve (AUC; lower is better for MoRF, higher for LRF). The explained class "
        "is the ground-truth class (section 3).")
AXES = {("decreasing_gamma", "table"): ("γ, VGG-16 modules 11–17", "γ, VGG-16 modules 18–24"),
        ("decreasing_gamma", "text"): ("γ, VGG-16 modules 1–17", "γ, VGG-16 modules 18–24"),
        ("tutorial", "table"): ("γ, VGG-16 modules 1–16", "ε, VGG-16 modules 17–30")}
TITLES = {"decreasing_gamma": "LRP decreasing-γ", "tutorial": "LRP tutorial"}
SHORT = {"decreasing_gamma": "decr.-γ", "tutorial": "tutorial"}
FIGURE = {"decreasing_gamma": "4.1", "tutorial": "4.2"}
MARK = {"lower": "min", "higher": "max"}


def report_section(run_dir: Path) -> Section:
    tables = {t: read_results(run_dir, t) for t in ("results", "curves", "summaries")}
    results, curves, summaries = (tables[t][tables[t].study == NAME]
                                  for t in ("results", "curves", "summaries"))
    config = LrpGridConfig.from_yaml(Path(run_dir) / "config.yaml")
    gate_ = model_gate(summaries, config)
    section = Section("LRP hyperparameter grid (document 002)",
                      (gate_.banner() if gate_ is not None else "") + TEXT)
    if gate_ is not None:
        section.lead_tables.append(gate_table(gate_))
    grid = analysis.auc_grid(results)
    if grid.empty:
        return section
    models = analysis.model_scores(summaries)
    if not models.empty:
        section.tables.append(Table(models, "Test-set classification scores of the explained "
                                            "VGG-16.", name="lrp-grid-model"))
    section.subsections += [contour_section(grid, composite, config.decreasing_gamma_layers)
                            for composite in dict.fromkeys(grid.composite)]
    section.figures.append(distribution_figure(grid))
    best = analysis.optima(grid).assign(order=lambda f: f.order.map(SORT_LABELS))
    section.tables.append(Table(best.drop(columns="direction")
                                .set_index(["composite", "stabiliser", "order"]),
                                "Optimal grid points: lowest mean MoRF AUC, highest mean LRF AUC "
                                "(first = γ₁ or γ, second = γ₂ or ε; n images).",
                                name="lrp-grid-optima"))
    spread = analysis.auc_spread(grid).assign(order=lambda f: f.order.map(SORT_LABELS))
    section.tables.append(Table(spread.set_index(["composite", "stabiliser", "order"]),
                                "Range of the mean AUC over the grid (section 4.1: constant, "
                                "spread 0, for the random order).", name="lrp-grid-spread"))
    section.tables.append(Table(analysis.map_checks(results).set_index(
        ["composite", "stabiliser"]), "Figure 3.2: relevance range, conservation error "
        "|Σ R − f_y(x)| / |f_y(x)| of the finite maps and the share of finite maps (vanilla "
        "stabiliser: zero denominators, fig. 2.5) over the grid.", name="lrp-grid-relevance"))
    layers = analysis.layer_ratios(curves)
    if not layers.empty:
        section.figures.append(layer_figure(layers))
    section.figures += optimal_figures(run_dir)
    return section


def gate_table(gate_) -> Table:
    """The explained model's test accuracy against the gate, said loudly when it is missed."""
    frame = pd.DataFrame([{"model": m, gate_.output: s, "gate": gate_.threshold,
                           "passed": bool(s >= gate_.threshold)}
                          for m, s in sorted(gate_.scores.items())]).set_index("model")
    verdict = ("passed" if gate_.passed else "MISSED: every finding below is 'not testable "
               "here' and the numbers that follow come from a model that did not learn the task")
    bold = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    bold["passed"] = ~frame.passed
    return Table(frame, f"Accuracy gate of the explained model ({gate_.output} ≥ "
                        f"{gate_.threshold:g} on the test set): {verdict}.",
                 name="lrp-grid-gate", bold=bold)


def contour_section(grid: pd.DataFrame, composite: str, layers: str = "table") -> Section:
    """Figures 4.1 / 4.2: one contour plot per stabiliser and order, the star on the optimum."""
    sub = Section(f"{TITLES[composite]}: AUC over the grid",
                  "Mean AUC over the explained images per grid point; the star marks the best "
                  "point (lowest for MoRF, highest for LRF). Random order is expected to be flat "
                  "(section 4.1).")
    xlabel, ylabel = AXES[(composite, layers if composite == "decreasing_gamma" else "table")]
    rows = grid[grid.composite == composite].dropna(subset=["auc"])
    for (stabiliser, order), part in rows.groupby(["stabiliser", "order"], sort=False):
        label = SORT_LABELS[order]
        fig = figures.contour_plot(part, "first", "second", "auc", xlabel=xlabel, ylabel=ylabel,
                                   mark=MARK.get(part.direction.iloc[0]),
                                   title=f"{TITLES[composite]}, {stabiliser} stabiliser, {label}")
        sub.figures.append(Figure(fig, f"Figure {FIGURE[composite]}: AUC of {label} region "
                                       f"perturbation, {stabiliser} stabiliser.",
                                  name=f"lrp-grid-{composite}-{stabiliser}-{order}", embed="svg"))
    return sub


def distribution_figure(grid: pd.DataFrame) -> Figure:
    """Figure 4.6: box plots of the per-grid-point mean AUC per composite and order."""
    frame = grid.assign(**{"composite / sort": grid.composite.map(SHORT) + " "
                           + grid.order.map(SORT_LABELS)})
    return Figure(figures.box_plot(frame, "composite / sort", "auc", hue="stabiliser",
                                   ylabel="AUC"),
                  "Figure 4.6: distribution over the grid of the mean AUC per grid point.",
                  name="lrp-grid-auc-distribution", embed="svg")


def layer_figure(layers: pd.DataFrame) -> Figure:
    """Figure 3.2: Σ R / f_y(x) through the layers at the default and the optimal points."""
    frame = layers.assign(point=layers.composite.map(TITLES) + ", " + layers.stabiliser + ", "
                          + layers.setting)
    fig = figures.line_plot(frame, "position", "ratio", hue="point",
                            xlabel="position (0 = output, then conv/linear inputs top-down, "
                                   "last = pixels)", ylabel="Σ R / f_y(x)")
    return Figure(fig, "Figure 3.2: relevance conservation through the layers at the default "
                  "and the optimal grid points (1 = all relevance conserved).",
                  name="lrp-grid-conservation", embed="svg")


def optimal_figures(run_dir: Path) -> list[Figure]:
    """Figure 4.3: per (composite, stabiliser), the stored images with the maps of the default
    composite and of the MoRF and LRF optima."""
    by_model: dict[str, list] = {}
    for path in gallery_files(run_dir).get(NAME, []):
        item = load_gallery_item(path)
        by_model.setdefault(item.model_id, []).append(item)
    out = []
    for model_id, group in sorted(by_model.items()):
        labels = list(group[0].maps)
        fig = figures.map_grid([[i.maps[k] for k in labels] for i in group], col_labels=labels,
                               images=[i.image for i in group], reduce="sum")
        out.append(Figure(fig, f"Figure 4.3: heatmaps of {model_id} at the default "
                          "hyperparameters and at the grid optima (γ₁/γ, γ₂/ε in brackets).",
                          name=f"lrp-grid-optimal-{model_id}", embed="png"))
    return out
