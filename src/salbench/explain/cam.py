"""CAM, Grad-CAM and HiResCAM in plain torch, with the raw map at feature resolution.

Document 003, section 2.1, with ``A^f`` the feature maps (``[F, D1, D2]``) of a layer and ``s^m``
the target logit:

- CAM (Definition 1):      Σ_f w_m^f A^f, with w the weights of the one linear layer that follows
  global average pooling (the CAM architecture; anything else is an error);
- Grad-CAM (Definition 2): Σ_f (mean_ij ∂s^m/∂A^f_ij) A^f;
- HiResCAM (Definition 3): Σ_f ∂s^m/∂A^f ⊙ A^f.

The *raw* map is the sum without ReLU or rescaling (document 003's faithfulness checks need it:
on Conv–Flatten–FC models the raw HiResCAM map sums to s^m − b^m, Proposition 4). ReLU and
min–max scaling are options of the upsampled map: ReLU, bilinear upsampling to the input size,
min–max to [0, 1] (what pytorch-grad-cam returns).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salbench.explain.checks import (
    check_batch,
    check_device,
    check_finite,
    check_model,
    preserved_model,
)
from salbench.explain.gradients import resolve_layer
from salbench.explain.registry import register

CAM_KINDS = ("cam", "gradcam", "hirescam")


def _capture(model: nn.Module, module: nn.Module, x: Tensor,
             use_input: bool = False) -> tuple[Tensor, Tensor]:
    """Run ``model(x)`` and return (logits, the module's output or input tensor)."""
    store: dict[str, Tensor] = {}

    def grab(mod: nn.Module, args: tuple, output: Tensor) -> None:
        value = args[0] if use_input else output
        if not isinstance(value, Tensor):
            raise TypeError(f"the CAM layer must produce one tensor, got {type(value).__name__}")
        store["a"] = value

    handle = module.register_forward_hook(grab)
    try:
        logits = model(x)
    finally:
        handle.remove()
    if "a" not in store:
        raise ValueError("the CAM layer was not called in the model's forward pass")
    features = store["a"]
    if features.ndim != 4:
        raise ValueError(f"the CAM layer must output feature maps [B, F, D1, D2], got shape "
                         f"{tuple(features.shape)}")
    return logits, features


def _cam_head(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """The CAM architecture's global-average-pooling module and the linear layer after it."""
    pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not pools or not linears:
        raise ValueError("CAM needs the CAM architecture (feature maps -> global average pooling "
                         "-> one linear layer, document 003 section 2.1.1); this model has no "
                         "nn.AdaptiveAvgPool2d or no nn.Linear. Use 'gradcam' or 'hirescam'.")
    return pools[-1], linears[-1]


def cam_maps(model: nn.Module, x: Tensor, y: Tensor | int, kind: str = "gradcam",
             layer: str | nn.Module | None = None, relu: bool = False,
             minmax: bool = False) -> tuple[Tensor, Tensor]:
    """(raw ``[B, 1, D1, D2]``, upsampled ``[B, 1, H, W]``) CAM-family maps for targets ``y``.

    ``kind``: "cam", "gradcam" or "hirescam". ``layer``: a module or dotted name; default the last
    ``nn.Conv2d`` for Grad-CAM/HiResCAM and, for CAM, the input of the last global average
    pooling. The raw map never has ReLU or scaling; ``relu``/``minmax`` (per sample, to [0, 1])
    apply to the upsampled map only. Like :func:`salbench.explain.explain`, the model runs in
    eval mode and is left as found; NaN/inf maps raise an error.
    """
    model = check_model(model)
    x, y = check_batch(x, y)
    check_device(model, x)
    with preserved_model(model):
        raw, up = _cam_maps(model, x, y, kind, layer, relu, minmax)
    check_finite(raw, kind)
    return raw, check_finite(up, kind)


def _cam_maps(model: nn.Module, x: Tensor, y: Tensor, kind: str,
              layer: str | nn.Module | None, relu: bool, minmax: bool) -> tuple[Tensor, Tensor]:
    if kind not in CAM_KINDS:
        raise ValueError(f"kind must be one of {CAM_KINDS}, got {kind!r}")
    if kind == "cam":
        raw = _cam_raw(model, x, y, layer)
    else:
        module = resolve_layer(model, layer)
        logits, features = _capture(model, module, x)
        score = logits.gather(1, y[:, None]).sum()
        (grad,) = torch.autograd.grad(score, features)
        features = features.detach()
        if kind == "gradcam":
            raw = (grad.mean(dim=(2, 3), keepdim=True) * features).sum(1, keepdim=True)
        else:
            raw = (grad * features).sum(1, keepdim=True)
    return raw, upsample(raw, x.shape[-2:], relu=relu, minmax=minmax)


def _cam_raw(model: nn.Module, x: Tensor, y: Tensor, layer: str | nn.Module | None) -> Tensor:
    pool, linear = _cam_head(model)
    module = pool if layer is None else resolve_layer(model, layer)
    with torch.no_grad():
        logits, features = _capture(model, module, x, use_input=layer is None)
        if features.shape[1] != linear.in_features:
            raise ValueError(f"CAM needs the CAM architecture: the layer has {features.shape[1]} "
                             f"feature maps but the last linear layer takes "
                             f"{linear.in_features} inputs. Use 'gradcam' or 'hirescam'.")
        expected = linear(features.mean(dim=(2, 3)))
        if not torch.allclose(expected, logits, rtol=1e-4, atol=1e-4 * float(logits.abs().max())):
            raise ValueError("CAM needs the CAM architecture (layer -> global average pooling -> "
                             "one linear layer, document 003 section 2.1.1): the logits are not "
                             "W·GAP(A) + b for this model and layer. Use 'gradcam' or 'hirescam'.")
        weights = linear.weight[y]  # [B, F]
        return (weights[:, :, None, None] * features).sum(1, keepdim=True)


CONSTANT_RTOL = 1e-5
"""Relative spread below which a map counts as spatially constant before min–max scaling
(bilinear resizing of a constant map leaves rounding noise of ~1e-7 of its value)."""


def upsample(raw: Tensor, size: tuple[int, int] | torch.Size, relu: bool = False,
             minmax: bool = False) -> Tensor:
    """Optional ReLU, bilinear resize to ``size`` (half-pixel centres, as OpenCV), then optional
    per-sample min–max to [0, 1] (pytorch-grad-cam's final scaling; min–max commutes with the
    linear resize up to its range, so scaling before resizing as well changes nothing). A map
    that is spatially constant up to float rounding (spread ≤ :data:`CONSTANT_RTOL` of its
    largest |value|, e.g. a 1×1 feature map resized) scales to zeros, as pytorch-grad-cam's."""
    out = raw.clamp(min=0) if relu else raw
    out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
    if minmax:
        flat = out.flatten(1)
        low = flat.amin(1).view(-1, 1, 1, 1)
        high = flat.amax(1).view(-1, 1, 1, 1)
        spread = high - low
        constant = spread <= CONSTANT_RTOL * torch.maximum(high.abs(), low.abs())
        out = torch.where(constant, torch.zeros_like(out), (out - low) / (spread + 1e-7))
    return out


def _registered(kind: str):
    def method(model: nn.Module, x: Tensor, y: Tensor, layer: str | nn.Module | None = None,
               relu: bool = True, minmax: bool = False) -> Tensor:
        return _cam_maps(model, x, y, kind, layer, relu, minmax)[1]

    method.__name__ = kind
    method.__doc__ = (f"{kind} map upsampled to the input size, ``[B, 1, H, W]``; ReLU on by "
                      "default (the definition), min–max off (a named post-processing step).")
    return method


for _kind, _summary in (
    ("cam", "CAM: Σ_f w_m^f A^f on GAP models (document 003, Definition 1)"),
    ("gradcam", "Grad-CAM: gradient-averaged feature maps (document 003, Definition 2)"),
    ("hirescam", "HiResCAM: gradient ⊙ feature maps (document 003, Definition 3)"),
):
    register(_kind, "torch", _summary)(_registered(_kind))


def cam_layers(model: nn.Module) -> dict[str, str]:
    """Module names of the layer choices of document 003's table 1 in a zoo VGG or ResNet.

    ``last``: the feature maps that enter the head (VGG: the last ``Conv2d`` of ``features``,
    which the surgery's heads read directly, the trailing ReLU, pooling and on VGG-BN BatchNorm
    removed; ResNet: ``layer4``, the last block's output, which includes the residual sum): the
    layer of propositions 1–4. ``last_conv2d`` (ResNets only; for VGG it is ``last``): the last
    ``nn.Conv2d``, inside the last block, before the residual sum. ``earlier``: one block before
    (VGG: the last ``Conv2d`` of the previous block; ResNet: ``layer3``).
    """
    if hasattr(model, "features"):
        layers = list(model.features)
        convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
        pools = [i for i, m in enumerate(layers) if isinstance(m, (nn.MaxPool2d, nn.Identity))]
        last = convs[-1]
        boundary = max(i for i in pools if i < last)
        earlier = max(i for i in convs if i < boundary)
        return {"last": f"features.{last}", "earlier": f"features.{earlier}"}
    if hasattr(model, "layer4"):
        convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        return {"last": "layer4", "last_conv2d": convs[-1], "earlier": "layer3"}
    raise ValueError("cam_layers needs a zoo VGG or ResNet (a 'features' or 'layer4' module)")
