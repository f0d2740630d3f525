"""The identities of document 003's table 1, measured: how far a raw CAM-family map is from
HiResCAM, and whether it sums to the class score minus its bias (section 3, propositions 1–4).

With ``A`` the feature maps ``[F, D1, D2]`` of a layer, ``s^m`` the logit of class m and ``b^m``
the bias of the last linear layer for m:

- on *Conv – GAP – Class scores* at the GAP input, Grad-CAM = HiResCAM = CAM / (D1·D2) and each
  sums to s^m − b^m (propositions 1–3);
- on *Conv – Flatten – Class scores* at the last convolutional layer, only HiResCAM sums to
  s^m − b^m (proposition 4, eq. 20);
- at any other layer, or with a dense head, none does.

These outputs test theorems; they rank no method (direction ``none``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from salbench.explain import cam_maps, preserved_model
from salbench.metrics import registry as R
from salbench.metrics._checks import check_choice, check_images, check_targets

KINDS = ("cam", "gradcam", "hirescam")


def relative_l1(a: Tensor, b: Tensor) -> Tensor:
    """‖a − b‖₁ / (‖a‖₁ + ‖b‖₁) per sample, in [0, 1]; 0 iff a = b."""
    num = (a - b).abs().flatten(1).sum(1)
    den = a.abs().flatten(1).sum(1) + b.abs().flatten(1).sum(1)
    return (num / den.clamp_min(torch.finfo(den.dtype).tiny)).double()


def contribution_error(raw: Tensor, contribution: Tensor) -> Tensor:
    """|Σ_ij raw_ij − (s^m − b^m)| / (‖raw‖₁ + |s^m − b^m|) per sample, in [0, 1]; 0 iff the map
    sums exactly to the class score minus its bias (document 003, eq. 20)."""
    total = raw.flatten(1).sum(1)
    den = raw.abs().flatten(1).sum(1) + contribution.abs()
    return ((total - contribution).abs() / den.clamp_min(torch.finfo(den.dtype).tiny)).double()


def class_bias(model: nn.Module, y: Tensor) -> Tensor:
    """b^m of the class scores: the bias of the model's last ``nn.Linear`` for classes ``y``
    (zero when it has none)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer producing the class scores")
    bias = linears[-1].bias
    return bias[y].detach() if bias is not None else torch.zeros(len(y), device=y.device)


def cam_identities(model: nn.Module, x: Tensor, y: Tensor, *, kind: str = "gradcam",
                   layer: str | None = None) -> dict[str, Tensor]:
    """Table 1's measurements of the raw (no ReLU, no scaling) ``kind`` map at ``layer`` for the
    classes ``y`` (document 003, section 3).

    Per sample: ``distance_to_hirescam`` = :func:`relative_l1` to the raw HiResCAM map at the
    same layer; ``contribution_error`` = :func:`contribution_error` against s^m − b^m (eq. 20);
    ``feature_height``, ``feature_width`` = D1, D2 of the layer. ``kind="cam"`` scores
    CAM / (D1·D2) (the CAM architecture only; proposition 3's scaling). ``layer``: a module name;
    None is :func:`salbench.explain.cam_maps`' default (the last ``nn.Conv2d``; for CAM the input
    of the global average pooling). The model is left as found.
    """
    check_images(x)
    check_targets(y, x.shape[0])
    check_choice(kind, "kind", KINDS)
    with preserved_model(model):
        with torch.no_grad():
            logits = model(x)
        contribution = (logits.gather(1, y[:, None])[:, 0] - class_bias(model, y)).double()
        hirescam = cam_maps(model, x, y, "hirescam", layer=layer)[0].double()
        raw = hirescam if kind == "hirescam" else cam_maps(model, x, y, kind, layer=layer)[0]
        raw = raw.double()
        if kind == "cam":
            raw = raw / (raw.shape[-2] * raw.shape[-1])
    height, width = raw.shape[-2:]
    return {"distance_to_hirescam": relative_l1(raw, hirescam),
            "contribution_error": contribution_error(raw, contribution),
            "feature_height": torch.full((len(x),), float(height), dtype=torch.float64),
            "feature_width": torch.full((len(x),), float(width), dtype=torch.float64)}


def _cost(params, shape, model=None) -> R.Cost:
    """One forward pass, then one forward and backward pass per raw map (HiResCAM and ``kind``)."""
    return R.Cost(forward=1.0, explanations=1.0 if params["kind"] == "hirescam" else 2.0)


R.register(
    "cam_identities", kind="classifier", function=cam_identities,
    outputs=[R.Output("distance_to_hirescam", "none", R.UNIT,
                      "‖map − HiResCAM‖₁ / (‖map‖₁ + ‖HiResCAM‖₁) of the raw maps"),
             R.Output("contribution_error", "none", R.UNIT,
                      "|Σ map − (s − b)| / (‖map‖₁ + |s − b|); 0: it sums to the class score"),
             R.Output("feature_height", "none", R.NON_NEGATIVE, "D1 of the layer"),
             R.Output("feature_width", "none", R.NON_NEGATIVE, "D2 of the layer")],
    adapt=lambda raw, p: (raw, {}, {}), cost=_cost,
    source="document 003, section 3 (propositions 1–4, eq. 20, table 1)",
    summary="whether a raw CAM-family map equals HiResCAM and sums to the class score")
