"""The quickstart's config and presets: both ground-truth datasets, one small ResNet-18 each, every
method, every metric."""

from __future__ import annotations

from pydantic import Field

from salbench.config import Config
from salbench.models import ModelSpec
from salbench.studies.specs import DataSpec, MethodSpec, MetricSpec

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


class QuickstartConfig(Config):
    seed: int = Field(0, ge=0)
    n_samples: int = Field(8, ge=1, description="test samples explained per dataset")
    gallery: int = Field(2, ge=0, description="samples per model shown in the report gallery")
    parts: dict[str, Part]


def _methods(size: int, steps: int) -> list[dict]:
    """The documents' methods: every registered method except GAD (it needs fitted support
    models: see the gad study), the generic ``lrp_composite`` (it needs a composite spec; the
    named composites are here) and the other tools' additions (CAM variants and perturbation
    methods, a forward pass per channel or per sampled subset: ``salbench benchmark --preset
    full`` runs them). CAM
    needs global average pooling before one linear layer, which the ResNets have. Parameters keep
    the costly methods cheap at this scale: ``steps`` integration steps, steps/2 noisy copies,
    occlusion windows of an eighth of the image."""
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


def _model_metrics(size: int, sensitivity_samples: int) -> list[dict]:
    return [
        {"name": "region_perturbation", "params": {"patch": max(1, size // 16), "order": "morf",
                                                   "fill": "gray", "steps": "linear:8"}},
        {"name": "aopc", "params": {"region": size // 4, "input_range": [0.0, 1.0]}},
        {"name": "max_sensitivity", "params": {"radius": 0.05,
                                               "n_samples": sensitivity_samples}},
        {"name": "haas", "params": {"input_range": [0.0, 1.0]}},
        {"name": "model_randomisation", "params": {"similarities": ["spearman"]},
         "methods": list(SANITY_METHODS)},
    ]


def _parts(mri_size: int, cells_size: int, n_mri: int, n_cells: int, width: float,
           epochs: tuple[int, int], steps: int, sensitivity_samples: int) -> dict:
    mri_metrics = [{"name": name} for name in (
        "top_k_precision", "relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game",
        "auroc", "average_precision")]
    mri_metrics += [{"name": "iou", "params": {"threshold": 0.5}},
                    {"name": "top_k_intersection", "params": {"k": mri_size ** 2 // 100}}]
    cell_metrics = [{"name": "soft_five_band", "params": {"schedule": "standard"}},
                    {"name": "soft_five_band", "params": {"schedule": "clamped"}}]
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
