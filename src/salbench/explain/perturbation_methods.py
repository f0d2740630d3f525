"""Perturbation methods over superpixels through Captum: feature ablation, Shapley value
sampling, KernelSHAP and LIME.

Each treats the SLIC superpixels of an image (:func:`superpixels`) as its features, replaces a
feature by ``baseline`` (0 by default, as in Captum) to remove it, and needs forward passes only
(``requires="none"``: they run on TorchScript models too). Every pixel and channel of a
superpixel carries that superpixel's value (Captum's convention: not divided by its size).

**Cost**, in forward passes of one image (an image counted once per perturbed copy the model
sees; ``internal_batch_size`` caps the copies per model call): feature ablation k + 1 for k
superpixels; Shapley value sampling 1 + k · ⌊(passes − 1) / k⌋ ≤ ``passes``; KernelSHAP and LIME
exactly ``passes``. **Per image**: Captum takes one feature mask per batch, and its LIME and
KernelSHAP fit one surrogate over the batch's largest feature count, so each image is explained
by its own Captum call with its own mask, target and ``seed``. An image's map therefore depends
only on that image, its target and the seed, not on the batch it came in. Captum's sampling draws
from torch's global RNG; it is seeded per image inside :func:`~salbench.explain.gradients.seeded`,
which restores the caller's random state afterwards. LIME's and KernelSHAP's surrogate models are
Captum's defaults, which use scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.attr import FeatureAblation, KernelShap, Lime, ShapleyValueSampling
from skimage.segmentation import slic
from torch import Tensor, nn

from salbench.explain.gradients import DEFAULT_INTERNAL_BATCH, _check_positive, seeded
from salbench.explain.registry import register

DEFAULT_SEGMENTS = 50
"""SLIC superpixels asked for per image (SLIC returns about this many)."""
DEFAULT_COMPACTNESS = 10.0
"""SLIC's colour/space trade-off: scikit-image's default, for Lab images (:func:`superpixels`)."""
DEFAULT_PASSES = 1000
"""Forward passes per image for the sampling methods (Shapley sampling, KernelSHAP, LIME)."""
LAB_L_RANGE = 100.0
"""Lab's lightness range, 0–100: images that SLIC does not convert to Lab are scaled to it."""

# (one image [1, C, H, W], its target, its mask [1, 1, H, W], its feature count) -> map
Attribute = Callable[[Tensor, int, Tensor, int], Tensor]


def _check_compactness(compactness: float) -> None:
    if (not isinstance(compactness, (int, float)) or isinstance(compactness, bool)
            or not compactness > 0):
        raise ValueError(f"compactness must be a positive number, got {compactness!r}")


def _check_baseline(baseline: float) -> None:
    if not isinstance(baseline, (int, float)) or isinstance(baseline, bool):
        raise TypeError(f"baseline must be a number (the value a removed superpixel takes), "
                        f"got {baseline!r}")


def superpixels(x: Tensor, n_segments: int = DEFAULT_SEGMENTS,
                compactness: float = DEFAULT_COMPACTNESS) -> Tensor:
    """SLIC superpixels of each image: ``Tensor[B, 1, H, W]`` (long, on ``x``'s device), labels
    0..k−1 per image with k close to ``n_segments``.

    Each image is min–max scaled to [0, 1] over all its channels; SLIC (scikit-image, Achanta et
    al. 2012) converts a 3-channel image to Lab, and any other image is scaled to [0, 100], Lab's
    lightness range, so one ``compactness`` means the same for grey and colour images. A
    1-channel image is segmented as a 2-D grey image (``channel_axis=None``).
    """
    _check_positive("n_segments", n_segments)
    _check_compactness(compactness)
    if x.dim() != 4:
        raise ValueError(f"x must be [B, C, H, W], got shape {list(x.shape)}")
    masks = []
    for image in x.detach().to("cpu", torch.float64).numpy():
        low, high = image.min(), image.max()
        scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
        if image.shape[0] != 3:
            scaled = scaled * LAB_L_RANGE
        if image.shape[0] == 1:
            labels = slic(scaled[0], n_segments=n_segments, compactness=compactness,
                          start_label=0, channel_axis=None)
        else:
            labels = slic(np.moveaxis(scaled, 0, -1), n_segments=n_segments,
                          compactness=compactness, start_label=0, channel_axis=-1)
        consecutive = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
        masks.append(torch.from_numpy(consecutive))
    return torch.stack(masks).unsqueeze(1).to(device=x.device, dtype=torch.long)


def _per_image(x: Tensor, y: Tensor, masks: Tensor, seed: int, attribute: Attribute) -> Tensor:
    """``attribute`` on each image with its own mask, seeded with ``seed`` for each image."""
    parts = []
    for i in range(x.shape[0]):
        with seeded(seed, x.device):
            parts.append(attribute(x[i:i + 1], int(y[i]), masks[i:i + 1],
                                   int(masks[i].max()) + 1))
    return torch.cat(parts).to(x.dtype)


def _common_checks(n_segments: int, compactness: float, baseline: float,
                   internal_batch_size: int, passes: int | None = None) -> None:
    _check_positive("n_segments", n_segments)
    _check_compactness(compactness)
    _check_baseline(baseline)
    _check_positive("internal_batch_size", internal_batch_size)
    if passes is not None:
        _check_positive("passes", passes)


@register("feature_ablation", "captum",
          "drop of the target logit when one superpixel is replaced by the baseline",
          requires="none")
def feature_ablation(model: nn.Module, x: Tensor, y: Tensor, n_segments: int = DEFAULT_SEGMENTS,
                     compactness: float = DEFAULT_COMPACTNESS, baseline: float = 0.0,
                     internal_batch_size: int = DEFAULT_INTERNAL_BATCH) -> Tensor:
    """Feature ablation (Captum ``FeatureAblation``; occlusion of Zeiler & Fergus 2014 with
    superpixels for windows): a_S = f_y(x) − f_y(x with superpixel S set to ``baseline``).

    Deterministic; costs k + 1 forward passes per image for its k superpixels, so it takes no
    ``passes`` and no ``seed``.
    """
    _common_checks(n_segments, compactness, baseline, internal_batch_size)
    method = FeatureAblation(model)

    def attribute(xi: Tensor, target: int, mask: Tensor, k: int) -> Tensor:
        return method.attribute(xi, baselines=float(baseline), target=target, feature_mask=mask,
                                perturbations_per_eval=min(internal_batch_size, k))

    return _per_image(x, y, superpixels(x, n_segments, compactness), 0, attribute)


def shapley_permutations(passes: int, k: int) -> int:
    """Random permutations that fit ``passes`` forward passes for k features: one pass for the
    all-baseline image, then k per permutation, ⌊(passes − 1) / k⌋ (0: not even one fits)."""
    return (passes - 1) // k


@register("shapley_sampling", "captum",
          "Shapley values of the superpixels estimated from random permutations",
          requires="none")
def shapley_sampling(model: nn.Module, x: Tensor, y: Tensor, n_segments: int = DEFAULT_SEGMENTS,
                     compactness: float = DEFAULT_COMPACTNESS, baseline: float = 0.0,
                     passes: int = DEFAULT_PASSES, seed: int = 0,
                     internal_batch_size: int = DEFAULT_INTERNAL_BATCH) -> Tensor:
    """Shapley value sampling (Captum ``ShapleyValueSampling``; Štrumbelj & Kononenko 2014):
    φ_S = mean over random orderings of the superpixels of f_y(x_{P ∪ S}) − f_y(x_P), P the
    superpixels before S, every superpixel outside the set at ``baseline``.

    ``passes`` is the budget per image: ⌊(passes − 1) / k⌋ permutations of its k superpixels
    (:func:`shapley_permutations`), each costing k passes after one all-baseline pass; a budget
    below k + 1 for some image is an error. Exact for a model additive over superpixels.
    """
    _common_checks(n_segments, compactness, baseline, internal_batch_size, passes)
    masks = superpixels(x, n_segments, compactness)
    for i, mask in enumerate(masks):
        k = int(mask.max()) + 1
        if shapley_permutations(passes, k) < 1:
            raise ValueError(f"passes={passes} is too few for shapley_sampling: one permutation "
                             f"of image {i}'s {k} superpixels needs {k + 1} forward passes "
                             f"(raise passes or lower n_segments)")
    method = ShapleyValueSampling(model)

    def attribute(xi: Tensor, target: int, mask: Tensor, k: int) -> Tensor:
        return method.attribute(xi, baselines=float(baseline), target=target, feature_mask=mask,
                                n_samples=shapley_permutations(passes, k),
                                perturbations_per_eval=min(internal_batch_size, k))

    return _per_image(x, y, masks, seed, attribute)


@register("kernel_shap", "captum",
          "KernelSHAP: Shapley-kernel weighted linear fit over random superpixel subsets",
          requires="none")
def kernel_shap(model: nn.Module, x: Tensor, y: Tensor, n_segments: int = DEFAULT_SEGMENTS,
                compactness: float = DEFAULT_COMPACTNESS, baseline: float = 0.0,
                passes: int = DEFAULT_PASSES, seed: int = 0,
                internal_batch_size: int = DEFAULT_INTERNAL_BATCH) -> Tensor:
    """KernelSHAP (Captum ``KernelShap``; Lundberg & Lee 2017, section 4.1): the coefficients φ of
    the linear model g(z) = φ₀ + Σ_S φ_S z_S fitted by least squares to f_y(h(z)) over random
    binary z (z_S = 1 keeps superpixel S, 0 sets it to ``baseline``), weighted by the Shapley
    kernel (Captum samples the subset size from it; all-on and all-off get weight 10⁶).

    ``passes`` = Captum's ``n_samples``: forward passes per image, the first two all-on and
    all-off. Equals the Shapley values for a model linear over the superpixels once the samples
    span them. Needs k ≥ 2 superpixels per image (SLIC gives 1 on noise-like images).
    """
    _common_checks(n_segments, compactness, baseline, internal_batch_size, passes)
    masks = superpixels(x, n_segments, compactness)
    for i, mask in enumerate(masks):
        if int(mask.max()) < 1:  # Captum's subset-size distribution is 0/0 for one feature
            raise ValueError(f"kernel_shap needs at least 2 superpixels, SLIC found 1 in image "
                             f"{i} (a flat or noise-like image: raise n_segments or "
                             f"compactness)")
    method = KernelShap(model)

    def attribute(xi: Tensor, target: int, mask: Tensor, k: int) -> Tensor:
        return method.attribute(xi, baselines=float(baseline), target=target, feature_mask=mask,
                                n_samples=passes,
                                perturbations_per_eval=min(internal_batch_size, passes))

    return _per_image(x, y, masks, seed, attribute)


@register("lime", "captum",
          "LIME: locally weighted sparse linear fit over random superpixel subsets",
          requires="none")
def lime(model: nn.Module, x: Tensor, y: Tensor, n_segments: int = DEFAULT_SEGMENTS,
         compactness: float = DEFAULT_COMPACTNESS, baseline: float = 0.0,
         passes: int = DEFAULT_PASSES, seed: int = 0,
         internal_batch_size: int = DEFAULT_INTERNAL_BATCH) -> Tensor:
    """LIME (Captum ``Lime`` with its defaults; Ribeiro et al. 2016): the coefficients of a Lasso
    (α = 0.01) fitted to f_y(h(z)) over random binary z (each superpixel kept with probability
    1/2, else at ``baseline``), each sample weighted by exp(−d²/2), d the cosine distance between
    the perturbed and the original image.

    ``passes`` = Captum's ``n_samples``: forward passes per image. The Lasso shrinks every
    coefficient towards 0, so LIME is not exact even for a linear model.
    """
    _common_checks(n_segments, compactness, baseline, internal_batch_size, passes)
    method = Lime(model)

    def attribute(xi: Tensor, target: int, mask: Tensor, k: int) -> Tensor:
        return method.attribute(xi, baselines=float(baseline), target=target, feature_mask=mask,
                                n_samples=passes,
                                perturbations_per_eval=min(internal_batch_size, passes))

    return _per_image(x, y, superpixels(x, n_segments, compactness), seed, attribute)
