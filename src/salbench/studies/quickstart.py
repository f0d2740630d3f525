"""The quickstart demo: both ground-truth datasets, two small models, every method, every metric.

``salbench quickstart`` runs it at the ``tiny`` preset (minutes on a laptop CPU). It is a smoke
test of the whole pipeline with real numbers, not a study of a document: the leaderboard it
writes compares every registered attribution method on MRI lesions (binary masks) and synthetic
cells (five-band ground truth), each explained on a small ResNet-18 trained here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import Field, field_validator

from salbench.config import Config
from salbench.explain.registry import get_method
from salbench.report import Figure, Section, Table, figures
from salbench.results import read_results
from salbench.runtime import Job
from salbench.studies.base import Stage, Study, register
from salbench.studies.common import DataSpec, MethodSpec, MetricSpec, ModelSpec

NAME = "quickstart"
FN = "salbench.studies.common:{}"

# Every registered method except GAD (it needs fitted support models: see the gad study) and the
# generic ``lrp_composite`` (it needs a composite spec; the named composites are here). CAM needs
# global average pooling before one linear layer, which the ResNets have. Parameters keep the
# costly methods cheap at this scale: 16 integration steps, 8 noisy copies, 8x8 occlusion.
def _methods(size: int, steps: int) -> list[dict]:
    names = ["saliency", "input_x_gradient", "gradient_shap", "deeplift", "deeplift_shap",
             "guided_backprop", "deconvolution", "guided_gradcam", "gradcam", "hirescam", "cam",
             "lrp_0", "lrp_epsilon", "lrp_gamma", "lrp_zplus", "lrp_flat", "lrp_alpha_beta",
             "lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box", "lrp_tutorial",
             "lrp_decreasing_gamma", "random", "sobel", "laplace", "random_model"]
    return [{"name": name} for name in names] + [
        {"name": "integrated_gradients", "params": {"n_steps": steps}},
        {"name": "smoothgrad", "params": {"nt_samples": steps // 2}},
        {"name": "occlusion", "params": {"window": size // 8, "stride": size // 8}},
    ]


# The model-parameter randomisation test explains once per layer: run it for a few methods.
SANITY_METHODS = ("saliency", "integrated_gradients", "guided_backprop", "lrp_epsilon",
                  "gradcam")


class Part(Config):
    """One dataset, the model trained on it and what is computed on its test samples."""

    data: DataSpec
    model: ModelSpec
    train: dict = Field(default_factory=dict)
    methods: list[MethodSpec]
    metrics: list[MetricSpec]
    sanity_methods: list[str] = Field(default_factory=lambda: list(SANITY_METHODS))

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[MethodSpec]) -> list[MethodSpec]:
        for method in methods:
            get_method(method.name)  # ValueError naming the registered methods
        return methods


class QuickstartConfig(Config):
    seed: int = Field(0, ge=0)
    n_samples: int = Field(8, ge=1, description="test samples explained per dataset")
    gallery: int = Field(2, ge=0, description="samples per model shown in the report gallery")
    parts: dict[str, Part]


def _model_metrics(size: int, sensitivity_samples: int) -> list[dict]:
    return [
        {"name": "region_perturbation", "label": "pixel_flipping_morf_auc",
         "params": {"patch": max(1, size // 16), "order": "morf", "fill": "gray",
                    "steps": "linear:8"}},
        {"name": "aopc", "params": {"region": size // 4, "low": 0.0, "high": 1.0}},
        {"name": "max_sensitivity", "params": {"radius": 0.05,
                                               "n_samples": sensitivity_samples}},
        {"name": "haas", "params": {"input_range": [0.0, 1.0]}},
    ]


def _parts(mri_size: int, cells_size: int, n_mri: int, n_cells: int, width: float,
           epochs: tuple[int, int], steps: int, sensitivity_samples: int) -> dict:
    mri_metrics = [{"name": name} for name in (
        "top_k_precision", "relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game",
        "auroc", "average_precision")]
    mri_metrics += [{"name": "iou", "params": {"threshold": 0.5}},
                    {"name": "top_k_intersection", "params": {"k": mri_size ** 2 // 100}}]
    cell_metrics = [{"name": "soft_five_band", "label": "five_band",
                     "params": {"schedule": "standard"}},
                    {"name": "soft_five_band", "label": "five_band_clamped",
                     "params": {"schedule": "clamped"}}]
    # Adam on ResNet-18 (batch norm) learns both tasks at small width; the documents' own regimes
    # are in the studies. Lesion shapes need >= 128 px, and the MRI model starts learning only
    # after 5-14 epochs depending on the seed (test accuracy 0.68-0.97 over four seeds at 15
    # epochs), so it keeps the weights of its best validation epoch (patience = all epochs).
    train = {"preset": "cells-continuous", "batch_size": 32,
             "augment": {"hflip": True, "vflip": True}}
    return {
        "mri": {"data": {"kind": "mri_lesions", "n": n_mri, "size": mri_size},
                "model": {"arch": "resnet18", "width": width},
                "train": {**train, "lr": 1e-3, "epochs": epochs[0],
                          "early_stopping": "loss_recall", "patience": epochs[0]},
                "methods": _methods(mri_size, steps),
                "metrics": mri_metrics + _model_metrics(mri_size, sensitivity_samples)},
        "cells": {"data": {"kind": "cells", "n": n_cells, "size": cells_size,
                           "params": {"shard_size": n_cells // 6}},
                  "model": {"arch": "resnet18", "width": width},
                  "train": {**train, "lr": 3e-3, "epochs": epochs[1]},
                  "methods": _methods(cells_size, steps),
                  "metrics": cell_metrics + _model_metrics(cells_size, sensitivity_samples)},
    }


PRESETS = {
    "tiny": {"n_samples": 8, "parts": _parts(128, 64, 800, 600, 0.25, (20, 10), 16, 4)},
    "small": {"n_samples": 64, "parts": _parts(224, 128, 4000, 4800, 0.5, (20, 15), 32, 10)},
    "paper": {"n_samples": 256, "parts": _parts(270, 224, 16000, 9600, 1.0, (30, 20), 50, 20)},
}


def stages(config: QuickstartConfig) -> list[Stage]:
    data, train, explain = [], [], []
    for name, part in config.parts.items():
        spec = part.data.model_copy(update={"seed": config.seed})
        data.append(Job(FN.format("data_job"), {"data": spec.model_dump(), "seed": config.seed},
                        study=NAME, label=f"data {name}"))
        model_id = f"{name}-{part.model.arch}"
        base = {"study": NAME, "data": spec.model_dump(), "seed": config.seed}
        train.append(Job(FN.format("train_job"),
                         {**base, "model_id": model_id, "model": part.model.model_dump(),
                          "train": part.train}, study=NAME, label=f"train {model_id}"))
        metrics = [m.model_dump() for m in part.metrics]
        sanity = [{"name": "model_randomisation", "params": {"similarities": ["spearman"]}}]
        for method in part.methods:
            explain.append(Job(FN.format("explain_job"), {
                **base, "model_id": model_id, "methods": [method.model_dump()],
                "metrics": metrics + (sanity if method.name in part.sanity_methods else []),
                "n_samples": config.n_samples, "target": "predicted", "gallery": config.gallery},
                study=NAME, label=f"{model_id} {method.name}"))
    return [Stage("data", data), Stage("train", train), Stage("explain and score", explain)]


def report_section(run_dir: Path) -> Section:
    """Model scores; per dataset each method's mean on every metric and the sanity check."""
    results = read_results(run_dir)
    results = results[results.study == NAME]
    models = results[(results.method == "model") & (results.sample_id == "all")]
    accuracy = models.pivot_table(index="model_id", columns="metric", values="value")
    scored = results[(results.method != "model") & ~results.sample_id.str.startswith("point:")]
    subsections = []
    for dataset, rows in scored.groupby("dataset"):
        means = method_means(rows)
        fig = figures.heatmap(means.rank(pct=True), vmin=0.0, title=f"{dataset}: percentile "
                              "rank of each method's mean score (per metric; 1 = highest)")
        randomisation = randomisation_curves(rows)
        subsections.append(Section(
            f"Quickstart: {dataset}",
            "Mean over the explained test samples (the predicted class is explained); HAAS is "
            "Acc(HA)/Acc(x) over those samples. The sanity check re-explains after randomising "
            "the layers from the output side (cascading); a method that depends on the model "
            "drops towards 0 rank correlation.",
            figures=[Figure(fig, f"{dataset}: method ranks per metric", name=f"qs-{dataset}"),
                     Figure(figures.line_plot(randomisation, "layers randomised", "spearman",
                                              hue="method", title=f"{dataset}: cascading "
                                              "randomisation"),
                            f"{dataset}: Spearman correlation with the original map",
                            name=f"qs-{dataset}-randomisation")],
            tables=[Table(means, f"{dataset}: mean score per method and metric",
                          name=f"quickstart-{dataset}")]))
    return Section("Quickstart", __doc__.split("\n\n")[1].replace("\n", " "),
                   tables=[Table(accuracy, "Test-set classification scores of the models",
                                 name="quickstart-models")],
                   subsections=subsections)


def method_means(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean per method and metric, HAAS as a ratio, without the per-layer randomisation scores."""
    plain = rows[~rows.metric.str.startswith(("model_randomisation/", "haas/"))]
    means = plain.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
    haas = rows[rows.metric.str.startswith("haas/")].pivot_table(
        index="method", columns="metric", values="value", aggfunc="mean")
    if not haas.empty:
        means["haas"] = haas["haas/correct_ha"] / haas["haas/correct_x"]
    return means


def randomisation_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean Spearman correlation per method after randomising the first k layers."""
    sanity = rows[rows.metric.str.startswith("model_randomisation/spearman/")].copy()
    sanity["layers randomised"] = sanity.metric.str.split("/").str[2].str[:2].astype(int) + 1
    return (sanity.groupby(["method", "layers randomised"], as_index=False)["value"].mean()
            .rename(columns={"value": "spearman"}))


STUDY = register(Study(NAME, "end-to-end demo: both datasets, every method, every metric",
                       QuickstartConfig, PRESETS, stages, report_section))
