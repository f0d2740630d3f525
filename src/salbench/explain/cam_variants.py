"""The CAM variants pytorch-grad-cam users expect: Grad-CAM++, XGrad-CAM, LayerCAM, Eigen-CAM,
Score-CAM and Ablation-CAM, in plain torch, with the raw map at feature resolution.

Notation as in :mod:`salbench.explain.cam`: ``A^k`` the k-th feature map (``[D1, D2]``) of the
layer, ``y^c`` the target logit, ``g^k = ∂y^c/∂A^k``. Every variant is a weighted sum of the
feature maps (LayerCAM: weighted per position; Eigen-CAM: a projection); the raw map has no ReLU
and no rescaling, and the upsampled map is :func:`salbench.explain.cam.upsample`'s (optional
ReLU, bilinear resize, optional min–max; pytorch-grad-cam scales before resizing, which agrees
up to the range: see ``upsample``). Where
pytorch-grad-cam (``grad-cam`` 1.5.7, the test oracle) departs from the paper or adds a constant,
salbench follows pytorch-grad-cam and says so in the function's docstring.

Score-CAM and Ablation-CAM cost one forward pass per feature map and sample; they run
``internal_batch_size`` images per model call (as the Captum-backed methods' parameter of that
name), over (sample, channel) pairs, never one pass at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salbench.explain.cam import _capture, upsample
from salbench.explain.checks import (
    check_batch,
    check_device,
    check_finite,
    check_model,
    preserved_model,
)
from salbench.explain.gradients import resolve_layer
from salbench.explain.registry import register

GRADCAM_PP_EPS = 1e-6
"""Added to the denominator of Grad-CAM++'s α (pytorch-grad-cam's ``grad_cam_plusplus.py``; the
paper has none)."""
XGRADCAM_EPS = 1e-7
"""Added to Σ_ij A^k_ij in XGrad-CAM's weights (pytorch-grad-cam's ``xgrad_cam.py``)."""
SCORECAM_MASK_EPS = 1e-8
"""Added to max − min when Score-CAM scales a mask to [0, 1] (pytorch-grad-cam's
``score_cam.py``); a constant feature map gives an all-zero mask."""
INTERNAL_BATCH_SIZE = 64
"""Default images per model call for Score-CAM and Ablation-CAM (the Captum-backed methods'
``internal_batch_size`` default)."""


def _weighted_sum(weights: Tensor, features: Tensor) -> Tensor:
    """Σ_k w_k A^k: weights ``[B, K]``, features ``[B, K, D1, D2]`` -> ``[B, 1, D1, D2]``."""
    return (weights[:, :, None, None] * features).sum(1, keepdim=True)


# ---------------------------------------------------------------- the maps, from A (and g)


def gradcam_pp_map(features: Tensor, grads: Tensor) -> Tensor:
    """Grad-CAM++ (Chattopadhyay et al. 2018, "Grad-CAM++", WACV, arXiv 1710.11063, section 3,
    eqs. 7 and 19): Σ_k w^k A^k with w^k = Σ_ij α^k_ij ReLU(∂S/∂A^k_ij) (eq. 7) and eq. 19's
    closed form of α for an
    exponential score S = exp(y^c), whose second and third derivatives are exp(y^c)·g² and
    exp(y^c)·g³ for a piecewise-linear network:

        α^k_ij = g²_ij / (2 g²_ij + Σ_ab A^k_ab · g³_ij + ε),   α = 0 where g = 0.

    As pytorch-grad-cam: ε = :data:`GRADCAM_PP_EPS`, and the weights leave out eq. 19's positive
    factor exp(y^c) (the same for every channel of a sample, so only the raw map's scale
    changes). ``features``, ``grads``: ``[B, K, D1, D2]``; returns ``[B, 1, D1, D2]``.
    """
    g2 = grads.pow(2)
    total = features.sum(dim=(2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + total * g2 * grads + GRADCAM_PP_EPS)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    weights = (alpha * grads.clamp(min=0)).sum(dim=(2, 3))
    return _weighted_sum(weights, features)


def xgradcam_map(features: Tensor, grads: Tensor) -> Tensor:
    """XGrad-CAM (Fu et al. 2020, "Axiom-based Grad-CAM", BMVC, arXiv 2008.02312: the weights
    derived from the sensitivity and conservation axioms): Σ_k w^k A^k with
    w^k = Σ_ij (A^k_ij / (Σ_ab A^k_ab + ε)) g^k_ij, ε = :data:`XGRADCAM_EPS`
    (pytorch-grad-cam's). Where A^k is spatially constant this is D1·D2 times Grad-CAM's weight
    mean_ij g^k_ij divided by D1·D2, i.e. Grad-CAM's. ``[B, K, D1, D2]`` -> ``[B, 1, D1, D2]``.
    """
    total = features.sum(dim=(2, 3), keepdim=True)
    weights = (features / (total + XGRADCAM_EPS) * grads).sum(dim=(2, 3))
    return _weighted_sum(weights, features)


def layercam_map(features: Tensor, grads: Tensor) -> Tensor:
    """LayerCAM (Jiang et al. 2021, "LayerCAM", IEEE TIP 30, section III: every position's
    feature weighted by its own positive gradient):
    Σ_k ReLU(g^k) ⊙ A^k, position by position (HiResCAM with the negative gradients cut).
    ``[B, K, D1, D2]`` -> ``[B, 1, D1, D2]``."""
    return (grads.clamp(min=0) * features).sum(1, keepdim=True)


def eigencam_map(features: Tensor) -> Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020, "Eigen-CAM", IJCNN, arXiv 2008.00299, section III):
    the projection of the activations on their first principal component. Per sample, M is the
    ``[D1·D2, K]`` matrix of feature vectors, centred over positions (pytorch-grad-cam centres;
    the paper does not); with the SVD M = U Σ Vᵀ the map is M v₁ reshaped to ``[D1, D2]``.
    Class-agnostic: the target is not used.

    **Sign.** v₁ and −v₁ are both first singular vectors, so the map's sign is arbitrary (it
    depends on the SVD routine). pytorch-grad-cam's ``EigenCAM`` keeps whatever sign LAPACK
    returns; its ``get_2d_projection_with_sign_correction`` (Seg-Eigen-CAM, Chung & Ying 2025,
    eq. 13) flips the map when |min| > |max|. salbench applies that correction, so the map
    does not depend on the SVD routine or device. ``[B, K, D1, D2]`` -> ``[B, 1, D1, D2]``.
    """
    b, k, d1, d2 = features.shape
    m = features.nan_to_num(0.0).flatten(2).transpose(1, 2)  # [B, D1·D2, K]
    m = m - m.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(m, full_matrices=False)
    projection = (m @ vh[:, 0, :, None])[..., 0]  # [B, D1·D2]
    flip = projection.amin(1).abs() > projection.amax(1).abs()
    projection = torch.where(flip[:, None], -projection, projection)
    return projection.view(b, 1, d1, d2)


# ---------------------------------------------------------------- forward-pass variants


def _pairs(b: int, k: int, size: int, device: torch.device):
    """(sample index, channel index) of every pair, ``size`` pairs at a time."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"internal_batch_size must be a positive integer, got {size!r}")
    pairs = torch.arange(b * k, device=device)
    for start in range(0, b * k, size):
        part = pairs[start:start + size]
        yield part // k, part % k


def _target_logits(model: nn.Module, xs: Tensor, ys: Tensor) -> Tensor:
    return model(xs).gather(1, ys[:, None])[:, 0]


def scorecam_weights(model: nn.Module, x: Tensor, y: Tensor, features: Tensor,
                     internal_batch_size: int = INTERNAL_BATCH_SIZE) -> Tensor:
    """Score-CAM's channel weights ``[B, K]`` (Wang et al. 2020, "Score-CAM", CVPR workshops,
    arXiv 1910.01279, section 3: the channel-wise increase of confidence, Algorithm 1). Each
    feature map A^k, bilinearly upsampled to the input size and min–max scaled to [0, 1]
    (H^k), masks the input; the target logit of the masked input x ∘ H^k is A^k's score, and
    the weights are the softmax of the scores over k. The paper's increase of confidence
    subtracts the score of a baseline image, which a softmax over k cancels. As
    pytorch-grad-cam: the target logit (``ClassifierOutputTarget``), upsampling with
    ``align_corners=True`` (its ``UpsamplingBilinear2d``) and ε = :data:`SCORECAM_MASK_EPS`.
    B·K forward passes, ``internal_batch_size`` images per model call."""
    b, k = features.shape[:2]
    scores = torch.empty(b * k, dtype=features.dtype, device=x.device)
    done = 0
    with torch.no_grad():
        for bi, ki in _pairs(b, k, internal_batch_size, x.device):
            maps = features[bi, ki][:, None]
            masks = F.interpolate(maps, size=tuple(x.shape[-2:]), mode="bilinear",
                                  align_corners=True)
            low = masks.amin(dim=(2, 3), keepdim=True)
            high = masks.amax(dim=(2, 3), keepdim=True)
            masks = (masks - low) / (high - low + SCORECAM_MASK_EPS)
            scores[done:done + len(bi)] = _target_logits(model, x[bi] * masks, y[bi])
            done += len(bi)
    return scores.view(b, k).softmax(dim=1)


def ablationcam_weights(model: nn.Module, x: Tensor, y: Tensor, module: nn.Module,
                        logits: Tensor, channels: int,
                        internal_batch_size: int = INTERNAL_BATCH_SIZE) -> Tensor:
    """Ablation-CAM's channel weights ``[B, K]`` (Desai & Ramaswamy 2020, "Ablation-CAM",
    WACV, section 3: the slope of the score when a feature map is removed):
    w^k = (y^c − y^c_k) / y^c, with y^c_k the target logit when the layer's k-th feature map is
    set to zero (a forward hook zeroes it; the layers before it run again). pytorch-grad-cam's
    ``AblationLayer`` zeroes the map only when the layer's smallest value is 0 (a layer after
    a ReLU, where the two agree); otherwise it writes min − 1e7, more negative in each row of
    its batch. ``logits``: the unablated outputs ``[B, N]``. B·K forward passes,
    ``internal_batch_size`` images per model call."""
    b = x.shape[0]
    ablated = torch.empty(b * channels, dtype=logits.dtype, device=x.device)
    keep: dict[str, Tensor] = {}

    def zero_channel(mod: nn.Module, args: tuple, output: Tensor) -> Tensor:
        return output * keep["mask"]

    handle = module.register_forward_hook(zero_channel)
    done = 0
    try:
        with torch.no_grad():
            for bi, ki in _pairs(b, channels, internal_batch_size, x.device):
                mask = torch.ones(len(bi), channels, 1, 1, dtype=x.dtype, device=x.device)
                mask[torch.arange(len(bi), device=x.device), ki] = 0
                keep["mask"] = mask
                ablated[done:done + len(bi)] = _target_logits(model, x[bi], y[bi])
                done += len(bi)
    finally:
        handle.remove()
    original = logits.gather(1, y[:, None]).detach()
    return (original - ablated.view(b, channels)) / original


# ---------------------------------------------------------------- maps of a model

GRADIENT_MAPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "gradcam_pp": gradcam_pp_map, "xgradcam": xgradcam_map, "layercam": layercam_map}
VARIANTS = (*GRADIENT_MAPS, "eigencam", "scorecam", "ablationcam")
FORWARD_PASS_VARIANTS = ("scorecam", "ablationcam")


def cam_variant_maps(model: nn.Module, x: Tensor, y: Tensor | int, kind: str,
                     layer: str | nn.Module | None = None, relu: bool = False,
                     minmax: bool = False,
                     internal_batch_size: int = INTERNAL_BATCH_SIZE) -> tuple[Tensor, Tensor]:
    """(raw ``[B, 1, D1, D2]``, upsampled ``[B, 1, H, W]``) maps of a CAM variant, as
    :func:`salbench.explain.cam_maps` for the CAM family. ``kind``: one of :data:`VARIANTS`.
    ``layer``: a module or dotted name, default the last ``nn.Conv2d``. The raw map has no ReLU
    nor scaling; ``relu``/``minmax`` apply to the upsampled map. ``internal_batch_size``: images
    per model call of Score-CAM and Ablation-CAM. The model runs in eval mode and is left as
    found; NaN/inf maps raise an error."""
    model = check_model(model)
    x, y = check_batch(x, y)
    check_device(model, x)
    with preserved_model(model):
        raw = _raw_map(model, x, y, kind, layer, internal_batch_size)
    check_finite(raw, kind)
    return raw, check_finite(upsample(raw, x.shape[-2:], relu=relu, minmax=minmax), kind)


def _raw_map(model: nn.Module, x: Tensor, y: Tensor, kind: str,
             layer: str | nn.Module | None, internal_batch_size: int) -> Tensor:
    if kind not in VARIANTS:
        raise ValueError(f"kind must be one of {VARIANTS}, got {kind!r}")
    module = resolve_layer(model, layer)
    if kind in GRADIENT_MAPS:
        logits, features = _capture(model, module, x)
        (grads,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), features)
        return GRADIENT_MAPS[kind](features.detach(), grads)
    with torch.no_grad():
        logits, features = _capture(model, module, x)
    if kind == "eigencam":
        return eigencam_map(features)
    if kind == "scorecam":
        weights = scorecam_weights(model, x, y, features, internal_batch_size)
    else:
        weights = ablationcam_weights(model, x, y, module, logits, features.shape[1],
                                      internal_batch_size)
    return _weighted_sum(weights, features)


def _registered(kind: str):
    def method(model: nn.Module, x: Tensor, y: Tensor, layer: str | nn.Module | None = None,
               relu: bool = True, minmax: bool = False,
               internal_batch_size: int = INTERNAL_BATCH_SIZE) -> Tensor:
        raw = _raw_map(model, x, y, kind, layer, internal_batch_size)
        return upsample(raw, x.shape[-2:], relu=relu, minmax=minmax)

    method.__name__ = kind
    method.__doc__ = (f"{kind} map upsampled to the input size, ``[B, 1, H, W]``; ReLU on by "
                      "default (the definition), min–max off (a named post-processing step). "
                      "Formula and source: salbench.explain.cam_variants.")
    return method


def _params(kind: str) -> dict:
    """Registered defaults: the CAM family's, and the chunk size where there are passes."""
    params = {"layer": None, "relu": True, "minmax": False}
    if kind in FORWARD_PASS_VARIANTS:
        params["internal_batch_size"] = INTERNAL_BATCH_SIZE
    return params


for _kind, _summary in (
    ("gradcam_pp", "Grad-CAM++: α-weighted positive gradients (Chattopadhyay et al. 2018, "
                    "eq. 19)"),
    ("xgradcam", "XGrad-CAM: activation-normalised gradient weights (Fu et al. 2020)"),
    ("layercam", "LayerCAM: ReLU(gradient) ⊙ feature maps (Jiang et al. 2021)"),
    ("eigencam", "Eigen-CAM: first principal component of the feature maps (Muhammad & Yeasin "
                 "2020), class-agnostic"),
    ("scorecam", "Score-CAM: softmax of masked-input target logits (Wang et al. 2020), one "
                 "forward pass per channel"),
    ("ablationcam", "Ablation-CAM: relative logit drop with a channel zeroed (Desai & Ramaswamy "
                    "2020), one forward pass per channel"),
):
    register(_kind, "torch", _summary, _params(_kind))(_registered(_kind))
