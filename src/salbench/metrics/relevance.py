"""Checks of LRP relevance maps themselves (document 002, sections 2.1.5 and 3): whether a map is
finite at all (the vanilla stabiliser divides 0 by 0 and gives NaN, fig. 2.5), and how much
relevance every layer keeps (the conservation property of eq. 2.2 "between layers", fig. 3.2).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from salbench.explain import relevance_by_layer
from salbench.metrics import registry as R
from salbench.metrics._checks import check_images, check_targets

TINY_LOGIT = 1e-12  # |f_y(x)| below this is replaced by it before dividing


def finite(a: Tensor) -> Tensor:
    """Per sample: 1 if every value of the map ``a`` ``[B, ...]`` is finite, 0 if one is NaN or
    infinite (such maps are reported, never scored: DESIGN.md, "Errors")."""
    if not isinstance(a, Tensor) or a.ndim < 2 or not a.is_floating_point():
        raise ValueError(f"a must be a floating-point tensor [B, ...], got "
                         f"{getattr(a, 'shape', type(a).__name__)}")
    return torch.isfinite(a.flatten(1)).all(1).double()


def layer_conservation(model: nn.Module, x: Tensor, y: Tensor, *,
                       lrp_method: str = "lrp_tutorial",
                       lrp_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Relevance kept through the layers by the LRP method ``lrp_method`` (with ``lrp_params``,
    e.g. ``{"composite": ...}`` of ``lrp_composite``): per sample and position k the ratio
    Σ R⁽ᵏ⁾ / f_y(x), k = 0 the output (ratio 1), then the input of every conv/linear layer from
    the top down, the pixels last (1 everywhere = conserved; document 002, eq. 2.2, fig. 3.2).
    Returns ``ratios`` ``[B, K]`` and the ``layers`` named at each position."""
    check_images(x)
    check_targets(y, x.shape[0])
    sums = relevance_by_layer(model, x, y, lrp_method, **dict(lrp_params or {}))
    layers = ["output", *[k for k in reversed(sums) if k not in ("output", "input")], "input"]
    logit = sums["output"].double()
    logit = torch.where(logit.abs() < TINY_LOGIT, torch.full_like(logit, TINY_LOGIT), logit)
    ratios = torch.stack([sums[k].double() / logit for k in layers], 1)
    return {"ratios": ratios, "layers": layers}


def _layer_result(raw: dict[str, Any], params: dict[str, Any]) -> tuple[dict, dict, dict]:
    ratios = raw["ratios"].cpu()
    curve = R.Curve(torch.arange(ratios.shape[1], dtype=torch.float64), ratios,
                    "position from the output", tuple(raw["layers"]))
    return {"input_ratio": ratios[:, -1]}, {"relevance_ratio": curve}, {}


R.register(
    "finite", kind="map", function=finite,
    outputs=[R.Output("finite", "higher", R.UNIT, "1 if the map holds no NaN or inf")],
    adapt=R.single("finite"), cost=R.free,
    source="document 002, section 2.1.5 (fig. 2.5)",
    summary="whether a map is finite (zero LRP denominators give NaN)")
R.register(
    "layer_conservation", kind="classifier", function=layer_conservation,
    outputs=[R.Output("input_ratio", "none", R.UNBOUNDED,
                      "Σ relevance at the pixels / f_y(x) (1 = conserved)")],
    curves=["relevance_ratio"], adapt=_layer_result,
    cost=lambda params, shape, model=None: R.Cost(explanations=1),
    source="document 002, eq. 2.2 and fig. 3.2",
    summary="Σ relevance / f_y(x) at every layer of an LRP pass")
