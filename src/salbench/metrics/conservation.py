"""Relevance conservation of LRP maps (document 002, sections 2.1 and 3.2): the relevance of the
input pixels should sum to the explained output, Σ_p R_p = f_y(x).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from salbench.metrics import registry as R
from salbench.metrics._checks import (
    check_attributions,
    check_classes,
    check_images,
    check_spatial,
    check_targets,
    forward_chunks,
)


def conservation(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *,
                 memory_budget: int | None = None) -> dict[str, Tensor]:
    """Per sample: ``error`` = |Σ a − f_y(x)| / |f_y(x)| (0 = relevance conserved; f_y the logit
    of class y), and the map's ``relevance_min`` / ``relevance_max`` (document 002, fig. 3.2)."""
    check_images(x)
    check_targets(y, x.shape[0])
    a = check_attributions(a)
    check_spatial("a", a, x)
    with torch.inference_mode():
        outputs = forward_chunks(model, x, memory_budget)
        check_classes(outputs, y)
        logit = outputs.gather(1, y[:, None])[:, 0].double()
    flat = a.flatten(1).double()
    error = (flat.sum(1) - logit).abs() / logit.abs().clamp_min(1e-12)
    return {"conservation_error": error, "relevance_min": flat.amin(1),
            "relevance_max": flat.amax(1)}


R.register(
    "conservation", kind="model", function=conservation,
    outputs=[R.Output("conservation_error", "lower", R.NON_NEGATIVE,
                      "|Σ relevance − f_y(x)| / |f_y(x)|"),
             R.Output("relevance_min", "none", R.UNBOUNDED, "smallest value of the map"),
             R.Output("relevance_max", "none", R.UNBOUNDED, "largest value of the map")],
    adapt=lambda raw, p: (raw, {}, {}), cost=R.forward_passes(1),
    source="document 002, sections 2.1 and 3.2",
    summary="how much relevance an LRP map loses or creates")
