"""HAAS, the heatmap-assisted accuracy score (document 003, section 2.2.3, eqs. 9–10).

Images and maps are normalised to [−1, 1]; HA = clip(x_norm · (1 + a_norm), −1, 1), mapped back
to the model's input space; HAAS = Acc(f(HA)) / Acc(f(x)) over the data set.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from salbench.metrics import registry as R
from salbench.metrics._checks import (
    check_attributions,
    check_choice,
    check_classes,
    check_images,
    check_spatial,
    check_targets,
    forward_chunks,
)


class HaasResult(NamedTuple):
    """``correct`` / ``correct_ha`` ``[B]`` (1.0 when the prediction on x / on HA equals y),
    ``ha`` the HA images in input space ``[B, C, H, W]`` and the data-set ratio ``haas``
    (NaN when no sample of x is classified correctly)."""

    correct: Tensor
    correct_ha: Tensor
    ha: Tensor
    haas: Tensor


def normalise_attributions(a: Tensor, mode: str = "max-abs") -> Tensor:
    """Per-sample map to [−1, 1]: ``max-abs`` a / max|a| (keeps 0 and the sign: positive evidence
    stays positive; default) or ``min-max`` 2 (a − min)/(max − min) − 1. All-zero / constant maps
    give 0."""
    check_choice(mode, "attribution_norm", ("max-abs", "min-max"))
    dims = tuple(range(1, a.ndim))
    if mode == "max-abs":
        peak = a.abs().amax(dims, keepdim=True)
        return a / torch.where(peak == 0, torch.ones_like(peak), peak)
    lo, hi = a.amin(dims, keepdim=True), a.amax(dims, keepdim=True)
    span = hi - lo
    return torch.where(span == 0, torch.zeros_like(a), 2 * (a - lo) / torch.where(
        span == 0, torch.ones_like(span), span) - 1)


def heatmap_assisted_images(x: Tensor, a: Tensor, input_range: tuple[float, float],
                            attribution_norm: str = "max-abs") -> Tensor:
    """HA(x, a) = clip(x_norm (1 + a_norm), −1, 1) (eq. 9), returned in the input space.
    x_norm = 2 (x − lo)/(hi − lo) − 1 with ``input_range = (lo, hi)``; a single-channel map is
    applied to every channel."""
    lo, hi = input_range
    if not hi > lo:
        raise ValueError(f"input_range must be (low, high) with high > low, got {input_range!r}")
    x_norm = 2 * (x - lo) / (hi - lo) - 1
    ha = (x_norm * (1 + normalise_attributions(a, attribution_norm))).clamp(-1, 1)
    return (ha + 1) / 2 * (hi - lo) + lo


def haas(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *,
         input_range: tuple[float, float] = (-1.0, 1.0),
         attribution_norm: str = "max-abs", memory_budget: int | None = None) -> HaasResult:
    """HAAS (document 003, section 2.2.3): per-sample correctness on x and on HA, and
    HAAS = Acc(HA) / Acc(x) over the batch (eq. 10). ``input_range``: the value range of the
    model's inputs ((−1, 1) in document 003, whose images are scaled to [−1, 1]). ``a``
    ``[B, 1|C, H, W]`` is normalised per sample by ``attribution_norm``
    (:func:`normalise_attributions`; the document says only "normalized to [−1, 1]"; max-abs keeps
    the sign of the evidence). The 2B forward passes run in chunks bounded by ``memory_budget``
    (bytes).
    """
    check_images(x)
    check_targets(y, x.shape[0])
    a = check_attributions(a)
    if a.ndim == 3:
        a = a[:, None]
    check_spatial("a", a, x)
    with torch.inference_mode():
        ha = heatmap_assisted_images(x, a, input_range, attribution_norm)
        outputs = forward_chunks(model, torch.cat([x, ha]), memory_budget)
        check_classes(outputs, y)
        both = outputs.argmax(1)
        correct = (both[: len(x)] == y).to(x.dtype)
        correct_ha = (both[len(x):] == y).to(x.dtype)
        ratio = correct_ha.mean() / correct.mean() if bool(correct.any()) else torch.tensor(
            float("nan"))
        return HaasResult(correct, correct_ha, ha, ratio)


R.register(
    "haas", kind="model", function=haas,
    outputs=[R.Output("correct_x", "none", R.UNIT, "1 if the model classifies x correctly"),
             R.Output("correct_ha", "higher", R.UNIT, "1 if it classifies the heatmap-assisted "
                      "image HA correctly"),
             R.Output("haas", "higher", R.NON_NEGATIVE, "Acc(HA) / Acc(x) over the scored "
                      "samples (eq. 10)", level="set")],
    adapt=lambda raw, p: ({"correct_x": raw.correct, "correct_ha": raw.correct_ha}, {},
                          {"haas": float(raw.haas)}),
    cost=R.forward_passes(2), source="document 003, section 2.2.3", labels="true",
    summary="heatmap-assisted accuracy score")
