"""Perturbation metrics: region perturbation / pixel flipping (document 002, sections 2.2, 3.3),
AOPC (document 003, sections 2.2.1, 4.3) and the causal metrics deletion / insertion (Petsiuk,
Das & Saenko 2018, "RISE", section 4.1).

A perturbation metric is three swappable parts (STYLE.md): a **schedule** (which patches are
flipped by step t: a patch order from the attributions plus cumulative counts), a **fill** (what
replaces the flipped pixels) and a **scorer** (what is read from the model). The engine builds
the perturbed inputs of many (sample, step) pairs at once, runs them through the model in chunks
of the size measured fastest for the model and input shape (or bounded by an explicit
``memory_budget``), through a fused copy of the model where it equals the eager one, bf16 when
asked (:mod:`salbench.metrics.passes`), and computes the unperturbed forward pass once. No Python
loop over samples; the only loops are over chunks.

Fills: static fills (``gray``/constant, ``uniform`` noise, ``mean``, ``blur``) give one
replacement image per sample, computed once from the unperturbed input. Inpainting fills
(``inpaint-telea``, ``inpaint-fast``) depend on the mask of each step.

Repeated flipping (document 002, section 2.2: "previously perturbed regions should be flipped
repeatedly"): with ``repeated=True`` the input at step t is the fill of the *original* image with
the cumulative mask M_t (inpainting reads only unmasked pixels, so this equals re-inpainting the
current image with M_t); with ``repeated=False`` only the patches new at step t are filled, from
the current image x_{t−1}, and earlier fills stay (sequential over steps, batched over samples).
For static fills the two coincide (a flipped pixel always takes its replacement value).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salbench.metrics import registry as R
from salbench.metrics._checks import (
    ScoreFn,
    check_choice,
    check_model_inputs,
    reduce_channels,
    target_score,
)
from salbench.metrics._telea import inpaint_telea_parallel
from salbench.metrics.passes import PRECISIONS, ModelPasses

ORDERS = ("morf", "lrf", "random")
BLOCK_BYTES = 64 * 2**20  # perturbed images built (and handed to a fill) at once
AOPC_REGION_SIZES = (56, 28, 21, 16)  # region sizes for 224 px images (document 003, section 4.3)
AOPC_NOISE = ("per-image", "per-step")  # when AOPC's uniform noise is drawn (see aopc)
# Insertion's blurred start in the public RISE code (evaluation notebook: klen = 11, ksig = 5).
RISE_BLUR_KERNEL = 11
RISE_BLUR_SIGMA = 5.0


class PerturbationCurves(NamedTuple):
    """``scores`` ``[B]`` (AUC, or AOPC), ``curves`` ``[B, S+1]`` (model score after 0…S steps)
    and ``fractions`` ``[S+1]`` (share of patches flipped at each point, 0 … 1)."""

    scores: Tensor
    curves: Tensor
    fractions: Tensor


# ---------------------------------------------------------------- schedule


def step_counts(steps: str, n_patches: int) -> Tensor:
    """Cumulative numbers of flipped patches after each step, strictly increasing, ending at
    ``n_patches`` (the final point flips everything).

    ``linear:k``: k patches per step (k, 2k, …, n). ``log:N``: N geometrically spaced cumulative
    counts from 1 to n (rounded, duplicates dropped, so fewer than N when n is small): several
    flips per step, denser at the start (document 002, section 2.2). ``square``: k² patches after
    step k, i.e. step k flips 2k − 1 new ones (the public code of document 002: 28 steps for the
    784 8×8 patches of a 224 px image; NOTES.md).
    """
    kind, _, arg = steps.partition(":")
    if kind == "square" and not arg:
        k = math.isqrt(n_patches - 1) + 1
        counts = torch.arange(1, k + 1) ** 2
    elif kind in ("linear", "log") and arg.isdigit() and int(arg) >= 1:
        n = int(arg)
        if kind == "linear":
            counts = torch.arange(n, n_patches + n, n)
        else:
            counts = torch.from_numpy(np.unique(np.round(np.geomspace(1, n_patches, n)))).long()
    else:
        raise ValueError(f"steps must be 'linear:k', 'log:N' (k, N positive integers) or "
                         f"'square', got {steps!r}")
    return counts.clamp(max=n_patches).unique().long()


def patch_grid(height: int, width: int, patch: int) -> tuple[Tensor, int]:
    """Patch id of every pixel (row-major ``[H*W]``) for a grid of ``patch`` × ``patch`` patches
    starting at the top-left corner; when ``patch`` does not divide the image, the last row/column
    of patches is smaller (the ceil grid of average pooling). Returns (ids, number of patches)."""
    gh, gw = math.ceil(height / patch), math.ceil(width / patch)
    rows = torch.arange(height) // patch
    cols = torch.arange(width) // patch
    return (rows[:, None] * gw + cols[None, :]).flatten(), gh * gw


def patch_scores(s: Tensor, patch: int, aggregate: str = "sum") -> Tensor:
    """Patch relevance ``[B, P]`` from reduced maps ``[B, H, W]``: the sum (document 002,
    section 2.2) or the mean (average pooling, document 003, section 2.2.1) inside each patch."""
    check_choice(aggregate, "patch_score", ("sum", "mean"))
    ids, n = patch_grid(s.shape[-2], s.shape[-1], patch)
    ids = ids.to(s.device)
    total = torch.zeros(s.shape[0], n, dtype=s.dtype, device=s.device)
    total.index_add_(1, ids, s.flatten(1))
    if aggregate == "mean":
        total = total / torch.bincount(ids, minlength=n).to(s.dtype)
    return total


def patch_ranks(scores: Tensor, order: str, seed: int = 0) -> Tensor:
    """Position of every patch in the flipping order ``[B, P]`` (0 = flipped first).

    ``morf``: most relevant first; ``lrf``: least relevant first; ties keep the lower patch index
    first (stable sort). ``random``: a uniform permutation per sample from ``seed``.
    """
    check_choice(order, "order", ORDERS)
    if order == "random":
        g = torch.Generator().manual_seed(seed)
        keys = torch.rand(scores.shape, generator=g).to(scores.device)
        perm = torch.argsort(keys, dim=1)
    else:
        perm = torch.sort(scores, dim=1, descending=order == "morf", stable=True).indices
    ranks = torch.empty_like(perm)
    ranks.scatter_(1, perm, torch.arange(perm.shape[1], device=perm.device).expand_as(perm))
    return ranks


# ---------------------------------------------------------------- fills


class Fill(Protocol):
    """Replacement values for flipped pixels. Static fills (``mask_dependent = False``) are called
    once with the unperturbed images ``[B, C, H, W]`` and ``mask=None``; inpainting fills are
    called with images ``[N, C, H, W]`` and boolean masks ``[N, 1, H, W]`` (true = to fill)."""

    mask_dependent: bool

    def __call__(self, x: Tensor, mask: Tensor | None) -> Tensor: ...


@dataclass(frozen=True)
class ConstantFill:
    """A constant (``gray`` = midpoint of the input range, document 002, section 2.2)."""

    value: float
    mask_dependent = False

    def __call__(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return torch.full_like(x, self.value)


@dataclass(frozen=True)
class UniformFill:
    """Uniform noise in [low, high), independent per pixel and channel, drawn once per image from
    ``seed`` (each flipped pixel keeps its value; document 003's public code draws once per
    image)."""

    low: float
    high: float
    seed: int = 0
    mask_dependent = False

    def __call__(self, x: Tensor, mask: Tensor | None) -> Tensor:
        g = torch.Generator().manual_seed(self.seed)
        noise = torch.rand(x.shape, generator=g, dtype=torch.float64)
        return (self.low + (self.high - self.low) * noise).to(x.dtype).to(x.device)


@dataclass(frozen=True)
class MeanFill:
    """The per-sample, per-channel mean of the unperturbed image."""

    mask_dependent = False

    def __call__(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return x.mean((2, 3), keepdim=True).expand_as(x).clone()


@dataclass(frozen=True)
class BlurFill:
    """The unperturbed image blurred by a Gaussian of ``sigma`` pixels (truncated to a ``kernel``
    × ``kernel`` window, odd; default 2·⌈3σ⌉ + 1; at most the image size), reflect padding."""

    sigma: float = 5.0
    kernel: int | None = None
    mask_dependent = False

    def __post_init__(self) -> None:
        if self.kernel is not None and (not isinstance(self.kernel, int) or self.kernel < 1
                                        or self.kernel % 2 == 0):
            raise ValueError(f"kernel must be an odd positive integer or None, got "
                             f"{self.kernel!r}")

    def __call__(self, x: Tensor, mask: Tensor | None) -> Tensor:
        from torchvision.transforms.functional import gaussian_blur

        k = self.kernel or 2 * math.ceil(3 * self.sigma) + 1
        k = min(k, 2 * ((min(x.shape[-2:]) - 1) // 2) + 1)
        return gaussian_blur(x, [k, k], [self.sigma, self.sigma])


@dataclass(frozen=True)
class TeleaFill:
    """OpenCV Telea inpainting (document 002, section 2.2.1), each channel as a float32 image,
    run over ``workers`` threads (default: all CPU cores; 1 = in this thread)."""

    radius: float = 3.0
    workers: int | None = None
    mask_dependent = True

    def __call__(self, x: Tensor, mask: Tensor | None) -> Tensor:
        images = np.ascontiguousarray(x.detach().float().cpu().numpy())
        masks = mask[:, 0].cpu().numpy()
        out = inpaint_telea_parallel(images, masks, self.radius,
                                     self.workers or os.cpu_count() or 1)
        return torch.from_numpy(out).to(x.device, x.dtype)


def _halve(t: Tensor) -> Tensor:
    """2×2 average pooling of even-sized maps by strided sums (about 10× faster than
    ``F.avg_pool2d`` on CPU)."""
    rows = t[..., ::2, :] + t[..., 1::2, :]
    return (rows[..., ::2] + rows[..., 1::2]) * 0.25


def fast_inpaint(x: Tensor, mask: Tensor, smoothing: int = 0) -> Tensor:
    """Batched pull–push inpainting on any device: ``x`` ``[N, C, H, W]``, ``mask`` ``[N, 1, H, W]``
    (true = unknown). Pull: halve the image repeatedly, averaging the known values and the known
    share w. Push: from the coarsest level up, each level is w·(mean of known) + (1 − w)·(bilinear
    upsampling of the coarser level; nearest at the last, full-resolution step); at full
    resolution known pixels keep their values and holes get a smooth interpolation of their
    surroundings. ``smoothing`` extra Jacobi (3×3 mean) sweeps
    inside the holes. Cost: about 3 image-sized passes per image, no per-pixel front marching."""
    w = (~mask).to(x.dtype)
    v = x * w
    levels = []
    while True:
        levels.append((v, w))
        h, wd = v.shape[-2:]
        if h == 1 and wd == 1:
            break
        if h % 2 or wd % 2:
            v, w = F.pad(v, (0, wd % 2, 0, h % 2)), F.pad(w, (0, wd % 2, 0, h % 2))
        v, w = _halve(v), _halve(w)
    v, w = levels[-1]
    est = v / w.clamp_min(1e-12)
    for level, (v, w) in reversed(list(enumerate(levels[:-1]))):
        # bilinear upsampling, except nearest at full resolution (2×2 blocks inside the holes;
        # bilinear there costs about 15× more on CPU and dominated the whole fill)
        mode = "nearest" if level == 0 else "bilinear"
        up = F.interpolate(est, size=v.shape[-2:], mode=mode,
                           align_corners=None if level == 0 else False)
        est = torch.addcmul(v, 1 - w, up)  # w·mean(known) + (1 − w)·coarser estimate
    if smoothing:
        hole = mask.expand_as(x)
        for _ in range(smoothing):
            blur = F.avg_pool2d(F.pad(est, (1, 1, 1, 1), mode="replicate"), 3, 1)
            est = torch.where(hole, blur, est)
    return est


@dataclass(frozen=True)
class FastInpaintFill:
    """:func:`fast_inpaint` as a fill (batched torch, runs on the tensors' device)."""

    smoothing: int = 0
    block: int = 16  # images per call: small blocks stay in cache (about 2× faster on CPU)
    mask_dependent = True

    def __call__(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return torch.cat([fast_inpaint(x[i:i + self.block], mask[i:i + self.block], self.smoothing)
                          for i in range(0, len(x), self.block)])


@dataclass(frozen=True)
class ImageFill:
    """Given replacement values ``[B, C, H, W]`` (a static fill; e.g. :func:`step_noise`, or the
    original images when :func:`insertion` perturbs its blurred start)."""

    values: Tensor
    mask_dependent = False

    def __call__(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.values.to(x.device, x.dtype)


def step_noise(ranks: Tensor, shape: tuple[int, ...], region: int, low: float, high: float,
               seed: int = 0) -> Tensor:
    """AOPC's uniform noise "re-sampled" at every perturbation step (document 003, section 4.3;
    the first version of its public code, ``morf_old.py``): at step k each image draws a fresh
    ``region`` × ``region`` patch of U[low, high) per channel for its k-th region (``ranks``
    ``[B, P]``, 0 = first; the patch is cropped at the border), and a perturbed region keeps its
    noise (x⁽ᵏ⁾ = g(x⁽ᵏ⁻¹⁾, r_k)). Returns the replacement image ``[B, C, H, W]``. The patches are
    drawn step-major, ``rand(P, B, C, region, region)`` from ``seed``, whatever the chunking."""
    b, c, h, w = shape
    gh, gw = math.ceil(h / region), math.ceil(w / region)
    g = torch.Generator().manual_seed(seed)
    draws = torch.rand(gh * gw, b, c, region, region, generator=g, dtype=torch.float64)
    patches = draws[ranks.cpu(), torch.arange(b)[:, None]]  # [B, P, C, r, r]: draw of its step
    image = patches.view(b, gh, gw, c, region, region).permute(0, 3, 1, 4, 2, 5)
    image = image.reshape(b, c, gh * region, gw * region)[..., :h, :w]
    return low + (high - low) * image


FILLS = ("gray", "uniform", "mean", "blur", "blur-rise", "inpaint-telea", "inpaint-fast")


def make_fill(fill: str | float | Fill, input_range: tuple[float, float], seed: int = 0) -> Fill:
    """Fill from a name: ``gray`` (midpoint of ``input_range``), ``uniform`` (noise over
    ``input_range``), ``mean``, ``blur`` (σ 5), ``blur-rise`` (σ 5 in an 11 × 11 kernel: RISE's
    insertion σ and window), ``inpaint-telea``, ``inpaint-fast``; a number is a constant; a
    :class:`Fill` object passes through."""
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        return ConstantFill(float(fill))
    if not isinstance(fill, str):
        if not callable(fill) or not hasattr(fill, "mask_dependent"):
            raise TypeError(f"fill must be one of {FILLS}, a number or a Fill, got {fill!r}")
        return fill
    check_choice(fill, "fill", FILLS)
    lo, hi = input_range
    return {"gray": lambda: ConstantFill((lo + hi) / 2),
            "uniform": lambda: UniformFill(lo, hi, seed),
            "mean": MeanFill, "blur": BlurFill,
            "blur-rise": lambda: BlurFill(RISE_BLUR_SIGMA, RISE_BLUR_KERNEL),
            "inpaint-telea": TeleaFill,
            "inpaint-fast": FastInpaintFill}[fill]()


# ---------------------------------------------------------------- engine


def perturbation_curves(model: nn.Module, x: Tensor, y: Tensor, ranks: Tensor, counts: Tensor,
                        fill: Fill, patch: int, *, repeated: bool = True,
                        final_value: float | None = None, scorer: ScoreFn,
                        memory_budget: int | None = None, precision: str = "fp32") -> Tensor:
    """The engine: model scores ``[B, S+1]`` as patches are flipped in the order ``ranks``
    ``[B, P]`` (0 = first), ``counts[t]`` patches after step t+1; point 0 is the unperturbed
    input. ``final_value``: the last step's input is that constant everywhere (the thesis's last
    step fully gray). The passes (chunk size, fused copy, ``precision``): :mod:`.passes`."""
    b, c, h, w = x.shape
    ids, _ = patch_grid(h, w, patch)
    rank_pix = ranks[:, ids.to(ranks.device)].view(b, 1, h, w)
    counts = counts.to(x.device)
    n_steps = len(counts)
    passes = ModelPasses(model, x, scorer, memory_budget, precision)
    curves = torch.empty(b, n_steps + 1, dtype=torch.float32, device=x.device)
    curves[:, 0] = passes(x, y).float()
    # Perturbed inputs are built in blocks of many images into one reused buffer (one worker pool
    # or batched call per inpainting block); the model sees chunks.
    block = max(passes.largest_chunk, BLOCK_BYTES // (x[0].numel() * x.element_size()))

    def forward(xp: Tensor, rows: Tensor, cols: Tensor) -> None:
        curves[rows, cols] = passes(xp, y[rows]).float()

    if repeated or not fill.mask_dependent:
        # static fills: each image's rows of a block in one broadcast `where`, no gathers (a
        # constant as a 0-dim tensor); inpainting fills see the gathered block and its masks
        static = None if fill.mask_dependent else (
            torch.tensor(fill.value, dtype=x.dtype, device=x.device)
            if isinstance(fill, ConstantFill) else fill(x, None))
        total = b * n_steps
        buffer = torch.empty((min(block, total), c, h, w), dtype=x.dtype, device=x.device)
        for start in range(0, total, block):
            stop = min(start + block, total)
            idx = torch.arange(start, stop, device=x.device)
            bi, ti = idx // n_steps, idx % n_steps
            xp = buffer[:stop - start]
            if static is None:
                torch.index_select(x, 0, bi, out=xp)
                flip = rank_pix[bi] < counts[ti].view(-1, 1, 1, 1)
                torch.where(flip, fill(xp, flip), xp, out=xp)
            else:
                for i in range(start // n_steps, (stop - 1) // n_steps + 1):
                    first, last = max(start, i * n_steps), min(stop, (i + 1) * n_steps)
                    flip = rank_pix[i] < counts[first - i * n_steps:last - i * n_steps].view(
                        -1, 1, 1, 1)
                    torch.where(flip, static if static.ndim == 0 else static[i], x[i],
                                out=xp[first - start:last - start])
            if final_value is not None:
                xp[ti == n_steps - 1] = final_value
            forward(xp, bi, ti + 1)
        return curves
    current = x.clone()
    previous = 0
    samples = torch.arange(b, device=x.device)
    for t in range(n_steps):
        new = (rank_pix >= previous) & (rank_pix < counts[t])
        previous = int(counts[t])
        for start in range(0, b, block):
            sl = slice(start, start + block)
            current[sl] = torch.where(new[sl], fill(current[sl], new[sl]), current[sl])
        xp = torch.full_like(current, final_value) if (
            final_value is not None and t == n_steps - 1) else current
        forward(xp, samples, torch.full_like(samples, t + 1))
    return curves


def area_under_curve(curves: Tensor, fractions: Tensor) -> Tensor:
    """Trapezoid area under each curve ``[B, S+1]`` over ``fractions`` ``[S+1]`` in [0, 1]."""
    dx = (fractions[1:] - fractions[:-1]).to(curves)
    return ((curves[:, 1:] + curves[:, :-1]) / 2 * dx).sum(1)


def _check_range(input_range: object) -> tuple[float, float]:
    """``input_range`` = (low, high) of the model's inputs, low < high (shared by every metric
    that fills or rescales inputs)."""
    try:
        lo, hi = (float(v) for v in input_range)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"input_range must be (low, high), got {input_range!r}") from None
    if not hi > lo:
        raise ValueError(f"input_range must be (low, high) with high > low, got {input_range!r}")
    return lo, hi


def region_perturbation(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *, patch: int = 8,
                        order: str = "morf", fill: str | float | Fill = "gray",
                        steps: str = "square", input_range: tuple[float, float] = (0.0, 1.0),
                        reduce: str = "sum", patch_score: str = "sum", repeated: bool = True,
                        last_step_gray: bool = False, score: str | ScoreFn = "logit",
                        seed: int = 0, memory_budget: int | None = None,
                        precision: str = "fp32") -> PerturbationCurves:
    """Region perturbation (document 002, sections 2.2 and 3.3); pixel flipping when ``patch=1``.

    ``a`` ``[B, C|1, H, W]`` is reduced over channels by ``reduce``; patches (``patch`` × ``patch``,
    non-overlapping, a smaller last row/column when ``patch`` does not divide the image) are
    scored by the ``sum`` (or ``mean``) of the reduced map inside them and flipped in ``order``
    (``morf``, ``lrf``, ``random`` from ``seed``) on the ``steps`` schedule (:func:`step_counts`;
    default ``square``, document 002's k² patches after step k: √P steps for P patches), all
    channels of a flipped pixel together. ``fill``: see :func:`make_fill` (``gray`` is the
    midpoint of ``input_range``). ``repeated``: re-fill earlier patches at every step (module
    docstring). ``last_step_gray``: the last point is the all-gray image, whatever the fill.
    ``score``: ``logit`` or ``probability`` of class ``y``, or a callable ``(outputs, y) -> [N]``.

    Returns curves ``[B, S+1]`` (point 0 unperturbed, the last all patches flipped), the
    flipped-patch fractions ``[S+1]`` and ``scores`` = AUC, the trapezoid area under the curve
    over the fraction in [0, 1] (lower is better for MoRF). The model is used as given (call
    ``model.eval()`` first); no gradients are taken. ``memory_budget``: bytes of inputs plus
    activations per model call (default ``None``: the chunk size measured fastest for this model,
    cached). ``precision``: ``fp32``, or ``bf16`` weights (faster, curves not equal to
    fp32's: measured distances in :mod:`salbench.metrics.passes`).
    """
    check_model_inputs(model, x, y, a)
    if not isinstance(patch, int) or not 1 <= patch <= min(x.shape[-2:]):
        raise ValueError(f"patch must be an integer side length in [1, {min(x.shape[-2:])}], "
                         f"got {patch!r}")
    check_choice(precision, "precision", PRECISIONS)
    lo, hi = _check_range(input_range)
    fill_fn = make_fill(fill, input_range, seed)
    with torch.inference_mode():
        s = reduce_channels(a, reduce)
        scores = patch_scores(s, patch, patch_score)
        counts = step_counts(steps, scores.shape[1])
        ranks = patch_ranks(scores, order, seed)
        curves = perturbation_curves(model, x, y, ranks, counts, fill_fn, patch, repeated=repeated,
                                     final_value=(lo + hi) / 2 if last_step_gray else None,
                                     scorer=target_score(score), memory_budget=memory_budget,
                                     precision=precision)
        fractions = torch.cat([torch.zeros(1), counts.cpu().double() / scores.shape[1]])
        return PerturbationCurves(area_under_curve(curves, fractions), curves, fractions)


def pixel_flipping(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *, order: str = "morf",
                   fill: str | float | Fill = "gray", steps: str = "square",
                   input_range: tuple[float, float] = (0.0, 1.0), reduce: str = "sum",
                   repeated: bool = True, last_step_gray: bool = False,
                   score: str | ScoreFn = "logit", seed: int = 0,
                   memory_budget: int | None = None, precision: str = "fp32") -> PerturbationCurves:
    """Pixel flipping (Bach et al. 2015): :func:`region_perturbation` with ``patch=1`` (the
    ``square`` schedule flips k² pixels after step k: H steps for an H × H image)."""
    return region_perturbation(model, x, y, a, patch=1, order=order, fill=fill, steps=steps,
                               input_range=input_range, reduce=reduce, repeated=repeated,
                               last_step_gray=last_step_gray, score=score, seed=seed,
                               memory_budget=memory_budget, precision=precision)


def aopc(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *, region: int = 16,
         fill: str | float | Fill = "uniform", input_range: tuple[float, float] = (-1.0, 1.0),
         steps: int | None = None, reduce: str = "sum", score: str | ScoreFn = "probability",
         seed: int = 0, memory_budget: int | None = None,
         noise: str = "per-image", precision: str = "fp32") -> PerturbationCurves:
    """AOPC of document 003 (section 2.2.1, eq. 7; settings of section 4.3).

    The map is average-pooled to ``region`` × ``region`` regions (56, 28, 21, 16 for 224 px give
    4×4, 8×8, 11×11, 14×14 heatmaps), regions are perturbed most relevant first, cumulatively
    (x⁽ᵏ⁾ = g(x⁽ᵏ⁻¹⁾, r_k)), with uniform noise over ``input_range`` (document 003: [−1, 1]).
    ``noise`` (``fill="uniform"`` only): ``per-image`` draws one noise image per image, each
    region taking its part (NOTES.md: the current public code); ``per-step`` draws a fresh
    patch at every step, as the document's text says (:func:`step_noise`). Either way each
    perturbed pixel gets one U draw, so the two agree in distribution; only the random numbers
    differ. f is the class probability of ``y``. Per sample
    AOPC = 1/(L+1) Σ_{k=1}^{L} [f(x⁰) − f(xᵏ)], L = ``steps`` (default: all regions).
    The document averages over the correctly classified test images: select those before
    averaging the returned per-sample scores. ``memory_budget``, ``precision``: as
    :func:`region_perturbation`.
    """
    check_model_inputs(model, x, y, a)
    if not isinstance(region, int) or not 1 <= region <= min(x.shape[-2:]):
        raise ValueError(f"region must be an integer side length in [1, {min(x.shape[-2:])}], "
                         f"got {region!r}")
    check_choice(noise, "noise", AOPC_NOISE)
    check_choice(precision, "precision", PRECISIONS)
    if noise == "per-step" and fill != "uniform":
        raise ValueError(f"noise='per-step' re-samples the uniform fill; it needs "
                         f"fill='uniform', got {fill!r}")
    lo, hi = _check_range(input_range)
    fill_fn = make_fill(fill, (lo, hi), seed)
    with torch.inference_mode():
        s = reduce_channels(a, reduce)
        scores = patch_scores(s, region, "mean")
        n_regions = scores.shape[1]
        if steps is not None and (not isinstance(steps, int) or not 1 <= steps <= n_regions):
            raise ValueError(f"steps must be an integer in [1, {n_regions}], got {steps!r}")
        counts = torch.arange(1, (steps or n_regions) + 1)
        ranks = patch_ranks(scores, "morf")
        if noise == "per-step":
            fill_fn = ImageFill(step_noise(ranks, tuple(x.shape), region, lo, hi, seed))
        curves = perturbation_curves(model, x, y, ranks, counts, fill_fn, region, repeated=False,
                                     scorer=target_score(score), memory_budget=memory_budget,
                                     precision=precision)
        n = len(counts)
        value = (curves[:, :1] - curves[:, 1:]).sum(1) / (n + 1)
        fractions = torch.cat([torch.zeros(1), counts.double() / n_regions])
        return PerturbationCurves(value, curves, fractions)


def _rise_steps(steps: str | None, x: Tensor) -> str:
    """The schedule of :func:`deletion` / :func:`insertion`: ``steps`` as given (a
    :func:`step_counts` string), or for ``None`` ``linear:W``: W pixels (one image row's worth)
    per step, H steps (RISE's code: 224 pixels per step at 224 × 224). Checked here, before
    any work."""
    if steps is None:
        steps = f"linear:{x.shape[-1]}"
    if not isinstance(steps, str):
        raise ValueError(f"steps must be None, 'linear:k', 'log:N' or 'square', got {steps!r}")
    step_counts(steps, x.shape[-2] * x.shape[-1])
    return steps


def deletion(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *, steps: str | None = None,
             fill: str | float | Fill = 0.0, input_range: tuple[float, float] = (0.0, 1.0),
             reduce: str = "sum", score: str | ScoreFn = "probability",
             memory_budget: int | None = None, precision: str = "fp32") -> PerturbationCurves:
    """Deletion (Petsiuk, Das & Saenko 2018, "RISE", section 4.1, causal metrics).

    Pixels are removed most relevant first (the map ``a`` reduced over channels by ``reduce``;
    ties: lower pixel index first), all channels of a pixel together, replaced by ``fill``
    (default the constant 0.0 in the model's input space: RISE's ``torch.zeros_like``, black for
    inputs in [0, 1], the mean colour for mean/std-normalised ones; any :func:`make_fill` fill).
    With p_t = softmax(f(x_t))_y the class probability after a fraction φ_t of the pixels is
    removed (φ_0 = 0: the image itself, φ_S = 1: all pixels removed),
    deletion = ∫₀¹ p dφ ≈ Σ_t (φ_{t+1} − φ_t)(p_t + p_{t+1})/2 (trapezoid), in [0, 1]; lower is
    better (the probability should fall fast). ``steps``: a :func:`step_counts` string over the
    H·W pixels; ``None`` (default) is ``linear:W``, W pixels (one row's worth) per step, H steps
    (RISE's code: 224 pixels per step at 224 × 224). :func:`region_perturbation` with
    ``patch=1``, ``order="morf"``; ``score``, ``memory_budget``, ``precision`` as there. Returns
    :class:`PerturbationCurves` (curves ``[B, S+1]``, H + 1 forward passes per sample).
    """
    check_model_inputs(model, x, y, a)
    return region_perturbation(model, x, y, a, patch=1, order="morf", fill=fill,
                               steps=_rise_steps(steps, x), input_range=input_range,
                               reduce=reduce, score=score, memory_budget=memory_budget,
                               precision=precision)


def insertion(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *, steps: str | None = None,
              start: str | float | Fill = "blur-rise",
              input_range: tuple[float, float] = (0.0, 1.0), reduce: str = "sum",
              score: str | ScoreFn = "probability", memory_budget: int | None = None,
              precision: str = "fp32") -> PerturbationCurves:
    """Insertion (Petsiuk, Das & Saenko 2018, "RISE", section 4.1, causal metrics).

    The canvas starts as ``start`` (default ``"blur-rise"``: the image blurred by a Gaussian of
    σ = 5 truncated to 11 × 11, RISE's σ and window but not its kernel, which folds the tails
    back and zero-pads: docs/metrics.md; any static :func:`make_fill` fill, e.g. ``0.0``; a name
    or number keeps the recorded parameters serialisable) and the original pixels are inserted
    most relevant first (``a`` reduced by ``reduce``; ties: lower pixel index first). With
    p_t = softmax(f(x_t))_y after a fraction φ_t of the pixels is inserted (φ_0 = 0: the blurred
    image, φ_S = 1: the original image), insertion = ∫₀¹ p dφ (trapezoid, as
    :func:`deletion`); higher is better. The engine perturbs the start towards the original:
    :func:`region_perturbation` on the canvas with ``patch=1``, ``order="morf"`` and
    :class:`ImageFill` of ``x``. ``steps``, ``score``, ``memory_budget``, ``precision``: as
    :func:`deletion`.
    """
    check_model_inputs(model, x, y, a)
    steps = _rise_steps(steps, x)
    start_fn = make_fill(start, _check_range(input_range))
    if start_fn.mask_dependent:
        raise ValueError(f"start must be a static fill (one image per sample), got {start!r}")
    check_choice(precision, "precision", PRECISIONS)
    with torch.inference_mode():
        canvas = start_fn(x, None)
    return region_perturbation(model, canvas, y, a, patch=1, order="morf", fill=ImageFill(x),
                               steps=steps, input_range=input_range, reduce=reduce, score=score,
                               memory_budget=memory_budget, precision=precision)


def _auc_direction(params: Mapping[str, Any]) -> str:
    """MoRF: lower is better (the score should fall fast); LRF: higher; random: ranks nothing."""
    return {"morf": "lower", "lrf": "higher"}.get(params["order"], "none")


def _curve_result(raw: PerturbationCurves, params: Mapping[str, Any], output: str,
                  x_name: str) -> tuple[dict, dict, dict]:
    curve = R.Curve(raw.fractions.double(), raw.curves.double().cpu(), x_name)
    return {output: raw.scores}, {"score": curve}, {}


def _steps_cost(params: Mapping[str, Any], shape: tuple[int, int, int], model=None) -> R.Cost:
    patch = params.get("patch", 1)
    n = math.ceil(shape[1] / patch) * math.ceil(shape[2] / patch)
    return R.Cost(forward=len(step_counts(params["steps"], n)) + 1)


def _aopc_cost(params: Mapping[str, Any], shape: tuple[int, int, int], model=None) -> R.Cost:
    n = math.ceil(shape[1] / params["region"]) * math.ceil(shape[2] / params["region"])
    return R.Cost(forward=(params["steps"] or n) + 1)


def _rise_cost(params: Mapping[str, Any], shape: tuple[int, int, int], model=None) -> R.Cost:
    steps = params["steps"] or f"linear:{shape[2]}"
    return R.Cost(forward=len(step_counts(steps, shape[1] * shape[2])) + 1)


def _auc_range(params: Mapping[str, Any]) -> tuple[float, float]:
    return R.UNIT if params["score"] == "probability" else R.UNBOUNDED


for _name, _fn, _source in (
        ("region_perturbation", region_perturbation, "document 002, sections 2.2 and 3.3"),
        ("pixel_flipping", pixel_flipping, "Bach et al. 2015; document 002, section 2.2")):
    R.register(_name, kind="model", function=_fn,
               outputs=[R.Output("auc", _auc_direction, _auc_range,
                                 "area under the model-score curve over the flipped fraction")],
               curves=["score"], cost=_steps_cost, source=_source,
               adapt=lambda raw, p: _curve_result(raw, p, "auc", "fraction flipped"),
               summary="model score as the most (MoRF) or least (LRF) relevant patches are "
                       "replaced")
R.register("aopc", kind="model", function=aopc,
           outputs=[R.Output("aopc", "higher", lambda p: (-1.0, 1.0) if p["score"] ==
                             "probability" else R.UNBOUNDED,
                             "mean drop of the class probability as regions are perturbed, "
                             "most relevant first")],
           curves=["score"], cost=_aopc_cost, source="document 003, sections 2.2.1 and 4.3",
           adapt=lambda raw, p: _curve_result(raw, p, "aopc", "fraction perturbed"),
           summary="area over the MoRF perturbation curve")
for _name, _fn, _direction, _done, _summary in (
        ("deletion", deletion, "lower", "removed",
         "class probability as the most relevant pixels are replaced by 0 (or another fill)"),
        ("insertion", insertion, "higher", "inserted",
         "class probability as the most relevant pixels are inserted into a blurred copy")):
    R.register(_name, kind="model", function=_fn,
               outputs=[R.Output(_name, _direction, _auc_range,
                                 f"area under the class-probability curve over the fraction of "
                                 f"pixels {_done}, most relevant first")],
               curves=["score"], cost=_rise_cost,
               source="Petsiuk, Das & Saenko 2018 (RISE), section 4.1",
               adapt=lambda raw, p, _out=_name, _x=f"fraction {_done}": _curve_result(
                   raw, p, _out, _x),
               summary=_summary)
