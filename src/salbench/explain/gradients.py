"""The gradient family through Captum: saliency, input × gradient, integrated gradients, SHAP
variants, DeepLIFT, guided backprop, deconvolution, guided Grad-CAM, occlusion, SmoothGrad.

Defaults follow document 000, section 2.4 (Captum's own defaults, all-zero baselines for
integrated gradients, DeepLIFT and GradientSHAP), with three documented departures: saliency is
the signed gradient (``abs=False``; take absolute values with
:func:`salbench.explain.postprocess.absolute`), DeepLiftSHAP needs a baseline *distribution* so it
draws ``n_baselines`` uniform-noise images, and every random draw is seeded (``seed``) without
touching the global random state. ``internal_batch_size`` caps the images per forward pass.
DeepLIFT and DeepLiftSHAP run salbench's own rescale rule (:mod:`salbench.explain.deeplift`,
which fixes three Captum bugs) and fall back to Captum for models it has no rule for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from captum.attr import (
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn

from salbench.explain.checks import require_explainable
from salbench.explain.deeplift import rescale_attributions, rescale_shap, rescale_supported
from salbench.explain.registry import register
from salbench.runtime.seeding import torch_seeded

DEFAULT_INTERNAL_BATCH = 64
"""Images per forward pass for the multi-pass methods (memory budget; raise it on a large GPU)."""

BASELINE_NAMES = ("zero", "uniform")


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's and NumPy's RNGs for the block (Captum's GradientShap draws its path
    coefficients with ``np.random``) and restore the caller's random state afterwards."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    numpy_state = np.random.get_state()
    with torch_seeded(seed, device):
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def make_baseline(baseline: str | float | Tensor, x: Tensor, n: int | None = None) -> Tensor:
    """A reference image per sample (``n=None``: ``[B, C, H, W]``) or a distribution
    ``[n, C, H, W]``.

    ``"zero"``: all-zero images (document 000, section 2.4). ``"uniform"``: uniform noise between
    the smallest and largest value of each sample (of the batch for a distribution); draws use
    torch's RNG, seed it around the call. A number: a constant image. A tensor: used as given.
    """
    shape = (x.shape[0], *x.shape[1:]) if n is None else (n, *x.shape[1:])
    if isinstance(baseline, Tensor):
        return baseline.to(x)
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full(shape, float(baseline), dtype=x.dtype, device=x.device)
    if baseline == "zero":
        return torch.zeros(shape, dtype=x.dtype, device=x.device)
    if baseline == "uniform":
        if n is None:
            low = x.flatten(1).amin(1).view(-1, 1, 1, 1)
            high = x.flatten(1).amax(1).view(-1, 1, 1, 1)
        else:
            low, high = x.min(), x.max()
        return low + (high - low) * torch.rand(shape, dtype=x.dtype, device=x.device)
    raise ValueError(f"baseline must be one of {BASELINE_NAMES}, a number or a tensor, "
                     f"got {baseline!r}")


def _chunks(x: Tensor, y: Tensor, size: int) -> Iterator[tuple[Tensor, Tensor]]:
    size = max(1, int(size))
    for start in range(0, x.shape[0], size):
        yield x[start:start + size], y[start:start + size]


def _check_positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def default_conv_layer(model: nn.Module) -> nn.Module:
    """The last ``nn.Conv2d`` in registration order (the CAM family's default layer)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the model has no nn.Conv2d layer; CAM-family methods need a "
                         "convolutional layer (use a gradient method instead)")
    return convs[-1]


def resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    """``None`` -> last conv layer; a dotted name -> that submodule; a module -> itself."""
    if layer is None:
        return default_conv_layer(model)
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("layer must be a submodule of model")
        return layer
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
            raise ValueError(f"layer {layer!r} is not a submodule of the model; convolutional "
                             f"layers are {names}") from None
    raise TypeError("layer must be None, a module name or an nn.Module, "
                    f"got {type(layer).__name__}")


# ---- single-pass methods -------------------------------------------------------------------


@register("saliency", "captum", "gradient of the target logit w.r.t. the input (signed)",
          requires="none")
def saliency(model: nn.Module, x: Tensor, y: Tensor, abs: bool = False) -> Tensor:
    """∂f_y/∂x (Simonyan et al.); ``abs=True`` gives Captum's default |∂f_y/∂x|."""
    return Saliency(model).attribute(x, target=y, abs=abs)


@register("input_x_gradient", "captum", "input times gradient, x ⊙ ∂f_y/∂x", requires="none")
def input_x_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """x ⊙ ∂f_y/∂x (Shrikumar et al.); equals LRP-0 on bias-free ReLU networks."""
    return InputXGradient(model).attribute(x, target=y)


@register("guided_backprop", "captum", "guided backpropagation",
          requires="explainable")
def guided_backprop(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Gradient with ReLU backward passes clipped to positive gradients (Springenberg et al.)."""
    require_explainable(model, x, "guided_backprop")
    return GuidedBackprop(model).attribute(x, target=y)


@register("deconvolution", "captum", "deconvolution",
          requires="explainable")
def deconvolution(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Backward pass with ReLUs applied to the gradient (Zeiler & Fergus)."""
    require_explainable(model, x, "deconvolution")
    return Deconvolution(model).attribute(x, target=y)


@register("guided_gradcam", "captum", "guided backprop ⊙ upsampled Grad-CAM at a conv layer",
          requires="explainable")
def guided_gradcam(model: nn.Module, x: Tensor, y: Tensor, layer: str | nn.Module | None = None,
                   interpolate_mode: str = "nearest") -> Tensor:
    """Captum's GuidedGradCam at ``layer`` (default: the last ``nn.Conv2d``)."""
    require_explainable(model, x, "guided_gradcam")
    module = resolve_layer(model, layer)
    return GuidedGradCam(model, module).attribute(x, target=y, interpolate_mode=interpolate_mode)


DEEPLIFT_BACKENDS = ("salbench", "captum")


def _check_backend(backend: str) -> None:
    if backend not in DEEPLIFT_BACKENDS:
        raise ValueError(f"backend must be one of {list(DEEPLIFT_BACKENDS)}, got {backend!r}")


@register("deeplift", "salbench", "DeepLIFT rescale rule against a baseline",
          requires="explainable")
def deeplift(model: nn.Module, x: Tensor, y: Tensor, baseline: str | float | Tensor = "zero",
             seed: int = 0, backend: str = "salbench") -> Tensor:
    """DeepLIFT (Shrikumar et al.), rescale rule; all-zero baseline by default (document 000).

    Own rescale code (:mod:`salbench.explain.deeplift`) when every module has a rule there,
    Captum's ``DeepLift`` otherwise or with ``backend="captum"`` (the documents' maps, Captum's
    bugs included: see that module). A tensor ``baseline`` is ``[B, C, H, W]`` or
    ``[1, C, H, W]``.
    """
    require_explainable(model, x, "deeplift")
    _check_backend(backend)
    with seeded(seed, x.device):
        reference = make_baseline(baseline, x)
    if reference.shape not in (x.shape, (1, *x.shape[1:])):
        raise ValueError(f"deeplift's baseline must have shape {tuple(x.shape)} or "
                         f"{(1, *x.shape[1:])}, got {tuple(reference.shape)}")
    if backend == "salbench" and rescale_supported(model):
        return rescale_attributions(model, x, y, reference)
    return DeepLift(model).attribute(x, baselines=reference, target=y)


# ---- multi-pass methods --------------------------------------------------------------------


@register("integrated_gradients", "captum", "integrated gradients along the straight path",
          requires="none")
def integrated_gradients(model: nn.Module, x: Tensor, y: Tensor,
                         baseline: str | float | Tensor = "zero", n_steps: int = 50,
                         integration: str = "gausslegendre", seed: int = 0,
                         internal_batch_size: int = DEFAULT_INTERNAL_BATCH) -> Tensor:
    """(x − x')·∫₀¹ ∂f_y(x' + α(x − x'))/∂x dα (Sundararajan et al.), ``n_steps`` quadrature points.

    ``integration`` is Captum's ``method`` ("gausslegendre", "riemann_trapezoid", ...).
    """
    _check_positive("n_steps", n_steps)
    _check_positive("internal_batch_size", internal_batch_size)
    with seeded(seed, x.device):
        reference = make_baseline(baseline, x)
    return IntegratedGradients(model).attribute(
        x, baselines=reference, target=y, n_steps=n_steps, method=integration,
        internal_batch_size=internal_batch_size)


@register("gradient_shap", "captum", "GradientSHAP: expected gradients over baselines and paths",
          requires="none")
def gradient_shap(model: nn.Module, x: Tensor, y: Tensor, baseline: str | float | Tensor = "zero",
                  n_baselines: int = 1, n_samples: int = 5, stdevs: float = 0.0, seed: int = 0,
                  internal_batch_size: int = DEFAULT_INTERNAL_BATCH) -> Tensor:
    """Captum GradientShap with ``n_samples`` random (baseline, α) draws per image.

    Default: the all-zero baseline (document 000, section 2.4) and Captum's n_samples=5.
    """
    for name, value in (("n_baselines", n_baselines), ("n_samples", n_samples),
                        ("internal_batch_size", internal_batch_size)):
        _check_positive(name, value)
    method = GradientShap(model)
    parts = []
    with seeded(seed, x.device):
        reference = make_baseline(baseline, x, n_baselines)
        for xs, ys in _chunks(x, y, internal_batch_size // n_samples):
            parts.append(method.attribute(xs, baselines=reference, target=ys,
                                          n_samples=n_samples, stdevs=stdevs))
    return torch.cat(parts)


@register("deeplift_shap", "salbench", "DeepLIFT averaged over a baseline distribution",
          requires="explainable")
def deeplift_shap(model: nn.Module, x: Tensor, y: Tensor,
                  baseline: str | float | Tensor = "uniform", n_baselines: int = 5, seed: int = 0,
                  internal_batch_size: int = DEFAULT_INTERNAL_BATCH,
                  backend: str = "salbench") -> Tensor:
    """DeepLiftSHAP: DeepLIFT against each of the baselines, averaged (Captum's DeepLiftShap).

    It needs at least two baselines, so by default ``n_baselines=5`` uniform-noise images in the
    batch's value range (document 001 names the method only); a tensor ``baseline`` is the
    distribution ``[n, C, H, W]``, n ≥ 2. Own rescale code (:mod:`salbench.explain.deeplift`: n
    images per sample and pass) when every module has a rule there, Captum's ``DeepLiftShap``
    otherwise or with ``backend="captum"`` (2n images per sample and pass).
    """
    require_explainable(model, x, "deeplift_shap")
    _check_backend(backend)
    _check_positive("internal_batch_size", internal_batch_size)
    if not isinstance(baseline, Tensor):
        _check_positive("n_baselines", n_baselines)
        if n_baselines < 2:
            raise ValueError(f"n_baselines must be at least 2 for deeplift_shap, got {n_baselines}")
    with seeded(seed, x.device):
        reference = make_baseline(baseline, x, n_baselines)
    if reference.dim() != x.dim() or reference.shape[1:] != x.shape[1:] or reference.shape[0] < 2:
        raise ValueError(f"deeplift_shap's baseline distribution must have shape "
                         f"[n >= 2, {', '.join(map(str, x.shape[1:]))}], "
                         f"got {list(reference.shape)}")
    n = reference.shape[0]
    if backend == "salbench" and rescale_supported(model):
        return rescale_shap(model, x, y, reference, max(1, internal_batch_size // n))
    method = DeepLiftShap(model)
    return torch.cat([method.attribute(xs, baselines=reference, target=ys)
                      for xs, ys in _chunks(x, y, internal_batch_size // (2 * n))])


@register("occlusion", "captum", "change of the target logit when a sliding window is occluded",
          requires="none")
def occlusion(model: nn.Module, x: Tensor, y: Tensor, window: int | None = None,
              stride: int | None = None, baseline: float = 0.0,
              internal_batch_size: int = DEFAULT_INTERNAL_BATCH) -> Tensor:
    """Captum Occlusion with a square ``window`` (default H // 8) moved by ``stride`` (default
    window // 2) over all channels at once, replaced by ``baseline``."""
    _check_positive("internal_batch_size", internal_batch_size)
    size = max(1, x.shape[-1] // 8) if window is None else window
    _check_positive("window", size)
    step = max(1, size // 2) if stride is None else stride
    _check_positive("stride", step)
    return Occlusion(model).attribute(
        x, sliding_window_shapes=(x.shape[1], size, size), strides=(x.shape[1], step, step),
        baselines=float(baseline), target=y,
        perturbations_per_eval=max(1, internal_batch_size // x.shape[0]))


SMOOTHGRAD_BASES: dict[str, Callable[[nn.Module], Any]] = {
    "saliency": Saliency,
    "input_x_gradient": InputXGradient,
    "integrated_gradients": IntegratedGradients,
    "guided_backprop": GuidedBackprop,
    "deconvolution": Deconvolution,
    "deeplift": DeepLift,
}


@register("smoothgrad", "captum", "SmoothGrad: a method averaged over noisy copies (NoiseTunnel)",
          requires="none")
def smoothgrad(model: nn.Module, x: Tensor, y: Tensor, base: str = "saliency",
               nt_samples: int = 50, stdevs: float = 0.15, nt_type: str = "smoothgrad",
               base_params: dict | None = None, seed: int = 0,
               internal_batch_size: int = DEFAULT_INTERNAL_BATCH) -> Tensor:
    """Captum NoiseTunnel over ``base`` with ``nt_samples`` Gaussian copies of std ``stdevs``.

    Defaults from Smilkov et al. (50 samples, 15 % noise for inputs in [0, 1]); ``stdevs`` is in
    input units. ``nt_type``: "smoothgrad", "smoothgrad_sq" or "vargrad". ``base="saliency"`` is
    the signed gradient unless ``base_params={"abs": True}``; integrated gradients and DeepLIFT
    use Captum's all-zero baseline unless ``base_params`` gives ``baselines``.
    """
    if base not in SMOOTHGRAD_BASES:
        raise ValueError(f"base must be one of {sorted(SMOOTHGRAD_BASES)}, got {base!r}")
    if base in ("guided_backprop", "deconvolution", "deeplift"):
        require_explainable(model, x, f"smoothgrad({base})")
    _check_positive("nt_samples", nt_samples)
    _check_positive("internal_batch_size", internal_batch_size)
    extra = dict(base_params or {})
    if base == "saliency":
        extra.setdefault("abs", False)
    with seeded(seed, x.device):
        return NoiseTunnel(SMOOTHGRAD_BASES[base](model)).attribute(
            x, nt_type=nt_type, nt_samples=nt_samples, stdevs=stdevs, target=y,
            nt_samples_batch_size=max(1, internal_batch_size // x.shape[0]), **extra)
