"""The ``pretraining`` study's report section: figures 3, 4, 8, 9, 10 and table 1 of document
000."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from salbench.explain import absolute, log_display, normalise_max_abs
from salbench.models import read_metadata
from salbench.report import Figure, GalleryItem, Section, Table, figures, load_gallery_item
from salbench.report.gallery import gallery_files
from salbench.results import read_results
from salbench.studies.jobs import checkpoint_path
from salbench.studies.pretraining import analysis, findings
from salbench.studies.pretraining.config import RANDOM_MAP, PretrainingConfig
from salbench.studies.pretraining.grid import NAME, RANDOM_MODEL, explain_plan, pretrain_id

NULL_GROUPS = (RANDOM_MODEL, "sobel", "laplace", RANDOM_MAP)


def display_map(a) -> torch.Tensor:
    """Document 000, section 2.4's display: |map| / max |map|, then the log transform (b = 0.5)."""
    return log_display(normalise_max_abs(absolute(torch.as_tensor(a)[None])))[0]


def pretraining_sources(run_dir: Path, cfg: PretrainingConfig) -> dict[str, str]:
    """What each corpus's starting point was trained on, from its checkpoint's metadata."""
    out = {}
    for corpus in cfg.corpora:
        path = checkpoint_path(run_dir, pretrain_id(corpus))
        if path.is_file():
            meta = read_metadata(path)["meta"]
            out[corpus] = ("ImageNet weights" if meta.get("source") == "imagenet"
                           else f"trained on {meta.get('corpus', meta.get('source'))}")
    return out


def box_figures(scores: pd.DataFrame, models: pd.DataFrame, cfg: PretrainingConfig,
                selection: str, name: str) -> list[Figure]:
    """One box plot per method: precision per degree and group, null baselines at every degree,
    mean test accuracy of the selected models as dashed lines (document 000, figs. 4 and 10)."""
    methods = [m.key for m in cfg.methods]
    frame = analysis.box_frame(scores, selection, methods, cfg.degrees)
    lines = analysis.accuracy_lines(models, selection).rename(columns={"corpus": "group",
                                                                      "accuracy": "value"})
    hue_order = [g for g in [*cfg.corpora, *NULL_GROUPS] if g in set(frame.group)]
    out = []
    for method in methods:
        part = frame[frame.method == method]
        if part.empty:
            continue
        fig = figures.box_plot(part, "degree", "value", hue="group", order=cfg.degrees,
                               hue_order=hue_order, line=lines, line_label="test accuracy",
                               ylabel="top-n precision", title=method)
        out.append(Figure(fig, f"{method}: explanation performance (top-n precision) of the "
                               f"{selection} models per fine-tuning degree; dashed lines: mean "
                               "test accuracy.", name=f"{name}-{method}"))
    return out


def gallery_figure(run_dir: Path, models: pd.DataFrame, cfg: PretrainingConfig,
                   selection: str):
    """Maps of one test sample: methods (rows) × corpus and degree (columns), the most accurate
    model of each selection group (document 000, figs. 3 and 9); None without gallery items."""
    items: dict[str, dict[str, GalleryItem]] = {}
    for path in gallery_files(run_dir).get(NAME, []):
        item = load_gallery_item(path)
        items.setdefault(item.model_id, {})[item.sample_id] = item
    columns = analysis.gallery_models(models, selection, cfg.corpora, cfg.degrees)
    shown = [items.get(model_id, {}) for model_id in columns.model_id]
    first = [min(found) for found in shown if found]
    if not first:
        return None
    sample = min(first)
    picked = [found.get(sample) for found in shown]
    ref = next(i for i in picked if i is not None)
    methods = [m.key for m in cfg.methods]
    rows = [[None if i is None or m not in i.maps else display_map(i.maps[m]) for i in picked]
            for m in methods]
    return figures.map_grid(rows, row_labels=methods,
                            col_labels=[f"{c}\n{d}" for c, d in zip(columns.corpus,
                                                                    columns.degree)],
                            images=[ref.image] + [None] * (len(rows) - 1),
                            masks=[ref.mask] * len(rows),
                            title=f"sample {sample} ({selection} models)")


def gate_table(models: pd.DataFrame, summaries: pd.DataFrame, cfg: PretrainingConfig
               ) -> tuple[Table, list[str]]:
    """The accuracy gate of every explained fine-tuned model (test accuracy against
    ``accuracy_gate``, issue 12) and the ids of those that miss it."""
    gate = findings.gate(summaries, cfg.accuracy_gate, models=list(models.model_id))
    frame = models.set_index("model_id")[["corpus", "degree", "best", "matched"]].assign(
        **{"test accuracy": pd.Series(gate.scores),
           "passes": ["yes" if m not in gate.failing else "NO — MISSED"
                      for m in models.model_id]})
    bold = frame.assign(**dict.fromkeys(frame.columns, False))
    bold["passes"] = frame["passes"] != "yes"
    caption = (f"Accuracy gate: a finding on maps needs every model it pools at "
               f"{gate.threshold:g} test accuracy or above (MRI lesions, issue 12); the findings "
               f"pool {', '.join(cfg.finding_degrees)}, 1conv only where a finding names it. "
               + ("Every explained model passes." if not gate.failing else
                  f"{len(gate.failing)} explained model(s) MISS it: the findings that use them "
                  "are not testable here."))
    return (Table(frame, caption, name="pretraining-gate", digits=3, bold=bold),
            sorted(gate.failing))


def report_section(run_dir: Path) -> Section:
    """Figures 3, 4, 8, 9, 10 and table 1 of document 000 from the run's result tables."""
    run_dir = Path(run_dir)
    cfg = PretrainingConfig.from_yaml(run_dir / "config.yaml")
    results, summaries = (read_results(run_dir, t) for t in ("results", "summaries"))
    scores = analysis.precision_scores(results[results.study == NAME])
    accuracy = analysis.model_accuracy(summaries[summaries.study == NAME])
    models = analysis.selected_models(scores, accuracy)
    _, correct_for = explain_plan(run_dir, cfg, warn=False)
    n_samples = scores.loc[scores.null_baseline.notna(), "sample_id"].nunique()
    text = (
        f"Document 000 ({cfg.model.arch}, width {cfg.model.width:g}, {cfg.data.size} px): "
        "a VGG-16 in the document, pre-trained within-domain (lesion-free MRI slices) or "
        "out-of-domain (ImageNet, or salbench's natural-image-like corpus), fine-tuned block-wise "
        "(1conv … all, from the output side) on regular-vs-irregular MRI lesions, explained with "
        "eight methods (absolute maps, zero baselines) and scored by top-n precision against the "
        "lesion masks.\n\n"
        f"{len(accuracy)} fine-tuned models; per corpus and degree the "
        f"{cfg.best_k} most accurate ('best') and the {cfg.matched_k} closest to "
        f"{cfg.matched_target:.0%} test accuracy ('matched') were explained on {n_samples} test "
        "images " + ("that every selected model classifies correctly." if correct_for else
                     "(not restricted to correctly classified images: "
                     + ("correct_only is off)." if not cfg.correct_only else
                        "no test image was classified correctly by every selected model).")))
    sources = pretraining_sources(run_dir, cfg)
    if sources:
        text += "\n\nStarting points: " + "; ".join(f"{c}: {s}" for c, s in sources.items()) + "."
    gate, failing = gate_table(models, summaries[summaries.study == NAME], cfg)
    if failing:
        text = (f"ACCURACY GATE MISSED by {len(failing)} explained model(s) ({', '.join(failing)}; "
                f"test accuracy under {cfg.accuracy_gate:g}): the findings that pool them are not "
                "testable here, and their numbers below describe models under the gate.\n\n"
                + text)
    section_figures = []
    for selection, name, number in (("best", "pretraining-fig3", "3"),
                                    ("matched", "pretraining-fig9", "9")):
        grid = gallery_figure(run_dir, models, cfg, selection)
        if grid is not None:
            section_figures.append(Figure(grid, "Maps of methods × fine-tuning degree × corpus, "
                                                f"{selection} models (document 000, fig. "
                                                f"{number}); |map| / max, log display transform "
                                                "(section 2.4); green: lesion contours.",
                                          name=name, embed="png"))
    section_figures += box_figures(scores, models, cfg, "best", "pretraining-fig4")
    per_model = analysis.model_precision(scores, models, "best")
    correlation = analysis.precision_accuracy_correlation(per_model)
    matrix = (correlation.pivot(index="corpus", columns="method", values="r")
              .reindex(index=list(cfg.corpora), columns=[m.key for m in cfg.methods])
              .astype(np.float64))
    section_figures.append(Figure(
        figures.heatmap(matrix, title="Pearson r: explanation vs classification performance",
                        colorbar_label="r"),
        "Pearson correlation between each best model's mean top-n precision and its test "
        "accuracy, per corpus and method (document 000, fig. 8; empty: fewer than 3 models or "
        "no variation).", name="pretraining-fig8"))
    if not per_model.empty:
        section_figures.append(Figure(
            figures.scatter_plot(per_model, "accuracy", "precision", hue="corpus",
                                 correlation=True, ylabel="mean top-n precision",
                                 xlabel="test accuracy"),
            "Mean top-n precision per model and method against test accuracy (the points "
            "behind fig. 8).", name="pretraining-fig8-points"))
    section_figures += box_figures(scores, models, cfg, "matched", "pretraining-fig10")
    tables = [
        Table(matrix, "Pearson r of explanation and classification performance (document 000, "
                      "fig. 8).", name="pretraining-fig8", digits=3),
        Table(analysis.matched_table(models, cfg.corpora, cfg.degrees),
              "Accuracy-matched models: learning rates and test accuracies (document 000, "
              "appendix G, table 1).", name="pretraining-table1", digits=3),
        Table(pd.concat([analysis.precision_by_degree(scores, s).assign(selection=s)
                         for s in analysis.SELECTIONS], ignore_index=True),
              "Mean top-n precision per selection, corpus, degree and method (the boxes of "
              "figs. 4 and 10; n: models × images).", name="pretraining-precision", digits=3),
        Table(analysis.precision_summary(scores), "Top-n precision per corpus (or null "
              "baseline) and method, all explained models pooled.", name="pretraining-summary",
              digits=3),
    ]
    return Section("Pre-training and explanation performance (document 000)", text,
                   figures=section_figures, tables=tables, lead_tables=[gate])
