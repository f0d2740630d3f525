"""What the benchmark runs on a user's model and data, and what it costs.

:func:`plan` settles, before any long work: every registered method that applies (each is tried
on two images; one that cannot run on this model — a CAM on a model without global average
pooling, a hook-based method on a TorchScript model — is skipped with its one-line reason), every
metric that applies (ground-truth metrics only where masks exist, the five-band scores only for
0 / 0.4 / 0.9 ground truth, the randomisation test only where the model's layers can be
re-initialised), and the cost: the model passes each metric makes per sample (from the metric
registry) and the explanations, timed on the probe images, into an estimated wall time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from salbench.data import GroundTruthDataset
from salbench.explain import available as available_methods
from salbench.explain import explain, get_method
from salbench.metrics import get_metric
from salbench.metrics.sanity import randomisable_layers
from salbench.studies.specs import MethodSpec, MetricSpec

NOT_GENERIC = {"gad": "needs support models fitted for one class pair (the gad study)",
               "lrp_composite": "needs a composite spec (the lrp-grid study; the named LRP "
                                "composites run)"}
NULL_BASELINES = ("random", "sobel", "laplace", "random_model")
FAST_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad",
                "guided_backprop", "deeplift", "gradcam", "lrp_epsilon_plus_flat",
                "lrp_epsilon_gamma_box", "occlusion", "random", "sobel")
"""The ``fast`` preset's methods: one or two of each family (gradients, path and noise averages,
backpropagation rules, CAM, LRP composites, perturbation) and two null baselines; ``full``
runs every registered method that applies."""
FIVE_BAND_LEVELS = (0.0, 0.4, 0.9)


@dataclass
class Plan:
    """The methods and metrics that run, those skipped (name -> reason), and the estimated
    cost: ``passes`` (model forward passes) and ``seconds`` per (method, metric)."""

    methods: list[MethodSpec]
    metrics: list[MetricSpec]
    skipped_methods: dict[str, str] = field(default_factory=dict)
    skipped_metrics: dict[str, str] = field(default_factory=dict)
    cost: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_samples: int = 0

    @property
    def seconds(self) -> float:
        return float(self.cost["seconds"].sum()) if len(self.cost) else 0.0

    def describe(self) -> list[str]:
        """The plan in lines a user reads before the run starts."""
        lines = [f"{len(self.methods)} methods × {len(self.metrics)} metrics on "
                 f"{self.n_samples} images; estimated "
                 f"{self.cost['passes'].sum():,.0f} model passes, "
                 f"{format_seconds(self.seconds)} on this machine"]
        for k, metric in enumerate(self.metrics):
            part = self.cost[self.cost.entry == k]
            steps = _steps(metric, part)
            label = metric.name + "".join(f" {key}={value}" for key, value in
                                          metric.row_factors().items() if key in ("order",))
            lines.append(f"  {label}{steps}: {part['passes'].sum():,.0f} passes, "
                         f"{format_seconds(float(part['seconds'].sum()))}")
        lines += [f"  skipped method {n}: {r}" for n, r in self.skipped_methods.items()]
        lines += [f"  skipped metric {n}: {r}" for n, r in self.skipped_metrics.items()]
        return lines


def _steps(metric: MetricSpec, part: pd.DataFrame) -> str:
    if metric.name in ("pixel_flipping", "region_perturbation", "aopc") and len(part):
        return f" ({int(part['forward_per_sample'].iloc[0]) - 1} steps)"
    return ""


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def method_specs(preset: str, size: int) -> list[MethodSpec]:
    """The preset's methods (``fast``: :data:`FAST_METHODS`; ``full``: every registered method a
    generic model can take), with the preset's costly parameters."""
    fast = preset == "fast"
    params = {
        "integrated_gradients": {"n_steps": 16 if fast else 50},
        "smoothgrad": {"nt_samples": 8 if fast else 50},
        "gradient_shap": {"n_samples": 5 if fast else 20},
        "occlusion": {"window": max(2, size // 8), "stride": max(2, size // 8)} if fast
        else {"window": max(2, size // 16), "stride": max(1, size // 32)},
    }
    return [MethodSpec(name=m.name, params=params.get(m.name, {}))
            for m in available_methods() if m.name not in NOT_GENERIC
            and (not fast or m.name in FAST_METHODS)]


def metric_specs(preset: str, size: int, masks: str | None, scripted: bool
                 ) -> tuple[list[MetricSpec], dict[str, str]]:
    """The metrics that apply to the data (``masks``: ``binary``, ``levels``, or None) and the
    model (``scripted``: TorchScript), and why the others are skipped."""
    fast = preset == "fast"
    out, skipped = [], {}
    if masks is None:
        skipped["ground-truth metrics"] = "the data have no masks"
    else:
        out += [MetricSpec(name=n) for n in ("top_k_precision", "relevance_mass_accuracy",
                                              "pointing_game", "iou", "auroc",
                                              "average_precision")]
        if masks == "levels":
            out.append(MetricSpec(name="soft_five_band", params={"schedule": "standard"}))
        else:
            skipped["soft_five_band"] = "needs document 001's 0 / 0.4 / 0.9 ground truth"
    patch = max(2, size // (16 if fast else 28))  # document 002: 8 × 8 patches at 224 px
    out += [
        MetricSpec(name="pixel_flipping", params={"order": "morf", "fill": "gray"}
                   if not fast else {"order": "morf", "fill": "gray", "steps": "log:32"}),
        MetricSpec(name="region_perturbation", params={"patch": patch, "order": "morf"}),
        MetricSpec(name="region_perturbation", params={"patch": patch, "order": "lrf"}),
        MetricSpec(name="aopc", params={"region": max(1, size // 14), "input_range": [0.0, 1.0],
                                        "steps": 16 if fast else None}),
        MetricSpec(name="haas", params={"input_range": [0.0, 1.0]}),
        MetricSpec(name="max_sensitivity", params={"radius": 0.02,
                                                   "n_samples": 5 if fast else 20}),
    ]
    if scripted:
        skipped["model_randomisation"] = ("re-initialises layers of a copy of the model, which a "
                                          "TorchScript model does not allow")
    return out, skipped


def randomisation_spec(model: nn.Module, preset: str) -> MetricSpec:
    """The cascading randomisation test (output side first) over at most 6 (fast) or 12 (full)
    of the model's convolution and linear layers, evenly spaced and always the last: each step
    re-explains every image, so the cost is the number of steps."""
    layers = [name for name in randomisable_layers(model)
              if isinstance(model.get_submodule(name), (nn.Conv2d, nn.Linear))]
    steps = 6 if preset == "fast" else 12
    if len(layers) > steps:
        picks = np.linspace(len(layers) - 1, 0, steps).round().astype(int)
        layers = [layers[i] for i in sorted(set(picks.tolist()))]
    return MetricSpec(name="model_randomisation",
                      params={"layers": layers, "similarities": ["spearman"] if preset == "fast"
                              else ["spearman", "ssim"]},
                      factors={})


def requires(method: MethodSpec) -> str:
    """What the method needs of the model (``none``, ``hooks``, ``explainable``)."""
    return get_method(method.name).requires


def mask_kind(dataset: GroundTruthDataset) -> str | None:
    """``levels`` (document 001's 0 / 0.4 / 0.9), ``binary``, or None when no sample has one."""
    values = torch.unique(dataset.masks)
    if not bool((values > 0).any()):
        return None
    levels = torch.tensor(FIVE_BAND_LEVELS)
    if bool(((values[:, None] - levels[None]).abs().min(1).values < 1e-6).all()) and \
            bool(((values - 0.4).abs() < 1e-6).any()):
        return "levels"
    return "binary"


def probe(model: nn.Module, x: Tensor, y: Tensor, methods: list[MethodSpec]
          ) -> tuple[list[MethodSpec], dict[str, str], dict[str, float]]:
    """Run every method on the probe images ``x``: those that fail are skipped with the first
    line of their error; the others' seconds per image are measured."""
    ok, skipped, seconds = [], {}, {}
    for method in methods:
        start = time.perf_counter()
        try:
            explain(model, x, y, method.name, **method.params)
        except (ValueError, TypeError, RuntimeError, NotImplementedError) as err:
            skipped[method.key] = str(err).strip().splitlines()[0][:200] or type(err).__name__
            continue
        seconds[method.key] = (time.perf_counter() - start) / len(x)
        ok.append(method)
    return ok, skipped, seconds


def forward_seconds(model: nn.Module, x: Tensor) -> float:
    """Seconds of one forward pass per image (batch of the probe images, best of 3)."""
    best = math.inf
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - start)
    return best / len(x)


def estimate(methods: list[MethodSpec], metrics: list[MetricSpec], method_seconds: dict,
             forward: float, n: int, shape: tuple[int, int, int], model: nn.Module
             ) -> pd.DataFrame:
    """Cost per (method, metric): forward passes and explanations per sample from the metric
    registry, times ``n`` samples, into seconds with the probe timings."""
    rows = []
    for method in methods:
        rows.append({"method": method.key, "metric": "(explain)", "entry": -1,
                     "forward_per_sample": 0, "passes": 0.0,
                     "seconds": method_seconds[method.key] * n})
        for k, metric in enumerate(metrics):
            if not metric.applies_to(method):
                continue
            cost = get_metric(metric.name).estimate(metric.params, shape, model)
            explanations = 0.0 if math.isnan(cost.explanations) else cost.explanations
            rows.append({"method": method.key, "metric": metric.name, "entry": k,
                         "forward_per_sample": cost.forward,
                         "passes": cost.forward * n,
                         "seconds": n * (cost.forward * forward
                                         + explanations * method_seconds[method.key])})
    return pd.DataFrame(rows)
