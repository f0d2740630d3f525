"""Ground-truth (localisation) metrics: ``metric(a, m, **params) -> Tensor[B]``.

``a`` are attributions ``[B, C, H, W]`` (or already reduced ``[B, H, W]``); ``reduce`` names the
channel reduction (default ``sum``, the "sum-pixel-over-channels" of document 001, section 3.3).
``m`` is a binary mask ``[B, H, W]``, non-empty for every sample. All metrics are batched: sorting
and counting run over the flattened maps of every sample at once, on the tensors' device.

Ties in rankings are broken deterministically: among equal values the pixel with the lower
row-major index ranks first (a stable descending sort).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from salbench.metrics import registry as R
from salbench.metrics._checks import (
    average_ranks,
    check_attributions,
    check_choice,
    check_mask,
    reduce_channels,
    sort_rows,
)

RELEVANCE = ("positive", "absolute", "signed")


def _prepare(a: Tensor, m: Tensor, reduce: str, relevance: str = "signed"
             ) -> tuple[Tensor, Tensor]:
    a = check_attributions(a)
    check_choice(relevance, "relevance", RELEVANCE)
    s = reduce_channels(a, reduce)
    if relevance == "positive":
        s = s.clamp_min(0)
    elif relevance == "absolute":
        s = s.abs()
    m = check_mask(m, tuple(s.shape))
    return s.flatten(1), m.flatten(1).to(s.dtype)


def _rank_order(s: Tensor) -> Tensor:
    """Indices sorting each row descending; equal values keep row-major order (stable)."""
    return torch.sort(s, dim=1, descending=True, stable=True).indices


def top_k_precision(a: Tensor, m: Tensor, reduce: str = "sum",
                    relevance: str = "positive") -> Tensor:
    """Explanation performance of document 000, section 2.5.

    Take the n most intense pixels of the map, n = number of ground-truth pixels of that sample;
    precision = (number of them inside the ground truth) / n, in [0, 1]. "Most intense" is the
    largest value after ``reduce`` and ``relevance``: ``positive`` (default) ranks the positive
    part max(s, 0), so negative evidence never counts as intense; ``absolute`` ranks |s| (document
    000 ranks absolute maps); ``signed`` ranks s as is. Ties: stable (lower row-major index first).
    """
    s, m = _prepare(a, m, reduce, relevance)
    n = m.sum(1)
    hits_sorted = m.gather(1, _rank_order(s))
    rank = torch.arange(s.shape[1], device=s.device)
    return (hits_sorted * (rank[None] < n[:, None])).sum(1) / n


def relevance_rank_accuracy(a: Tensor, m: Tensor, reduce: str = "sum",
                            relevance: str = "positive") -> Tensor:
    """Relevance rank accuracy (Arras et al. 2022): share of the K highest-ranked pixels inside
    the mask, K = mask size. Identical to :func:`top_k_precision` (document 000's definition)."""
    return top_k_precision(a, m, reduce, relevance)


def relevance_mass_accuracy(a: Tensor, m: Tensor, reduce: str = "sum",
                            relevance: str = "positive") -> Tensor:
    """Relevance mass accuracy (Arras et al. 2022): Σ_{mask} s / Σ s per sample, in [0, 1] for the
    default ``relevance="positive"`` (s = max(Σ_c a, 0): a mass fraction of positive evidence) or
    ``"absolute"``; ``"signed"`` keeps the sign (then not a fraction: it can leave [0, 1]). A map
    with zero total relevance scores 0.
    """
    s, m = _prepare(a, m, reduce, relevance)
    total = s.sum(1)
    inside = (s * m).sum(1)
    safe = torch.where(total == 0, torch.ones_like(total), total)
    return torch.where(total == 0, torch.zeros_like(total), inside / safe)


def pointing_game(a: Tensor, m: Tensor, reduce: str = "sum", tolerance: int = 0) -> Tensor:
    """Pointing game (Zhang et al. 2018): 1 if a maximum of the map lies in the mask dilated by
    ``tolerance`` pixels (square neighbourhood, Chebyshev distance), else 0.

    With several equal maxima, a hit by any of them counts (as Quantus does).
    """
    if not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative integer (pixels), got {tolerance!r}")
    a = check_attributions(a)
    s = reduce_channels(a, reduce)
    m = check_mask(m, tuple(s.shape))
    mf = m.to(s.dtype)
    if tolerance:
        k = 2 * tolerance + 1
        mf = F.max_pool2d(mf[:, None], k, stride=1, padding=tolerance)[:, 0]
    s, mf = s.flatten(1), mf.flatten(1)
    at_max = s == s.amax(1, keepdim=True)
    return (at_max & (mf > 0)).any(1).to(s.dtype)


def top_k_intersection(a: Tensor, m: Tensor, k: int = 1000, reduce: str = "sum",
                       relevance: str = "positive") -> Tensor:
    """Top-k intersection (Theiner et al. 2021): share of the k highest-ranked pixels inside the
    mask, (1/k) Σ_{top k} m (default k = 1000, Quantus's). Ties: stable (lower row-major index
    first); ``relevance`` as in :func:`top_k_precision`."""
    s, mf = _prepare(a, m, reduce, relevance)
    if not isinstance(k, int) or not 1 <= k <= s.shape[1]:
        raise ValueError(f"k must be an integer in [1, {s.shape[1]}] (pixels), got {k!r}")
    return mf.gather(1, _rank_order(s)[:, :k]).mean(1)


def iou(a: Tensor, m: Tensor, reduce: str = "sum", threshold: float = 0.5,
        quantile: float | None = None, relative: bool = True) -> Tensor:
    """Intersection over union of the binarised map and the mask.

    Binarisation: pixels where s ≥ ``threshold`` · max(s) (``relative=True``, default; threshold
    0.5) or s ≥ ``threshold`` (``relative=False``); when ``quantile`` is given it replaces the
    threshold: pixels at or above the per-sample q-quantile of s (linear interpolation,
    torch.quantile). Masks are non-empty, so the union never is.
    """
    if quantile is not None and not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile!r}")
    s, mf = _prepare(a, m, reduce)
    if quantile is not None:
        cut = torch.quantile(s, quantile, dim=1, keepdim=True)
    elif relative:
        cut = threshold * s.amax(1, keepdim=True)
    else:
        cut = torch.full_like(s[:, :1], threshold)
    sel = (s >= cut).to(s.dtype)
    inter = (sel * mf).sum(1)
    union = ((sel + mf) > 0).to(s.dtype).sum(1)
    return inter / union


def auroc(a: Tensor, m: Tensor, reduce: str = "sum") -> Tensor:
    """Area under the ROC curve of the map's values as scores for the mask's pixels (Mann–Whitney
    form with mid-ranks for ties, equal to sklearn's ``roc_auc_score``). A mask covering the whole
    image has no negatives: an error."""
    s, mf = _prepare(a, m, reduce)
    n_pos = mf.sum(1)
    n_neg = s.shape[1] - n_pos
    if bool((n_neg == 0).any()):
        raise ValueError("m covers the whole image for some samples; AUROC needs negatives")
    ranks = average_ranks(s)
    u = (ranks * mf.double()).sum(1) - n_pos.double() * (n_pos.double() + 1) / 2
    return (u / (n_pos.double() * n_neg.double())).to(s.dtype)


def average_precision(a: Tensor, m: Tensor, reduce: str = "sum") -> Tensor:
    """Average precision Σ_n (R_n − R_{n−1}) P_n over the distinct thresholds of the map
    (sklearn's ``average_precision_score``: tied values enter at one threshold)."""
    s, mf = _prepare(a, m, reduce)
    sorted_s, order = sort_rows(s, descending=True)  # a tie group enters whole: order-free
    hits = mf.gather(1, order).double()
    tp = hits.cumsum(1)
    count = torch.arange(1, s.shape[1] + 1, device=s.device, dtype=torch.float64)
    is_end = torch.ones_like(sorted_s, dtype=torch.bool)
    is_end[:, :-1] = sorted_s[:, 1:] != sorted_s[:, :-1]
    tp_end = torch.where(is_end, tp, torch.zeros_like(tp))
    prev_end = torch.zeros_like(tp)
    prev_end[:, 1:] = tp_end.cummax(1).values[:, :-1]
    gain = torch.where(is_end, tp - prev_end, torch.zeros_like(tp))
    n_pos = mf.sum(1).double()
    return ((gain / n_pos[:, None]) * (tp / count)).sum(1).to(s.dtype)


def _register(name: str, function, summary: str, source: str,
              output_range: tuple[float, float] = R.UNIT) -> None:
    R.register(name, kind="ground_truth", function=function,
               outputs=[R.Output(name, "higher", output_range, summary)],
               adapt=R.single(name), cost=R.free, source=source, summary=summary)


_register("top_k_precision", top_k_precision, "share of the n most intense pixels inside the "
          "mask, n = mask size", "document 000, section 2.5")
_register("relevance_rank_accuracy", relevance_rank_accuracy, "= top_k_precision",
          "Arras et al. 2022")
_register("relevance_mass_accuracy", relevance_mass_accuracy, "share of the (positive) relevance "
          "mass inside the mask", "Arras et al. 2022",
          lambda p: R.UNBOUNDED if p["relevance"] == "signed" else R.UNIT)
_register("pointing_game", pointing_game, "1 if a maximum lies in the (dilated) mask",
          "Zhang et al. 2018")
_register("top_k_intersection", top_k_intersection, "share of the k most intense pixels "
          "inside the mask", "Theiner et al. 2021")
_register("iou", iou, "intersection over union of the thresholded map and the mask",
          "Quantus, localisation")
_register("auroc", auroc, "ROC AUC of the map's values as scores of the mask's pixels",
          "Quantus, localisation")
_register("average_precision", average_precision, "average precision of the map's values for "
          "the mask's pixels", "Quantus, localisation")
