"""Metrics: pure, batched functions that score attribution maps, and the registry over them.

Each metric is a plain function (ground-truth metrics ``metric(a, m, **params) -> Tensor[B]``,
model-based ones ``metric(model, x, y, a, **params)``, those that need explanations take an
``explain_fn(model, x, y)``), and each is registered with its kind, parameters, outputs (direction
and range), cost and source: :func:`available` lists them, :func:`score` runs any of them and
returns one :class:`MetricResult`. Channel reduction (``reduce=``) and normalisation are explicit
parameters. See ``docs/metrics.md``.
"""

from salbench.metrics import (  # noqa: F401 - importing a module registers its metrics
    cam_identities,
    classification,
    complexity,
    conservation,
    infidelity,
    regions,
    relevance,
    removal,
    road,
)
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
    auroc,
    average_precision,
    iou,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
    top_k_precision,
)
from salbench.metrics.haas import HaasResult, haas, heatmap_assisted_images
from salbench.metrics.perturbation import (
    AOPC_NOISE,
    AOPC_REGION_SIZES,
    BlurFill,
    ConstantFill,
    FastInpaintFill,
    MeanFill,
    PerturbationCurves,
    TeleaFill,
    UniformFill,
    aopc,
    deletion,
    fast_inpaint,
    insertion,
    pixel_flipping,
    region_perturbation,
    step_counts,
)
from salbench.metrics.regions import (
    complexity_ratio,
    hull_mask,
    hull_sensitivity,
    important_pixels,
    occlusion_sensitivity,
    supplementary_mask,
    supplementary_sensitivity,
)
from salbench.metrics.registry import (
    KINDS,
    Cost,
    Curve,
    Metric,
    MetricResult,
    Output,
    available,
    get_metric,
    label,
    score,
)
from salbench.metrics.robustness import TABLE_6, Sensitivity, avg_sensitivity, max_sensitivity
from salbench.metrics.sanity import (
    Randomisation,
    RandomLogit,
    model_randomisation,
    random_logit,
    spearman,
    ssim,
)

__all__ = [
    "AOPC_NOISE", "AOPC_REGION_SIZES", "CLAMPED", "KINDS", "STANDARD", "TABLE_6",
    "BlurFill", "ConstantFill", "Cost", "Curve", "FastInpaintFill", "FiveBandSchedule",
    "HaasResult", "MeanFill", "Metric", "MetricResult", "Output", "PerturbationCurves",
    "RandomLogit", "Randomisation", "Sensitivity", "SoftFiveBand", "TeleaFill", "UniformFill",
    "aopc", "auroc", "deletion", "insertion",
    "available", "average_precision", "avg_sensitivity", "channel_adjust", "complexity_ratio",
    "fast_inpaint", "five_band_counts", "five_band_score", "get_metric", "haas",
    "heatmap_assisted_images", "hull_mask", "hull_sensitivity", "important_pixels", "iou",
    "label", "max_sensitivity", "model_randomisation", "occlusion_sensitivity", "pixel_flipping",
    "pointing_game", "random_logit", "reduce_channels", "region_perturbation",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy", "score", "soft_five_band", "spearman", "ssim", "step_counts",
    "stratify", "stratify_ground_truth", "supplementary_mask", "supplementary_sensitivity",
    "top_k_intersection", "top_k_precision",
]
