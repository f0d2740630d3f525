"""Attribution methods behind one call: ``explain(model, x, y, method, **params)``.

``available()`` lists every method with its backend and default parameters. Captum backs the
gradient family, Zennit the LRP rules and composites; the CAM family and its variants, the null
baselines and GAD are salbench's own code. See ``docs/methods.md``.
"""

from salbench.explain import baselines, gradients, perturbation_methods  # noqa: F401 - registers methods
from salbench.explain.cam import cam_layers, cam_maps
from salbench.explain.cam_variants import cam_variant_maps  # importing registers the variants
from salbench.explain.checks import NonFiniteAttributionError, preserved_model
from salbench.explain.gad import GADSupport, fit_gad, support_config
from salbench.explain.lrp import (
    CanonizationError,
    CompositeSpec,
    RuleRange,
    decreasing_gamma_ranges,
    relevance_by_layer,
    tutorial_ranges,
)
from salbench.explain.lrp_fast import FastLRPFallback, lrp_grid_maps
from salbench.explain.postprocess import (
    absolute,
    clamp,
    log_display,
    normalise_max_abs,
    normalise_min_max,
    reduce_channels,
)
from salbench.explain.registry import Method, available, explain, get_method

__all__ = [
    "CanonizationError", "CompositeSpec", "GADSupport", "Method", "NonFiniteAttributionError",
    "RuleRange", "absolute", "available", "cam_layers", "cam_maps", "cam_variant_maps", "clamp",
    "decreasing_gamma_ranges", "explain", "fit_gad",
    "get_method", "log_display", "normalise_max_abs", "normalise_min_max", "preserved_model",
    "reduce_channels", "relevance_by_layer", "support_config", "tutorial_ranges",
    "FastLRPFallback", "lrp_grid_maps",
]
