"""ROAD, RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci 2022, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML, arXiv:2202.00449; its public code
tleemann/road_evaluation, whose imputation ``pytorch_grad_cam.metrics.road`` copies and Quantus
adapts).

The most (MoRF) or least (LeRF) relevant p % of the pixels are removed and replaced by **noisy
linear imputation**: each removed pixel i takes the weighted mean of its 8
neighbours j that lie inside the image,

    Σ_j w_ij (u_i − u_j) = 0,   w = 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonals,

with the kept pixels fixed at their values (a Laplace equation with Dirichlet data on the kept
pixels, one per channel, all channels sharing the mask), plus Gaussian noise N(0, σ²), σ = 0.01
(the authors' code), on the imputed pixels only. The model's score of class ``y`` is read at
each percentage; no model is retrained (the "no retraining" ROAD of the paper).

**Batched on any device.** The paper's code solves one SciPy sparse system per image on the CPU.
Here the system matrix is the masked 3×3 stencil ``A u = W ⊙ u − K ∗ u`` on the removed pixels
(W = the weight of the neighbours inside the image), symmetric positive definite whenever one
pixel is kept. It is solved by Jacobi-preconditioned conjugate gradients in float64, batched over
images and channels, to a relative residual of :data:`CG_TOLERANCE`: in float64 within 1.3e-7 of
SciPy's direct sparse solve of the same system on 224 px images with 90 % removed (5e-8 at
128 px), about float32 rounding for images in [0, 1]; ``tests/metrics/test_road.py``
checks the libraries' solves to 1e-5. On one CPU core the iterative solve costs about 1.5× the
direct one per image for large holes (less for scattered ones); it runs batched on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

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
from salbench.metrics.passes import PRECISIONS, ModelPasses

# The removed shares of pytorch-grad-cam's averaged ROAD (ROAD*Average, 10 … 90 %); the authors'
# CIFAR-10 no-retraining configuration uses this grid less 60 and 80 % (noretrain_params.json).
ROAD_PERCENTAGES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
ROAD_NOISE_STD = 0.01  # std of the imputation noise in the authors' code (NoisyLinearImputer)
# Neighbour weights of the authors' imputation (imputations.py, ``neighbors_weights``).
NEIGHBOUR_WEIGHTS = ((1 / 12, 1 / 6, 1 / 12), (1 / 6, 0.0, 1 / 6), (1 / 12, 1 / 6, 1 / 12))
ROAD_ORDERS = ("morf", "lerf", "lrf")  # "lrf" = "lerf", the name the other perturbation metrics use
CG_TOLERANCE = 1e-8  # relative residual ‖b − A u‖ / ‖b‖ at which the CG solve stops
CHECK_EVERY = 8  # CG iterations between convergence checks (each check synchronises a GPU)
SOLVE_BYTES = {"cpu": 64 * 2**20, "cuda": 2 * 2**30}  # float64 CG state per imputation block
WORK_TENSORS = 8  # float64 image-sized tensors the CG solve keeps per image


class RoadCurves(NamedTuple):
    """``scores`` ``[B]`` (mean of the curve over the percentages), ``curves`` ``[B, K+1]``
    (point 0 the unperturbed input, then one point per percentage) and ``fractions`` ``[K+1]``
    (share of pixels removed: 0, then the percentages / 100)."""

    scores: Tensor
    curves: Tensor
    fractions: Tensor


# ---------------------------------------------------------------- imputation


def _stencil(u: Tensor) -> Tensor:
    """Σ_j w_ij u_j over the 8 neighbours inside the image (zero padding), per channel: sums of
    shifted copies (1.7× faster than a 3×3 ``conv2d`` in float64 on the CPU)."""
    p = F.pad(u, (1, 1, 1, 1))
    sides = p[..., :, :-2] + p[..., :, 2:]  # left + right neighbours, [.., H + 2, W]
    middle = p[..., :, 1:-1]
    direct = sides[..., 1:-1, :] + middle[..., :-2, :] + middle[..., 2:, :]
    diagonal = sides[..., :-2, :] + sides[..., 2:, :]
    return direct * NEIGHBOUR_WEIGHTS[0][1] + diagonal * NEIGHBOUR_WEIGHTS[0][0]


def _solve_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def linear_imputation(x: Tensor, removed: Tensor, *, tol: float = CG_TOLERANCE,
                      max_iter: int | None = None) -> Tensor:
    """The noise-free linear imputation of ROAD (module docstring): images ``x`` ``[N, C, H, W]``
    with the pixels ``removed`` ``[N, H, W]`` or ``[N, 1, H, W]`` (true = removed) replaced by
    the solution of the masked Laplace system, kept pixels unchanged. Batched preconditioned
    conjugate gradients on ``x``'s device to relative residual ``tol`` (``max_iter`` default:
    10 (H + W) + 200; a RuntimeError if not reached). An image with no kept pixel has no unique
    solution: a ValueError."""
    if removed.ndim == 3:
        removed = removed[:, None]
    if removed.shape != (x.shape[0], 1, *x.shape[-2:]):
        raise ValueError(f"removed must be [N, H, W] or [N, 1, H, W] matching x "
                         f"{tuple(x.shape)}, got {tuple(removed.shape)}")
    removed = removed.bool()
    if bool(removed.flatten(1).all(1).any()):
        raise ValueError("removed covers a whole image: the imputation needs a kept pixel")
    dtype = _solve_dtype(x.device)
    hole = removed.to(dtype).expand(-1, x.shape[1], -1, -1)
    known = x.to(dtype) * (1 - hole)
    inside = _stencil(torch.ones_like(hole[:1, :1]))  # W_i, the diagonal of A
    b = hole * _stencil(known)

    inverse = hole / inside  # the Jacobi preconditioner, zero on the kept pixels

    def apply(u: Tensor) -> Tensor:  # A u on the removed pixels (u is zero elsewhere)
        return hole * (inside * u - _stencil(u))

    def dot(s: Tensor, t: Tensor) -> Tensor:  # one inner product per image and channel
        return torch.linalg.vecdot(s.flatten(2), t.flatten(2))[..., None, None]

    u = torch.zeros_like(b)
    r = b.clone()
    p = r * inverse
    rz = dot(r, p)
    target = tol * b.square().sum((2, 3)).sqrt()
    tiny = torch.finfo(dtype).tiny
    limit = max_iter if max_iter is not None else 10 * sum(x.shape[-2:]) + 200
    for step in range(1, limit + 1):
        if step % CHECK_EVERY == 1 and bool((r.square().sum((2, 3)).sqrt() <= target).all()):
            break
        ap = apply(p)
        pap = dot(p, ap)
        alpha = torch.where(pap > 0, rz / pap.clamp_min(tiny), 0.0)
        u.addcmul_(alpha, p)
        r.addcmul_(alpha, ap, value=-1)
        z = r * inverse
        rz_new = dot(r, z)
        beta = torch.where(rz > 0, rz_new / rz.clamp_min(tiny), 0.0)
        p.mul_(beta).add_(z)
        rz = rz_new
    else:
        if not bool((r.square().sum((2, 3)).sqrt() <= target).all()):
            raise RuntimeError(f"linear imputation: conjugate gradients did not reach the "
                               f"relative residual tol = {tol:.0e} in {limit} iterations; "
                               "raise max_iter")
    return torch.where(hole.bool(), u, x.to(dtype)).to(x.dtype)


# ---------------------------------------------------------------- ROAD


def removal_ranks(s: Tensor, order: str) -> Tensor:
    """Position of every pixel in the removal order ``[B, H*W]`` (0 = removed first) from
    reduced maps ``[B, H, W]``: ``morf`` most relevant first, ``lerf`` least relevant first;
    ties keep the lower pixel index (row-major) first (stable sort)."""
    flat = s.flatten(1)
    perm = torch.sort(flat, dim=1, descending=order == "morf", stable=True).indices
    ranks = torch.empty_like(perm)
    ranks.scatter_(1, perm, torch.arange(perm.shape[1], device=perm.device).expand_as(perm))
    return ranks


def removal_counts(percentages: Sequence[float], n_pixels: int) -> list[int]:
    """Pixels removed at each percentage: ⌊n · p / 100⌋ (the authors' ``int(w*h*th_p)``, as
    Quantus)."""
    return [math.floor(n_pixels * float(p) / 100 + 1e-9) for p in percentages]


def _check_percentages(percentages: object) -> tuple[float, ...]:
    try:
        values = () if isinstance(percentages, str) else tuple(
            float(p) for p in percentages)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        values = ()
    if (not values or not all(0 < p < 100 for p in values)
            or any(b <= a for a, b in zip(values, values[1:]))):
        raise ValueError(f"percentages must be a non-empty, strictly increasing sequence of "
                         f"shares removed in (0, 100), got {percentages!r}")
    return values


def road(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *, order: str = "morf",
         percentages: Sequence[float] = ROAD_PERCENTAGES, noise_std: float = ROAD_NOISE_STD,
         reduce: str = "sum", score: str | ScoreFn = "probability", seed: int = 0,
         memory_budget: int | None = None, precision: str = "fp32") -> RoadCurves:
    """ROAD without retraining (Rong et al. 2022; module docstring).

    ``a`` ``[B, C|1, H, W]`` is reduced over channels by ``reduce`` (the authors' code sums the
    channels); at each of the ``percentages`` (shares of the H·W pixels removed, ⌊H·W·p/100⌋
    pixels) the most (``order="morf"``) or least (``"lerf"``) relevant pixels, all channels
    together, are replaced by the linear imputation (:func:`linear_imputation`) plus noise
    N(0, ``noise_std``²) on the removed pixels (drawn from ``seed``: one ``[B, C, H, W]`` draw per
    percentage, in order, on the CPU, so results do not depend on the device or the chunking).
    Each percentage imputes the original image (removal is not cumulative). Ties in the map
    keep the lower pixel index first (:func:`removal_ranks`; the authors' code adds N(0, 1e-4²)
    to the min–max normalised map, pytorch-grad-cam removes every pixel tied at its threshold).
    ``percentages`` are always the share *removed*; the authors' LeRF ``th_p`` and
    pytorch-grad-cam's ``percentile`` q (both orders) are the share *kept*: their values at q are
    this function's at 100 − q (the same means over the symmetric default grid; the pixel
    counts agree whenever H·W·q/100 is whole).

    ``score``: ``probability`` (softmax) of class ``y`` (default: the authors' code reports the
    mean probability of the explained class next to the accuracy), ``logit``, or a callable
    ``(outputs, y) -> [N]`` (e.g. ``(outputs.argmax(1) == y).float()`` for the accuracy of the
    paper's figures and of Quantus's ROAD).

    Returns :class:`RoadCurves`: curves ``[B, K+1]`` (point 0 unperturbed), and ``scores`` = the
    mean over the K percentages (not an AUC: the paper reads the curves point by point and
    pytorch-grad-cam's ROAD*Average take this mean, of differences to point 0; each percentage
    weighs alike on any grid). Lower is better for MoRF, higher for LeRF. ``memory_budget``,
    ``precision``: as :func:`~salbench.metrics.region_perturbation`.
    """
    check_model_inputs(model, x, y, a)
    check_choice(order, "order", ROAD_ORDERS)
    check_choice(precision, "precision", PRECISIONS)
    values = _check_percentages(percentages)
    if (isinstance(noise_std, bool) or not isinstance(noise_std, (int, float))
            or not math.isfinite(noise_std) or noise_std < 0):
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    scorer = target_score(score)
    b, c, h, w = x.shape
    with torch.inference_mode():
        s = reduce_channels(a, reduce)
        ranks = removal_ranks(s, "morf" if order == "morf" else "lerf").view(b, 1, h, w)
        passes = ModelPasses(model, x, scorer, memory_budget, precision)
        curves = torch.empty(b, len(values) + 1, dtype=torch.float32, device=x.device)
        curves[:, 0] = passes(x, y).float()
        block = max(1, SOLVE_BYTES.get(x.device.type, SOLVE_BYTES["cuda"])
                    // (WORK_TENSORS * 8 * c * h * w))
        g = torch.Generator().manual_seed(seed)
        for k, count in enumerate(removal_counts(values, h * w)):
            removed = ranks < count
            xp = torch.cat([linear_imputation(x[i:i + block], removed[i:i + block])
                            for i in range(0, b, block)])
            if noise_std > 0:
                noise = torch.randn(x.shape, generator=g, dtype=torch.float32)
                xp = xp + noise_std * noise.to(x.device, x.dtype) * removed
            curves[:, k + 1] = passes(xp, y).float()
        fractions = torch.tensor([0.0, *values], dtype=torch.float64) / 100
        return RoadCurves(curves[:, 1:].mean(1), curves, fractions)


def _road_direction(params: Mapping[str, Any]) -> str:
    """MoRF: lower is better (the score should fall as relevant pixels go); LeRF: higher."""
    return "lower" if params["order"] == "morf" else "higher"


def _road_range(params: Mapping[str, Any]) -> tuple[float, float]:
    return R.UNIT if params["score"] == "probability" else R.UNBOUNDED


def _road_result(raw: RoadCurves, params: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    curve = R.Curve(raw.fractions.double(), raw.curves.double().cpu(), "fraction removed")
    return {"road": raw.scores}, {"score": curve}, {}


R.register(
    "road", kind="model", function=road,
    outputs=[R.Output("road", _road_direction, _road_range,
                      "mean class score over the removal percentages, removed pixels replaced "
                      "by noisy linear imputation")],
    curves=["score"], adapt=_road_result,
    cost=lambda params, shape, model=None: R.Cost(forward=len(params["percentages"]) + 1),
    source="Rong et al. 2022 (ICML, arXiv:2202.00449), ROAD without retraining, noisy linear "
           "imputation; as tleemann/road_evaluation and pytorch_grad_cam.metrics.road",
    summary="model score as the most (MoRF) or least (LeRF) relevant pixels are removed and "
            "imputed from their neighbours (RemOve And Debias)")
