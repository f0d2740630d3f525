"""Iterative removal metrics: IROF (Rieger & Hansen 2020, "IROF: a low resource evaluation metric
for explanation methods", arXiv:2003.08747, the section defining IROF) and Selectivity (Montavon,
Samek & Müller 2018, "Methods for interpreting and understanding deep neural networks", Digital
Signal Processing 73, section "Quantifying explanation quality", "Explanation selectivity").
Section numbers are not given: they could not be checked against the papers here.

Both remove regions of the image most relevant first and read the class probability after each
removal; they differ in the regions (SLIC superpixels ranked by their mean relevance vs. a grid of
square patches ranked by their summed relevance) and in the score (area over the curve of
p_t / p_0 vs. area under the curve of p_t). Both run on salbench's perturbation engine
(:func:`~salbench.metrics.perturbation.perturbation_curves`): the region of every pixel becomes
that pixel's rank, so one engine call flips whole regions step by step, batched over samples and
steps. Quantus (``quantus.IROF``, ``quantus.Selectivity``) is the oracle; the mapping to its
numbers is in ``docs/metrics.md`` and ``tests/metrics/test_irof_selectivity.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from salbench.explain.perturbation_methods import DEFAULT_COMPACTNESS, DEFAULT_SEGMENTS, superpixels
from salbench.metrics import registry as R
from salbench.metrics._checks import (
    ScoreFn,
    check_choice,
    check_model_inputs,
    reduce_channels,
    target_score,
)
from salbench.metrics.passes import PRECISIONS
from salbench.metrics.perturbation import (
    Fill,
    PerturbationCurves,
    _check_range,
    area_under_curve,
    make_fill,
    patch_ranks,
    perturbation_curves,
)

SELECTIVITY_PATCH = 8  # patch side, Quantus's default


class IROFCurves(NamedTuple):
    """``scores`` ``[B]`` (IROF), ``curves`` ``[B, K+1]`` (p_t / p_0 after t superpixels are
    removed, K = the most superpixels of any sample; NaN past a sample's own count) and
    ``n_segments`` ``[B]`` (superpixels of each sample)."""

    scores: Tensor
    curves: Tensor
    n_segments: Tensor


@dataclass(frozen=True)
class MinFill:
    """``black`` in Quantus: the per-sample minimum of the unperturbed image over all channels
    and pixels (its darkest value, not a fixed 0)."""

    mask_dependent = False

    def __call__(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return x.amin((1, 2, 3), keepdim=True).expand_as(x).clone()


def removal_fill(fill: str | float | Fill, input_range: tuple[float, float], seed: int = 0
                 ) -> Fill:
    """``black`` (:class:`MinFill`) or any :func:`~salbench.metrics.perturbation.make_fill` fill."""
    return MinFill() if fill == "black" else make_fill(fill, input_range, seed)


# ---------------------------------------------------------------- regions -> pixel ranks


def consecutive_labels(segments: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample labels ``[B, N]`` (any non-negative integers) renumbered 0..K_b−1 in label
    order, batched; returns (labels ``[B, N]``, K ``[B]``)."""
    present = torch.zeros(segments.shape[0], int(segments.max()) + 1, dtype=torch.long,
                          device=segments.device)
    present.scatter_(1, segments, 1)
    new = present.cumsum(1) - 1
    return new.gather(1, segments), present.sum(1)


def region_pixel_ranks(s: Tensor, labels: Tensor, n_regions: Tensor, aggregate: str) -> Tensor:
    """Rank of each pixel's region in the removal order ``[B, N]`` (0 = removed first): regions
    (``labels`` ``[B, N]``, 0..K_b−1) ordered by the ``mean`` or ``sum`` of the reduced map ``s``
    ``[B, H, W]`` inside them, most relevant first; ties: lower label first (stable sort)."""
    b, k = labels.shape[0], int(n_regions.max())
    total = torch.zeros(b, k, dtype=torch.float64, device=s.device)
    total.scatter_add_(1, labels, s.flatten(1).double())
    if aggregate == "mean":
        size = torch.zeros_like(total).scatter_add_(1, labels, torch.ones_like(total[:, :1])
                                                    .expand_as(labels))
        total = total / size.clamp_min(1)
    absent = torch.arange(k, device=s.device) >= n_regions[:, None]
    total = total.masked_fill(absent, -math.inf)  # labels a sample lacks rank last
    return patch_ranks(total, "morf").gather(1, labels)


def centred_patch_labels(height: int, width: int, patch: int) -> Tensor:
    """Patch label of every pixel (row-major ``[H*W]``) for a grid of ``patch`` × ``patch``
    patches centred on the image: when ``patch`` does not divide a side, the grid overhangs by
    ⌊r/2⌋ before and ⌈r/2⌉ after it (r = the missing pixels), so the border patches are cut on
    both sides (Quantus pads this way; ⌈H/patch⌉ · ⌈W/patch⌉ patches)."""
    def rows(n: int) -> tuple[Tensor, int]:
        before = (-n % patch) // 2
        return (torch.arange(n) + before) // patch, math.ceil(n / patch)

    r, _ = rows(height)
    c, gw = rows(width)
    return (r[:, None] * gw + c[None, :]).flatten()


# ---------------------------------------------------------------- IROF


def irof(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *, segments: Tensor | None = None,
         n_segments: int = DEFAULT_SEGMENTS, compactness: float = DEFAULT_COMPACTNESS,
         fill: str | float | Fill = "mean", input_range: tuple[float, float] = (0.0, 1.0),
         reduce: str = "sum", seed: int = 0, memory_budget: int | None = None,
         precision: str = "fp32") -> IROFCurves:
    """IROF, Iterative Removal Of Features (Rieger & Hansen 2020, arXiv:2003.08747).

    The image is cut into K superpixels (``segments`` ``[B, 1, H, W]`` or ``[B, H, W]``,
    integer labels per sample; default: :func:`~salbench.explain.perturbation_methods.superpixels`,
    SLIC with ``n_segments`` and ``compactness``), ranked by the mean of the map ``a`` (reduced
    over channels by ``reduce``) inside them and removed most relevant first, one per step,
    cumulatively, each replaced by ``fill`` (default ``mean``: the per-sample, per-channel mean of
    the unperturbed image; ``black``: the image's minimum; any :func:`make_fill` fill). With
    r_t = p_t / p_0, p_t the class probability of ``y`` after t superpixels are removed,
    IROF = 1 − (1/K) Σ_{t=0}^{K−1} (r_t + r_{t+1}) / 2, the area over the curve of r over the
    removed fraction t/K (trapezoid), at most 1; higher is better (the probability falls fast).

    Batched over samples and steps: every sample runs max_b K_b steps (a sample with fewer
    superpixels repeats its fully removed image), i.e. max_b K_b + 1 forward passes per sample.
    ``memory_budget``, ``precision``: as :func:`~salbench.metrics.perturbation.region_perturbation`.
    """
    check_model_inputs(model, x, y, a)
    check_choice(precision, "precision", PRECISIONS)
    fill_fn = removal_fill(fill, _check_range(input_range), seed)
    if segments is None:
        segments = superpixels(x, n_segments, compactness)
    labels = _check_segments(segments, x)
    with torch.inference_mode():
        labels, k = consecutive_labels(labels.flatten(1).to(x.device))
        ranks = region_pixel_ranks(reduce_channels(a, reduce), labels, k, "mean")
        counts = torch.arange(1, int(k.max()) + 1)
        p = perturbation_curves(model, x, y, ranks, counts, fill_fn, 1, repeated=False,
                                scorer=target_score("probability"), memory_budget=memory_budget,
                                precision=precision).double()
        r = p / p[:, :1]
        steps = torch.arange(len(counts) + 1, device=r.device)
        r = r.masked_fill(steps > k[:, None], math.nan)
        inside = steps[:-1] < k[:, None]
        trapezoids = torch.where(inside, (r[:, 1:] + r[:, :-1]) / 2, 0.0)
        return IROFCurves(1 - trapezoids.sum(1) / k, r, k)


def _check_segments(segments: object, x: Tensor) -> Tensor:
    if not isinstance(segments, Tensor) or segments.is_floating_point() or (
            segments.dtype == torch.bool):
        raise TypeError(f"segments must be an integer tensor of superpixel labels [B, 1, H, W], "
                        f"got {getattr(segments, 'dtype', type(segments).__name__)}")
    if segments.ndim == 4 and segments.shape[1] == 1:
        segments = segments[:, 0]
    b, _, h, w = x.shape
    if tuple(segments.shape) != (b, h, w):
        raise ValueError(f"segments must be [B, 1, H, W] = [{b}, 1, {h}, {w}] (or [B, H, W]), "
                         f"got shape {tuple(segments.shape)}")
    if bool((segments < 0).any()):
        raise ValueError("segments must hold non-negative labels")
    return segments.long()


# ---------------------------------------------------------------- Selectivity


def selectivity(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *,
                patch: int = SELECTIVITY_PATCH, fill: str | float | Fill = "black",
                input_range: tuple[float, float] = (0.0, 1.0), reduce: str = "sum",
                score: str | ScoreFn = "probability", seed: int = 0,
                memory_budget: int | None = None, precision: str = "fp32") -> PerturbationCurves:
    """Selectivity (Montavon, Samek & Müller 2018, Digital Signal Processing 73, "Quantifying
    explanation quality": "Explanation selectivity"; the settings of Quantus's ``Selectivity``).

    The image is cut into ``patch`` × ``patch`` patches on a grid centred on the image
    (:func:`centred_patch_labels`; P = ⌈H/patch⌉·⌈W/patch⌉), ranked by the sum of the map ``a``
    (reduced over channels by ``reduce``) inside them and removed most relevant first, one per
    step, cumulatively, each replaced by ``fill`` (default ``black``: the per-sample minimum of
    the image over all channels and pixels, Quantus's default; any :func:`make_fill` fill). With
    p_t the ``score`` (default the class probability of ``y``) after t patches are removed,
    selectivity = Σ_{t=0}^{P−1} (p_t + p_{t+1}) / (2P), the area under the curve of p over the
    removed fraction t/P (trapezoid), in [0, 1] for probabilities; lower is better (a selective
    map finds the evidence first). P + 1 forward passes per sample. ``memory_budget``,
    ``precision``: as :func:`~salbench.metrics.perturbation.region_perturbation`.
    """
    check_model_inputs(model, x, y, a)
    if not isinstance(patch, int) or isinstance(patch, bool) or not (
            1 <= patch <= min(x.shape[-2:])):
        raise ValueError(f"patch must be an integer side length in [1, {min(x.shape[-2:])}], "
                         f"got {patch!r}")
    check_choice(precision, "precision", PRECISIONS)
    fill_fn = removal_fill(fill, _check_range(input_range), seed)
    scorer = target_score(score)
    b, _, h, w = x.shape
    with torch.inference_mode():
        labels = centred_patch_labels(h, w, patch).to(x.device).expand(b, -1)
        n = math.ceil(h / patch) * math.ceil(w / patch)
        k = torch.full((b,), n, device=x.device)
        ranks = region_pixel_ranks(reduce_channels(a, reduce), labels, k, "sum")
        counts = torch.arange(1, n + 1)
        curves = perturbation_curves(model, x, y, ranks, counts, fill_fn, 1, repeated=False,
                                     scorer=scorer, memory_budget=memory_budget,
                                     precision=precision)
        fractions = torch.arange(n + 1, dtype=torch.float64) / n
        return PerturbationCurves(area_under_curve(curves, fractions), curves, fractions)


# ---------------------------------------------------------------- registry


def _irof_result(raw: IROFCurves, params: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    x = torch.arange(raw.curves.shape[1], dtype=torch.float64)
    return ({"irof": raw.scores},
            {"ratio": R.Curve(x, raw.curves.double().cpu(), "superpixels removed")}, {})


def _irof_cost(params: Mapping[str, Any], shape: tuple[int, int, int], model=None) -> R.Cost:
    """SLIC returns about ``n_segments`` superpixels; the passes are max_b K_b + 1."""
    return R.Cost(forward=params["n_segments"] + 1)


def _selectivity_result(raw: PerturbationCurves,
                        params: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    return ({"selectivity": raw.scores},
            {"score": R.Curve(raw.fractions.double(), raw.curves.double().cpu(),
                              "fraction removed")}, {})


def _selectivity_cost(params: Mapping[str, Any], shape: tuple[int, int, int],
                      model=None) -> R.Cost:
    p = params["patch"]
    return R.Cost(forward=math.ceil(shape[1] / p) * math.ceil(shape[2] / p) + 1)


R.register("irof", kind="model", function=irof,
           outputs=[R.Output("irof", "higher", (-math.inf, 1.0),
                             "area over the curve of p_t / p_0 as superpixels are removed, most "
                             "relevant first")],
           curves=["ratio"], cost=_irof_cost,
           source="Rieger & Hansen 2020 (IROF, arXiv:2003.08747), the IROF definition",
           adapt=_irof_result,
           summary="class probability, relative to the unperturbed one, as the SLIC superpixels "
                   "of highest mean relevance are replaced by the image mean")
R.register("selectivity", kind="model", function=selectivity,
           outputs=[R.Output("selectivity", "lower",
                             lambda p: R.UNIT if p["score"] == "probability" else R.UNBOUNDED,
                             "area under the class-probability curve as patches are removed, "
                             "most relevant first")],
           curves=["score"], cost=_selectivity_cost,
           source="Montavon, Samek & Müller 2018 (Digital Signal Processing 73), "
                  "'Quantifying explanation quality': explanation selectivity",
           adapt=_selectivity_result,
           summary="class probability as the patches of highest summed relevance are set to the "
                   "image's darkest value")
