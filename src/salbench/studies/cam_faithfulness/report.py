"""The cam-faithfulness report section: tables 1, 3–7 and 10 and figures 14–18 of document 003,
read from the run's result tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from salbench.models import preset, read_metadata
from salbench.report import Figure, Section, Table, figures
from salbench.results import read_results
from salbench.results.findings import Gate
from salbench.studies.cam_faithfulness import analysis
from salbench.studies.cam_faithfulness.config import CamFaithfulnessConfig
from salbench.studies.cam_faithfulness.findings import model_gate
from salbench.studies.cam_faithfulness.grid import (
    NAME,
    applied_radius,
    data_spec,
    heatmap_label,
    scaled_region,
    train_settings,
)
from salbench.studies.jobs import checkpoint_path

TEXT = ("VGG-19, ResNet-34 and ResNet-50 are trained with two heads, Conv – Flatten – Class "
        "scores (section 4.2) and Conv – GAP – Class scores (the CAM architecture, section "
        "2.1.1). Table 1 (section 3) is measured: on test images, per head and layer choice, the "
        "distance between the raw Grad-CAM and HiResCAM maps and whether a raw map sums to the "
        "class logit minus its bias (propositions 1–4). Grad-CAM and HiResCAM are then scored "
        "with AOPC at four region sizes (section 4.3), max-sensitivity over the radii of table 6 "
        "(section 4.4) and HAAS (section 4.5); table 10 sums up, and figures 16–18 plot balanced "
        "accuracy against each metric (section 4.6).")


def training_table(run_dir: Path, config: CamFaithfulnessConfig,
                   models: pd.DataFrame) -> pd.DataFrame:
    """Table 3: the training preset as run and each checkpoint's stop reason, per model."""
    labels = analysis.model_labels(models.reset_index())
    rows = []
    for mid, arch in models["arch"].items():
        train = train_settings(config, arch)
        values = preset(train["preset"], arch, **{k: v for k, v in train.items()
                                                  if k != "preset"})
        path = checkpoint_path(run_dir, mid)
        meta = read_metadata(path)["meta"] if path.is_file() else {}
        rows.append({"model": labels[mid],
                     "trainable layers": config.degree or "all (trained from scratch)",
                     "optimizer": values.optimizer, "learning rate": values.lr,
                     "weight decay": values.weight_decay or "none",
                     "scheduler": values.scheduler, "batch size": values.batch_size,
                     "max epochs": values.epochs, "patience": values.patience,
                     "class weights": values.class_weights,
                     "epochs run": meta.get("epochs_run", "?"),
                     "stop reason": meta.get("stop_reason", "?")})
    return pd.DataFrame(rows).set_index("model")


def gate_table(gate: Gate, models: pd.DataFrame, labels: pd.Series) -> Table:
    """Each trained model's test balanced accuracy against the gate; the caption names the
    models that miss it."""
    frame = pd.DataFrame({"balanced accuracy": pd.Series(gate.scores, dtype=float)})
    frame["gate"] = gate.threshold
    frame["passes"] = [m not in gate.failing for m in frame.index]
    frame = frame.rename(index=labels).rename_axis("model")
    if gate.failing:
        caption = (f"ACCURACY GATE MISSED ({gate.describe()}): the AOPC, max-sensitivity and "
                   "HAAS findings that use these models are 'not testable here'; their numbers "
                   "below show what such models produce, not evidence for or against document "
                   "003. Table 1's identities hold for any weights and are scored anyway.")
    else:
        caption = (f"Every trained model passes the accuracy gate ({gate.threshold:g} test "
                   "balanced accuracy): its maps count in the findings.")
    if models.empty:
        caption = "No trained model has test scores: no finding that needs one is testable."
    return Table(frame, caption, name="cam-gate", digits=3,
                 bold=frame.assign(**dict.fromkeys(frame.columns, ~frame.passes)))


def report_section(run_dir: Path) -> Section:
    """Tables 1, 3–7 and 10 and figures 14–18 of document 003, from the run's result tables."""
    run_dir = Path(run_dir)
    config = CamFaithfulnessConfig.from_yaml(run_dir / "config.yaml")
    results, curves, summaries = (frame[frame.study == NAME] for frame in (
        read_results(run_dir, t) for t in ("results", "curves", "summaries")))
    size = data_spec(config).size
    labels = analysis.model_labels(pd.concat([results, summaries]))
    tables, figs = [], []

    t1 = analysis.table_1(results, config.table1.tolerance)
    if not t1.empty:
        tables.append(Table(t1, "Table 1 (measured): median over the test images of the "
                            "relative L1 distance between raw Grad-CAM and HiResCAM maps, and "
                            "of each map's contribution error |Σ map − (s − b)| / (‖map‖₁ + "
                            "|s − b|) for the predicted class; both lie in [0, 1] and count as "
                            f"0 below {config.table1.tolerance:g}. 'last' is the layer whose "
                            "feature maps enter the head (proposition 4's setting).",
                            name="cam-table1", digits=3))

    models = analysis.model_scores(summaries)
    if not models.empty:
        tables.append(Table(training_table(run_dir, config, models),
                            "Table 3: training configurations (training preset and overrides "
                            "as run; stop reason from the checkpoint).", name="cam-table3"))
        tables.append(Table(models.drop(columns=["arch", "head"]).rename(index=labels)
                            .rename_axis("model"),
                            "Table 4: test-set classification scores.", name="cam-table4"))

    aopc = analysis.aopc_means(results)
    if not aopc.empty:
        regions = ", ".join(f"{r} px → {scaled_region(r, size)} px ({heatmap_label(r)})"
                            for r in config.aopc_regions)
        tables.append(Table(analysis.aopc_table(aopc).rename(columns=labels),
                            "Table 5: mean AOPC over the correctly classified test images "
                            f"(uniform noise over {tuple(config.input_range)}, class "
                            f"probability). Region sizes at 224 px scaled to {size} px: "
                            f"{regions}.", name="cam-table5"))
    morf = analysis.morf_curves(curves)
    if not morf.empty:
        heatmap = morf.heatmap.iloc[0]
        figs.append(Figure(figures.line_plot(
            morf.assign(model=morf.model_id.map(labels)), "step", "probability", hue="method",
            panel="model", dashed=[analysis.GRADCAM], xlabel="perturbation step k",
            ylabel="mean class probability", title=f"MoRF curves, {heatmap} heatmaps"),
            f"Figure 14: mean MoRF perturbation curves ({heatmap} heatmaps) of Grad-CAM and "
            "HiResCAM per model.", name="cam-fig14"))

    sens = analysis.sensitivity_means(results)
    if not sens.empty:
        setting = pd.DataFrame(
            [{"radius ([−1, 1] scale)": r, "radius applied": applied_radius(r, config.input_range),
              "iterations": n} for r, n in config.sensitivity])
        tables.append(Table(setting, "Table 6: max-sensitivity configurations; radii are the "
                            f"document's on [−1, 1], applied to inputs in "
                            f"{tuple(config.input_range)}.", name="cam-table6"))
        figs.append(Figure(figures.line_plot(
            sens.assign(model=sens.model_id.map(labels)), "document_radius", "max_sensitivity",
            hue="method", panel="model", dashed=[analysis.GRADCAM],
            xlabel="radius ([−1, 1] scale)", ylabel="mean max-sensitivity",
            title="Max-sensitivity"),
            f"Figure 15: mean max-sensitivity (Frobenius distance of {size}×{size} maps) against "
            "the radius.", name="cam-fig15"))

    haas = analysis.haas_scores(results, summaries)
    if not haas.empty:
        tables.append(Table(haas.assign(model=haas.model_id.map(labels))
                            .set_index(["model", "method"]).drop(columns="model_id")
                            .rename(columns={"acc_x": "Acc(x)", "acc_ha": "Acc(HA)",
                                             "haas": "HAAS"}),
                            "Table 7: HAAS = Acc(HA images) / Acc(images) over the first "
                            f"{config.n_haas} test images; maps of the predicted class, "
                            "accuracy against the true class.", name="cam-table7"))

    text = TEXT
    if not models.empty:
        summary = analysis.summary_table(models, aopc, sens, haas)
        tables.append(Table(summary.drop(columns="head").rename(index=labels)
                            .rename_axis("model"),
                            "Table 10: summary of test and evaluation metrics (mean AOPC over "
                            "heatmap sizes, mean max-sensitivity over radii).",
                            name="cam-table10"))
        counts = analysis.count_text(analysis.conclusion_counts(summary))
        if counts:
            text += "\n\n" + counts
        figs += accuracy_figures(models, aopc, sens, haas, labels)
    gate = model_gate({"summaries": summaries}, config)
    if gate.failing:
        text = (f"ACCURACY GATE MISSED: {gate.describe()} (balanced accuracy on the test set). "
                "Findings that need these models are not testable here.\n\n" + text)
    return Section("Grad-CAM vs HiResCAM (document 003)", text, figures=figs, tables=tables,
                   lead_tables=[gate_table(gate, models, labels)])


def accuracy_figures(models: pd.DataFrame, aopc: pd.DataFrame, sens: pd.DataFrame,
                     haas: pd.DataFrame, labels: pd.Series) -> list[Figure]:
    """Figures 16–18: balanced accuracy against HiResCAM's AOPC (one point per heatmap size),
    max-sensitivity (one per radius) and HAAS, coloured by model."""
    out = []
    for number, frame, column, name, what in (
            (16, aopc, "aopc", "AOPC", "one point per heatmap size"),
            (17, sens, "max_sensitivity", "max-sensitivity", "one point per radius"),
            (18, haas, "haas", "HAAS", "one point per model")):
        if frame.empty:
            continue
        points = analysis.against_accuracy(models, frame, column)
        points = points.assign(model=points.model_id.map(labels)).dropna(subset=[column])
        if points.empty:
            continue
        out.append(Figure(figures.scatter_plot(points, "balanced accuracy", column, hue="model",
                                               ylabel=name,
                                               title=f"Balanced accuracy vs {name} (HiResCAM)"),
                          f"Figure {number}: balanced accuracy against HiResCAM's {name}, "
                          f"{what}.", name=f"cam-fig{number}"))
    return out
