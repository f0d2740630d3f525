"""Metrics: pure, batched functions that score attribution maps, one score per sample.

Ground-truth metrics are ``metric(a, m, **params) -> Tensor[B]``; model-based metrics are
``metric(model, x, y, a, **params)`` returning a NamedTuple with ``scores`` ``[B]`` (plus curves
where the metric has them). Metrics that need explanations take an ``explain_fn(model, x, y)``.
Channel reduction (``reduce=``) and normalisation are explicit parameters.
"""

from salbench.metrics._checks import reduce_channels
from salbench.metrics.fiveband import (
    CLAMPED,
    STANDARD,
    FiveBandSchedule,
    SoftFiveBand,
    channel_adjust,
    five_band_counts,
    five_band_score,
    soft_five_band,
    stratify,
    stratify_ground_truth,
)
from salbench.metrics.groundtruth import (
    GROUND_TRUTH_METRICS,
    auroc,
    average_precision,
    ground_truth_metric,
    iou,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
    top_k_precision,
)
from salbench.metrics.haas import HaasResult, haas, heatmap_assisted_images
from salbench.metrics.perturbation import (
    AOPC_REGION_SIZES,
    BlurFill,
    ConstantFill,
    FastInpaintFill,
    MeanFill,
    PerturbationCurves,
    TeleaFill,
    UniformFill,
    aopc,
    fast_inpaint,
    pixel_flipping,
    region_perturbation,
    step_counts,
)
from salbench.metrics.regions import (
    complexity_ratio,
    hull_mask,
    important_pixels,
    occlusion_sensitivity,
    supplementary_mask,
)
from salbench.metrics.robustness import TABLE_6, Sensitivity, avg_sensitivity, max_sensitivity
from salbench.metrics.sanity import Randomisation, model_randomisation, spearman, ssim

__all__ = [
    "AOPC_REGION_SIZES", "CLAMPED", "GROUND_TRUTH_METRICS", "STANDARD", "TABLE_6",
    "BlurFill", "ConstantFill", "FastInpaintFill", "FiveBandSchedule", "HaasResult", "MeanFill",
    "PerturbationCurves", "Randomisation", "Sensitivity", "SoftFiveBand", "TeleaFill",
    "UniformFill", "aopc", "auroc", "average_precision", "avg_sensitivity", "channel_adjust",
    "complexity_ratio", "fast_inpaint", "five_band_counts", "five_band_score",
    "ground_truth_metric", "haas", "heatmap_assisted_images", "hull_mask", "important_pixels",
    "iou", "max_sensitivity", "model_randomisation", "occlusion_sensitivity", "pixel_flipping",
    "pointing_game", "reduce_channels", "region_perturbation", "relevance_mass_accuracy",
    "relevance_rank_accuracy", "soft_five_band", "spearman", "ssim", "step_counts", "stratify",
    "stratify_ground_truth", "supplementary_mask", "top_k_intersection", "top_k_precision",
]
