"""The cells study's report section: table 1, figures 3 A–C, 4, 5–6, the per-sample table and
appendix fig. 1, read from the run's result tables and drawn with ``salbench.report.figures``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from salbench.data.cells import CLASSES
from salbench.metrics import STANDARD
from salbench.models.training import preset
from salbench.report import Figure, Section, Table, figures, load_gallery_item
from salbench.report.gallery import gallery_files
from salbench.results import query, read_results
from salbench.studies.cells import analysis, findings
from salbench.studies.cells.config import CONTINUOUS, REGULAR, CellsConfig
from salbench.studies.cells.grid import NAME, branch_id

ARCH_LABELS = {"resnet34": "ResNet-34", "resnet18": "ResNet-18", "alexnet": "AlexNet",
               "vgg16": "VGG-16", "vgg16_bn": "VGG-16-BN"}
TEXT = ("The ten-class cell data (section 3.1) trains AlexNet, VGG-16 and ResNet-34 first in "
        "continuous mode (the base model), then once per branch in regular-evaluation mode from "
        "that base (section 3.2, table 1). Each branch explains the evaluation samples with "
        "saliency, input×gradient, DeepLIFT, guided backprop, guided Grad-CAM, deconvolution, "
        "gradient SHAP and DeepLIFT SHAP on the predicted class (section 3.3), scored with the "
        "soft five-band scores, standard and clamped (sections 3.3, 4.1). AlexNet with k added "
        "conv layers is trained and scored the same way when configured (section 4.1)."
        "\n\n"
        "Figure 3 points are means over the evaluation samples of one branch, bars the standard "
        "deviation over samples; (A) average and (B) best over the soft thresholds, (C) best "
        "after clamping. Figure 4 plots, per threshold t_m, the mean FPR and mean recall over "
        "the samples, one line per method and branch.")
PER_SAMPLE_SHOWN = 200
PER_SAMPLE_FILE = "cells-per-sample-full.csv"  # section 3.3: "saved sample by sample into a csv"


def read_scores(run_dir: Path) -> pd.DataFrame:
    """The study's ``results`` rows with the explained sample's ``true`` and ``predicted`` class
    (from the rows' ``meta``)."""
    return query(run_dir, "select *, cast(meta->>'$.true' as integer) as \"true\", "
                          "cast(meta->>'$.predicted' as integer) as predicted from results "
                          f"where study = '{NAME}' order by model_id, method, metric, output, "
                          "sample_id")


def read_roc(run_dir: Path, model_ids: list[str]) -> pd.DataFrame:
    """Figure 4's points, one model at a time (a model's curves are n_samples × methods ×
    thresholds rows)."""
    parts = [analysis.roc_points(query(
        run_dir, f"select * from curves where study = '{NAME}' and model_id = '{model_id}' "
                 "and curve in ('fpr', 'recall')")) for model_id in model_ids]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def table1_settings(config: CellsConfig, labels: dict[str, str]) -> pd.DataFrame:
    """Table 1's training settings per architecture, from the presets and the config."""
    rows = []
    for name, model in config.models.items():
        tc = preset(CONTINUOUS, model.arch, **model.continuous)
        tr = preset(REGULAR, model.arch, **model.regular)
        rows.append({"architecture": name, "model": labels[name], "H=W": model.size,
                     "n_batch": tc.batch_size, "TC n_ep": tc.epochs, "TR n_ep": tr.epochs,
                     "TR n_l": tr.early_stop_limit, "TR r_f": tr.refresh_fraction})
    return pd.DataFrame(rows)


def _labelled(frame: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """``frame`` in the config's architecture order, architectures shown by their labels."""
    order = {name: i for i, name in enumerate(labels)}
    frame = frame.sort_values("architecture", key=lambda s: s.map(order), kind="stable")
    return frame.assign(architecture=frame.architecture.map(labels))


def channel_figures(run_dir: Path, config: CellsConfig, labels: dict[str, str]) -> list[Figure]:
    """Figures 5–6: for each architecture's branch 0, a correctly predicted stored sample (the
    first stored one if none is correct); rows are methods, columns the map's channels, their
    sum h and the five-band stratification S⁵ at the first and last standard thresholds."""
    items = [load_gallery_item(p) for p in gallery_files(run_dir).get(NAME, [])]
    out = []
    for name in config.models:
        mine = [i for i in items if i.model_id == branch_id(name, 0)]
        if not mine:
            continue
        item = next((i for i in mine if i.meta.get("correct")), mine[0])
        methods = list(item.maps)
        rows = [analysis.channel_panels(item.maps[m]) for m in methods]
        channels = ["R", "G", "B"][:item.maps[methods[0]].shape[0]]
        grid = figures.map_grid(rows, row_labels=methods,
                                col_labels=[*channels, "h = Σc", "S⁵ t₀", "S⁵ t₅₅"],
                                images=[item.image] * len(rows),
                                masks=[item.mask] * len(rows), panel=1.1)
        t0 = (STANDARD.t1[0], STANDARD.t2[0])
        t55 = (STANDARD.t1[-1], STANDARD.t2[-1])
        out.append(Figure(grid, f"Figures 5–6, {labels[name]} ({item.model_id}), sample "
                          f"{item.sample_id}: true {CLASSES[item.meta['true']]}, predicted "
                          f"{CLASSES[item.meta['predicted']]}. Columns: the map's channels, "
                          "their sum (divided by max|h|), and its five-band stratification at "
                          f"t₀ = [−{t0[1]:g}, −{t0[0]:g}, {t0[0]:g}, {t0[1]:g}] and t₅₅ = "
                          f"[−{t55[1]:g}, −{t55[0]:g}, {t55[0]:g}, {t55[1]:g}] (bands/2; ±1 = "
                          "discriminative, ±0.5 = localisation).",
                          name=f"cells-channels-{name}", embed="png"))
    return out


def gate_table(summaries: pd.DataFrame, config: CellsConfig, labels: dict[str, str]
               ) -> tuple[Table, list[str]]:
    """The accuracy gate of every table-1 branch (test accuracy against ``accuracy_gate``) and
    the ids of the branches that miss it."""
    gate = findings.accuracy_gate(summaries, config, list(config.models))
    names = {branch_id(name, b): name for name in config.models
             for b in range(config.branches)}
    frame = pd.DataFrame({"architecture": [labels[names[m]] for m in gate.scores],
                          "test accuracy": list(gate.scores.values()),
                          "gate": [f"≥ {gate.threshold:g}"] * len(gate.scores),
                          "passes": ["yes" if m not in gate.failing else "NO — MISSED"
                                     for m in gate.scores]},
                         index=pd.Index(list(gate.scores), name="model"))
    bold = frame.assign(**dict.fromkeys(frame.columns, False))
    bold["passes"] = frame["passes"] != "yes"
    caption = (f"Accuracy gate: every branch behind a finding must reach {gate.threshold:g} test "
               "accuracy (10 classes); a finding that uses a branch under it is not testable "
               "here. " + ("All branches pass." if not gate.failing else
                           f"{len(gate.failing)} branch(es) MISS it: their maps are shown below "
                           "but support no finding."))
    return Table(frame, caption, name="cells-gate", digits=3, bold=bold), sorted(gate.failing)


def report_section(run_dir: Path) -> Section:
    """The cells section: table 1, figures 3 A–C, 4, 5–6, the per-sample table, appendix fig. 1."""
    run_dir = Path(run_dir)
    config = CellsConfig.from_yaml(run_dir / "config.yaml")
    labels = {name: ARCH_LABELS[m.arch] for name, m in config.models.items()}
    summaries = read_results(run_dir, "summaries")
    summaries = summaries[summaries.study == NAME]
    table, failing = gate_table(summaries, config, labels)
    warning = (f"ACCURACY GATE MISSED by {', '.join(failing)} (test accuracy under "
               f"{config.accuracy_gate:g}): the findings that use them are not testable here, "
               "and their numbers below describe models that did not learn the task.\n\n"
               if failing else "")
    section = Section("Synthetic cells (document 001)", warning + TEXT, lead_tables=[table])
    if not summaries.empty:
        table1 = analysis.training_table(table1_settings(config, labels),
                                         analysis.branch_accuracy(summaries))
        section.tables.append(Table(table1.drop(columns="architecture").set_index("model"),
                                    "Table 1: training settings and the test accuracy of the "
                                    "base model and the branches (<Acc.> mean, sd over "
                                    "branches).", name="cells-table1"))
    results = read_scores(run_dir)
    if results.empty:
        return section
    for panel, schedule, stat, label in (("A", "standard", "avg", "avg"),
                                         ("B", "standard", "best", "best"),
                                         ("C", "clamped", "best", "best, clamped")):
        points = analysis.pr_points(results, schedule, stat)
        if points.empty:
            continue
        shown = _labelled(points, labels)
        section.figures.append(Figure(
            figures.scatter_plot(shown, "R", "P", hue="method", panel="architecture",
                                 xerr="R_sd", yerr="P_sd", xlabel=f"R_{stat}",
                                 ylabel=f"P_{stat}"),
            f"Figure 3{panel}: P_{label} against R_{label}, one point per method and branch.",
            name=f"cells-fig3{panel}", embed="svg"))
        if panel == "B":
            means = analysis.branch_means(shown)
            section.tables.append(Table(
                means.pivot(index="method", columns="architecture", values=["R", "P"]),
                "Mean over branches of R_best and P_best per method (figure 3B).",
                name="cells-pr-best"))
    roc = read_roc(run_dir, sorted(set(results.model_id[results.added_conv_layers == 0])))
    if not roc.empty:
        section.figures.append(Figure(
            figures.line_plot(_labelled(roc, labels), "FPR", "R", hue="method",
                              panel="architecture", group="model_id", diagonal=True,
                              xlabel="mean FPR", ylabel="mean recall"),
            "Figure 4: ROC, mean FPR against mean recall per soft threshold (standard "
            "schedule), one line per method and branch.", name="cells-fig4", embed="svg"))
    section.figures += channel_figures(run_dir, config, labels)
    table = analysis.per_sample_table(results, config.shard_size, CLASSES)
    # Beside report/tables/, which the HTML writer rebuilds from the shown tables.
    (run_dir / "report").mkdir(parents=True, exist_ok=True)
    table.to_csv(run_dir / "report" / PER_SAMPLE_FILE, index=False)
    section.tables.append(Table(table.head(PER_SAMPLE_SHOWN), f"Per-sample scores ({len(table)} "
                                f"rows; first {PER_SAMPLE_SHOWN} shown, all in report/"
                                f"{PER_SAMPLE_FILE}).", name="cells-per-sample"))
    per_class = analysis.per_class_points(results)
    if not per_class.empty:
        means = analysis.class_means(per_class)
        both = pd.concat([per_class.assign(points="per predicted class"),
                          means.assign(points="mean over classes")], ignore_index=True)
        section.figures.append(Figure(
            figures.scatter_plot(both, "R_avg", "P_avg", hue="added_conv_layers",
                                 panel="points", xlabel="R_avg", ylabel="P_avg"),
            "Appendix fig. 1: AlexNet with k added conv layers (colour: k); left, the means per "
            "predicted class; right, their mean over classes.", name="cells-alexnet-added",
            embed="svg"))
        section.tables.append(Table(means.set_index("added_conv_layers"),
                                    "AlexNet + k conv layers: mean over predicted classes of "
                                    "R_avg and P_avg.", name="cells-alexnet-added"))
    return section
