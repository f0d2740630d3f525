"""Named post-processing steps for attribution maps (never applied implicitly by a method).

All functions take ``[B, C, H, W]`` (``reduce_channels``) or any ``[B, ...]`` tensor and work per
sample.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

REDUCTIONS = ("sum", "abs-sum", "max-abs", "l2")
DISPLAY_BASE = 0.5
"""b of document 000's display transform (section 2.4)."""


def _check(a: Tensor, ndim: int | None = None) -> None:
    if not isinstance(a, Tensor):
        raise TypeError(f"attribution must be a torch.Tensor, got {type(a).__name__}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"attribution must have {ndim} dimensions [B, C, H, W], got shape "
                         f"{tuple(a.shape)}")


def reduce_channels(a: Tensor, how: str = "sum") -> Tensor:
    """``[B, C, H, W] -> [B, H, W]``: "sum" Σ_c a (document 001, section 3.3 "sum-pixel-over-
    channels"), "abs-sum" Σ_c |a|, "max-abs" max_c |a|, "l2" sqrt(Σ_c a²)."""
    _check(a, 4)
    if how == "sum":
        return a.sum(1)
    if how == "abs-sum":
        return a.abs().sum(1)
    if how == "max-abs":
        return a.abs().amax(1)
    if how == "l2":
        return a.pow(2).sum(1).sqrt()
    raise ValueError(f"how must be one of {REDUCTIONS}, got {how!r}")


def absolute(a: Tensor) -> Tensor:
    """|a| (document 000, section 2.4: the absolute value is the basis of its analyses)."""
    _check(a)
    return a.abs()


def normalise_max_abs(a: Tensor) -> Tensor:
    """a / max|a| per sample, into [-1, 1] (document 001, section 3.3); all-zero maps stay 0."""
    _check(a)
    scale = a.detach().flatten(1).abs().amax(1).view(-1, *([1] * (a.ndim - 1)))
    return a / torch.where(scale > 0, scale, torch.ones_like(scale))


def normalise_min_max(a: Tensor) -> Tensor:
    """(a − min) / (max − min) per sample, into [0, 1]; constant maps become 0."""
    _check(a)
    flat = a.detach().flatten(1)
    shape = (-1, *([1] * (a.ndim - 1)))
    low, high = flat.amin(1).view(shape), flat.amax(1).view(shape)
    span = high - low
    return (a - low) / torch.where(span > 0, span, torch.ones_like(span))


def clamp(a: Tensor, low: float = -0.1, high: float = 0.1) -> Tensor:
    """C_[c1, c2](a): values clipped to [low, high]; defaults [-0.1, 0.1] from document 001,
    section 4.1 (applied after ``normalise_max_abs`` there)."""
    _check(a)
    if low > high:
        raise ValueError(f"low must not exceed high, got low={low}, high={high}")
    return a.clamp(min=low, max=high)


def log_display(s: Tensor, b: float = DISPLAY_BASE) -> Tensor:
    """−log(1 − s(1 − 1/b)) / log(b), document 000's display transform for s in [0, 1]; maps
    0 -> 0 and 1 -> 1 and, with b = 0.5, brightens small scores (log(1 + s) / log 2)."""
    _check(s)
    if not (b > 0 and b != 1):
        raise ValueError(f"b must be positive and not 1, got {b}")
    return -torch.log1p(-s * (1 - 1 / b)) / math.log(b)
