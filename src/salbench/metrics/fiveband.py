"""Five-band scores of the synthetic-cells document (document 001, sections 3.3 and 4.1).

Pipeline: channel adjustment of the heatmap h, five-band stratification of h and of the ground
truth h0, pixel counts TP/FP/FN/TN, accuracy A, precision P, recall R, FPR, and the soft scores
over a schedule of thresholds (average and best per sample, ROC points over the data set).

The soft scores never materialise one stratified map per threshold: every pixel is placed once
among the sorted thresholds (``bucketize``), and a histogram per sample and ground-truth level
with a cumulative sum gives the pixel count of every band for every threshold at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from salbench.metrics import registry as R
from salbench.metrics._checks import check_attributions, check_tensor

EPSILON = 1e-6  # smoothing of P, R, FPR (document 001, section 3.3)
GT_LEVELS = {0.0: 0, 0.4: 1, 0.9: 2}  # ground-truth heatmap values -> bands (section 3.3)
CLAMP = (-0.1, 0.1)  # [c1, c2] of the clamped channel adjustment (section 4.1)


@dataclass(frozen=True)
class FiveBandSchedule:
    """Soft thresholds t_m = [-t2_m, -t1_m, t1_m, t2_m] plus the channel adjustment they go with."""

    t1: tuple[float, ...]
    t2: tuple[float, ...]
    clamp: tuple[float, float] | None = None

    @staticmethod
    def linear(t1_start: float, t2_start: float, step: float, n_soft: int,
               clamp: tuple[float, float] | None = None) -> FiveBandSchedule:
        """t1 = t1_start − m·step, t2 = t2_start − m·step for m = 0 … n_soft (n_soft + 1 values)."""
        ms = range(n_soft + 1)
        return FiveBandSchedule(tuple(t1_start - m * step for m in ms),
                                tuple(t2_start - m * step for m in ms), clamp)


# Document 001, section 3.3: t1 = 0.3 − 0.005 m, t2 = 0.5 − 0.005 m, m = 0 … 55.
STANDARD = FiveBandSchedule.linear(0.3, 0.5, 0.005, 55)
# Document 001, section 4.1: t1 = 0.5 − 0.01 m, t2 = 0.9 − 0.01 m, m = 0 … 40, clamp [-0.1, 0.1].
CLAMPED = FiveBandSchedule.linear(0.5, 0.9, 0.01, 40, clamp=CLAMP)
SCHEDULES = {"standard": STANDARD, "clamped": CLAMPED}


def _max_abs_normalise(h: Tensor, dims: tuple[int, ...]) -> Tensor:
    peak = h.abs().amax(dim=dims, keepdim=True)
    return h / torch.where(peak == 0, torch.ones_like(peak), peak)


def channel_adjust(h: Tensor, clamp: tuple[float, float] | None = None) -> Tensor:
    """Channel adjustment (document 001): ``[B, C, H, W]`` -> ``[B, H, W]`` in [-1, 1].

    Standard (section 3.3): h -> Σ_c h -> h / max|h|. Clamped (section 4.1, ``clamp=(c1, c2)``):
    h -> h / max|h| -> clamp to [c1, c2] -> Σ_c h -> h / max|h|. max|h| is per sample (over all
    of that sample's pixels, and channels for the first normalisation); an all-zero map stays 0.
    """
    h = check_attributions(h, "h")
    if h.ndim == 3:
        h = h[:, None]
    if clamp is not None:
        h = _max_abs_normalise(h, (1, 2, 3)).clamp(clamp[0], clamp[1])
    return _max_abs_normalise(h.sum(1), (1, 2))


def stratify(h: Tensor, t1: float | Tensor, t2: float | Tensor) -> Tensor:
    """Five-band stratification S⁵ (document 001, section 3.3), integer bands in {-2, …, 2}:
    2 if h > t2; 1 if t1 < h ≤ t2; 0 if −t1 ≤ h ≤ t1; −1 if −t2 < h < −t1; −2 if h ≤ −t2."""
    t1 = torch.as_tensor(t1, dtype=h.dtype, device=h.device)
    t2 = torch.as_tensor(t2, dtype=h.dtype, device=h.device)
    s = torch.zeros(h.shape, dtype=torch.int8, device=h.device)
    s[h > t2] = 2
    s[(h > t1) & (h <= t2)] = 1
    s[(h < -t1) & (h > -t2)] = -1
    s[h <= -t2] = -2
    return s


def stratify_ground_truth(h0: Tensor) -> Tensor:
    """Ground-truth bands: 0.9 -> 2, 0.4 -> 1, 0 -> 0 (document 001, section 3.3); ``h0`` is
    ``[B, H, W]`` holding only those three levels (to 1e-6)."""
    h0 = check_tensor(h0, "h0", (3,))
    s = (h0 > 0.2).to(torch.int8) + (h0 > 0.65).to(torch.int8)
    levels = torch.tensor(list(GT_LEVELS), dtype=h0.dtype, device=h0.device)
    off = (h0 - levels[s.long()]).abs() > 1e-6
    if bool(off.any()):
        raise ValueError(f"h0 must hold only the ground-truth levels {tuple(GT_LEVELS)}, "
                         f"found e.g. {h0[off][:3].tolist()}")
    return s


class FiveBandCounts(NamedTuple):
    tp: Tensor
    fp: Tensor
    fn: Tensor
    tn: Tensor


def five_band_counts(s: Tensor, s0: Tensor) -> FiveBandCounts:
    """Pixel counts over the last two dims (document 001, section 3.3): TP: h0 ≠ 0 and h = h0;
    FP: h0 = 0 and h ≠ 0, plus h0 ≠ 0 and h ∉ {0, h0}; FN: h0 ≠ 0 and h = 0; TN: h0 = h = 0."""
    pos = s0 != 0
    tp = (pos & (s == s0)).sum((-2, -1))
    fn = (pos & (s == 0)).sum((-2, -1))
    fp = (~pos & (s != 0)).sum((-2, -1)) + (pos & (s != 0) & (s != s0)).sum((-2, -1))
    tn = (~pos & (s == 0)).sum((-2, -1))
    return FiveBandCounts(tp, fp, fn, tn)


class FiveBandScores(NamedTuple):
    accuracy: Tensor
    precision: Tensor
    recall: Tensor
    fpr: Tensor


def scores_from_counts(c: FiveBandCounts, n_pixels: int) -> FiveBandScores:
    """A = (TP + TN) / pixels (the share with h = h0), P = TP/(TP+FP+ε), R = TP/(TP+FN+ε),
    FPR = FP/(FP+TN+ε), ε = 1e-6."""
    tp, fp, fn, tn = (t.double() for t in c)
    return FiveBandScores((tp + tn) / n_pixels, tp / (tp + fp + EPSILON),
                          tp / (tp + fn + EPSILON), fp / (fp + tn + EPSILON))


def five_band_score(h: Tensor, h0: Tensor, t1: float, t2: float) -> FiveBandScores:
    """Sharp five-band scores of channel-adjusted maps ``h`` ``[B, H, W]`` at one threshold."""
    h = check_tensor(h, "h", (3,))
    s0 = stratify_ground_truth(h0)
    if h.shape != s0.shape:
        raise ValueError(f"h {tuple(h.shape)} and h0 {tuple(h0.shape)} must have the same shape")
    return scores_from_counts(five_band_counts(stratify(h, t1, t2), s0), h.shape[-2] * h.shape[-1])


class SoftFiveBand(NamedTuple):
    """Per-sample soft five-band scores; ``*_avg``/``*_best`` are ``[B]``, ``per_threshold`` holds
    A, P, R, FPR as ``[B, M]``, ``roc_fpr``/``roc_recall`` are the M ROC points ``[M]``;
    ``density`` ``[B, M]``: the share of pixels in a nonzero band, (TP + FP) / pixels (how much
    of the stratified map is marked; 1 − density is its sparsity)."""

    accuracy_avg: Tensor
    accuracy_best: Tensor
    precision_avg: Tensor
    precision_best: Tensor
    recall_avg: Tensor
    recall_best: Tensor
    fpr: Tensor
    per_threshold: FiveBandScores
    roc_fpr: Tensor
    roc_recall: Tensor
    density: Tensor


def soft_five_band_counts(h: Tensor, s0: Tensor, t1: Tensor, t2: Tensor) -> FiveBandCounts:
    """Counts ``[B, M]`` for adjusted maps ``h`` ``[B, H, W]`` at every threshold pair (t1, t2).

    Every pixel is placed once among the sorted edges t2, t1 and −t1 (``bucketize``; "< −t1" is
    "≤ the next float below −t1", exact in h's dtype); a histogram per (sample, ground-truth level)
    and a cumulative sum give the number of pixels ≤ each edge, hence every band count.
    """
    flat, level = h.flatten(1), s0.flatten(1).long()
    b, m = flat.shape[0], t1.shape[0]
    below_neg_t1 = torch.nextafter(-t1, torch.full_like(t1, -float("inf")))
    edges = torch.cat([t2, t1, below_neg_t1])
    sorted_edges, order = torch.sort(edges)
    n_e = len(edges)
    bucket = torch.bucketize(flat, sorted_edges)  # number of edges < value
    cell = (torch.arange(b, device=h.device)[:, None] * 3 + level) * (n_e + 1) + bucket
    hist = torch.bincount(cell.flatten(), minlength=b * 3 * (n_e + 1)).view(b, 3, n_e + 1)
    cum = hist.cumsum(2)
    n = cum[:, :, -1:]  # [B, 3, 1] pixels per level
    at_most = torch.empty_like(cum[:, :, :n_e]).index_copy_(2, order, cum[:, :, :n_e])
    le_t2, le_t1, lt_neg_t1 = at_most[:, :, :m], at_most[:, :, m:2 * m], at_most[:, :, 2 * m:]
    band2, band1, band0 = n - le_t2, le_t2 - le_t1, le_t1 - lt_neg_t1  # [B, 3 levels, M]
    tp = band2[:, 2] + band1[:, 1]
    fn = band0[:, 2] + band0[:, 1]
    fp = (n[:, 1] + n[:, 2] - tp - fn) + (n[:, 0] - band0[:, 0])
    tn = band0[:, 0]
    return FiveBandCounts(tp, fp, fn, tn)


def soft_five_band(h: Tensor, h0: Tensor, schedule: str | FiveBandSchedule = "standard",
                   adjust: bool = True) -> SoftFiveBand:
    """Soft five-band scores (document 001, section 3.3; clamped variant section 4.1).

    ``h``: raw heatmaps ``[B, C, H, W]``; with ``adjust=True`` (default) the schedule's channel
    adjustment is applied first (standard: Σ_c then /max|h|; ``"clamped"``: /max|h|, clamp to
    [-0.1, 0.1], Σ_c, /max|h|). With ``adjust=False``, ``h`` must be adjusted maps ``[B, H, W]``.
    ``h0``: ground truth ``[B, H, W]`` with levels 0, 0.4, 0.9. ``schedule``: ``"standard"``
    (t1 = 0.3 − 0.005 m, t2 = 0.5 − 0.005 m, m = 0…55), ``"clamped"`` (t1 = 0.5 − 0.01 m,
    t2 = 0.9 − 0.01 m, m = 0…40) or a :class:`FiveBandSchedule`.

    X_avg is the mean over the schedule's M thresholds (the document writes 1/n_soft with
    m = 0…n_soft, i.e. n_soft + 1 terms; we take the plain mean over all M = n_soft + 1) and X_best
    the maximum. ROC points: mean FPR and mean R over the samples, one per threshold.
    """
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {tuple(SCHEDULES)} or a FiveBandSchedule, "
                             f"got {schedule!r}")
        schedule = SCHEDULES[schedule]
    h = channel_adjust(h, schedule.clamp) if adjust else check_tensor(h, "h", (3,))
    s0 = stratify_ground_truth(h0)
    if h.shape != s0.shape:
        raise ValueError(f"h ({tuple(h.shape)} after channel adjustment) and h0 "
                         f"{tuple(h0.shape)} must have the same [B, H, W] shape")
    t1 = torch.tensor(schedule.t1, dtype=h.dtype, device=h.device)
    t2 = torch.tensor(schedule.t2, dtype=h.dtype, device=h.device)
    counts = soft_five_band_counts(h, s0, t1, t2)
    n_pixels = h.shape[-2] * h.shape[-1]
    per = scores_from_counts(counts, n_pixels)
    density = (counts.tp + counts.fp).double() / n_pixels
    return SoftFiveBand(per.accuracy.mean(1), per.accuracy.amax(1),
                        per.precision.mean(1), per.precision.amax(1),
                        per.recall.mean(1), per.recall.amax(1),
                        per.fpr, per, per.fpr.mean(0), per.recall.mean(0), density)


def _five_band_result(raw: SoftFiveBand, params) -> tuple[dict, dict, dict]:
    values = {name: getattr(raw, name) for name in _SCORES}
    values["fpr_avg"] = raw.fpr.mean(1)
    values["density_avg"] = raw.density.mean(1)
    schedule = params["schedule"]
    schedule = SCHEDULES[schedule] if isinstance(schedule, str) else schedule
    m = torch.arange(len(schedule.t1), dtype=torch.float64)
    labels = tuple(f"t1={t1:.3g}, t2={t2:.3g}" for t1, t2 in zip(schedule.t1, schedule.t2))
    curves = {name: R.Curve(m, getattr(raw.per_threshold, name).cpu(), "threshold index m",
                            labels) for name in FiveBandScores._fields}
    return values, curves, {}


_SCORES = ("accuracy_avg", "accuracy_best", "precision_avg", "precision_best", "recall_avg",
           "recall_best")
R.register(
    "soft_five_band", kind="ground_truth", function=soft_five_band,
    outputs=[R.Output(name, "higher", R.UNIT, f"{name.split('_')[0]}, "
                      f"{'mean' if name.endswith('avg') else 'maximum'} over the thresholds")
             for name in _SCORES]
    + [R.Output("fpr_avg", "lower", R.UNIT, "false-positive rate, mean over the thresholds"),
       R.Output("density_avg", "none", R.UNIT, "share of pixels in a nonzero band, (TP + FP) / "
                "pixels, mean over the thresholds (1 − sparsity)")],
    curves=FiveBandScores._fields, adapt=_five_band_result, cost=R.free, mask="levels",
    source="document 001, sections 3.3 and 4.1",
    summary="soft five-band accuracy, precision, recall and FPR against the 0/0.4/0.9 ground "
            "truth")
