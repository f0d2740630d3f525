"""Layer-wise relevance propagation through Zennit: rules, composites, stabilisers, canonizers.

Document 002, section 2.1. Rules (table 2.2) are Zennit hooks: LRP-0 and LRP-ε (``Epsilon``),
LRP-γ (``Gamma``), z^B (``ZBox``, bounds from the input range), flat (``Flat``), α-β
(``AlphaBeta``) and z⁺ (``ZPlus``). A composite maps *layer indices* to rules. Layer index
here counts the model's convolutional and linear layers in registration order, 0 being the pixel
layer; document 002 counts VGG-16 module positions, and its tables translate exactly:

- ``lrp_tutorial`` (table 2.4): 0 z^B, 1–6 γ=0.25, 7–12 ε=0.25, 13– LRP-0
  (VGG-16 modules 0, 1–16, 17–30, 31–n);
- ``lrp_decreasing_gamma`` (table 2.3): 0 z^B, 1–4 γ=0.5, 5–7 γ=0.25, 8–10 γ=0.1, 11– γ=0
  (modules 0, 2–10, 11–17, 18–24, 25–31; the table stops at 31, the last range is left open so
  the two classifier layers after it also get γ=0).

Batch norms do not count: on VGG-16-BN (conv, BN, ReLU per conv) index k is the same
convolution as on VGG-16 (index 1: ``features.2`` on VGG-16, ``features.3`` on VGG-16-BN), so
every table means the same layers on both; document 002's *module* positions would not.

The relevance of the output is the target logit (R = f_y(x) at the target, 0 elsewhere), so
Σ_i R_i = f_y(x) when every rule conserves (eq. 2.2). Denominator stabilisers (section 2.1.5),
for a rule with parameter ε (the ε of LRP-ε, 0 for every other rule):

- ``vanilla``:  z + ε (no guard: zero denominators give NaN/inf, reported as an error);
- ``zennit``:   z + (1[z=0] + sign z)·ε, with ε = 1e-6 (Zennit's default) where the rule has none;
- ``tutorial``: z + ε·sqrt(mean(z²)) + 1e-9, the mean taken per sample (the tutorial's code takes
  it over its batch of one).

Canonizers (``canonizer="auto"``): batch norms are merged into the preceding layer
(:class:`ExactMergeBatchNorm`, Zennit's ``SequentialMergeBatchNorm`` leaving the batch norm an
exact identity) and ResNet residual sums become a ``Sum`` module with the Norm rule (a salbench
canonizer for ``make_explainable``'s blocks). A canonizer must not change the function: the
canonized model's logits are compared with the original's and a difference above
``CANONIZED_RTOL`` of the sample's largest |logit| raises :class:`CanonizationError`, checked on
the first batch a model is explained on with given weights and canonizers (a wrong merge is a
matter of structure and shows on any input; each later call saves the extra forward pass).
Models must come from ``salbench.models.make_explainable`` when they reuse a module within one
forward pass.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from zennit.canonizers import AttributeCanonizer, Canonizer, SequentialMergeBatchNorm
from zennit.composites import (
    EpsilonGammaBox,
    EpsilonPlusFlat,
    NameLayerMapComposite,
    layer_map_base,
)
from zennit.core import Composite, Stabilizer
from zennit.layer import Sum
from zennit.rules import AlphaBeta, Epsilon, Flat, Gamma, ZBox, ZPlus

from salbench.config import Config
from salbench.explain.checks import (
    check_batch,
    check_device,
    check_model,
    preserved_model,
    require_explainable,
    weights_version,
)
from salbench.explain.registry import get_method, register
from salbench.models.surgery import (
    ExplainableBasicBlock,
    ExplainableBottleneck,
    HeadlessBottleneck,
)

STABILISERS = ("vanilla", "zennit", "tutorial")
CANONIZERS = ("auto", "none", "merge_bn", "resnet")
RULES = ("lrp0", "epsilon", "gamma", "zbox", "flat", "alpha_beta", "zplus")
ZENNIT_GUARD = 1e-6
"""Zennit's default stabiliser ε, used by the ``zennit`` stabiliser for rules without an ε."""
TUTORIAL_GUARD = 1e-9
"""The constant the LRP tutorial adds to every denominator (document 002, section 2.1.5)."""
CANONIZED_RTOL = 1e-3
"""Largest |canonized − original| logit allowed, relative to the sample's largest |logit|: float32
rounding of merged batch norms reaches 2e-4 on trained VGG-16-BN (measured), a wrong merge
changes the logits by tens of percent."""


class CanonizationError(ValueError):
    """The canonized model's logits differ from the original's: it is not the model explained."""


# ---- stabilisers ----------------------------------------------------------------------------


def stabiliser(kind: str, epsilon: float = 0.0) -> Callable[[Tensor], Tensor]:
    """The denominator function z -> stabilised z of document 002, section 2.1.5."""
    if kind == "vanilla":
        return lambda z: z + epsilon
    if kind == "zennit":
        return Stabilizer(epsilon=epsilon if epsilon > 0 else ZENNIT_GUARD)
    if kind == "tutorial":
        def tutorial(z: Tensor) -> Tensor:
            rms = z.pow(2).flatten(1).mean(1).sqrt().view(-1, *([1] * (z.ndim - 1)))
            return z + epsilon * rms + TUTORIAL_GUARD
        return tutorial
    raise ValueError(f"stabiliser must be one of {STABILISERS}, got {kind!r}")


# ---- rules ----------------------------------------------------------------------------------


class RuleRange(Config):
    """Layers ``first``..``last`` (inclusive; ``last=None``: to the end) get ``rule`` with params.

    Params by rule: epsilon: ``epsilon``; gamma: ``gamma``; alpha_beta: ``alpha``, ``beta``;
    zbox: ``low``, ``high`` (a number or one per channel; default: each sample's smallest and
    largest input value).
    """

    first: int = Field(ge=0)
    last: int | None = Field(default=None, ge=0)
    rule: Literal["lrp0", "epsilon", "gamma", "zbox", "flat", "alpha_beta", "zplus"]
    params: dict[str, float | list[float]] = Field(default_factory=dict)


class CompositeSpec(Config):
    """A layer-index composite: rule ranges, the stabiliser and the canonizer (a YAML-able
    config)."""

    ranges: list[RuleRange]
    stabiliser: Literal["vanilla", "zennit", "tutorial"] = "zennit"
    canonizer: Literal["auto", "none", "merge_bn", "resnet"] = "auto"


_RULE_PARAMS = {"lrp0": set(), "epsilon": {"epsilon"}, "gamma": {"gamma"}, "zbox": {"low", "high"},
                "flat": set(), "alpha_beta": {"alpha", "beta"}, "zplus": set()}


def make_rule(rule: str, params: dict[str, Any], stabiliser_kind: str, x: Tensor) -> Any:
    """A Zennit hook for ``rule`` with ``params`` and the chosen stabiliser."""
    if rule not in _RULE_PARAMS:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    unknown = set(params) - _RULE_PARAMS[rule]
    if unknown:
        raise ValueError(f"rule {rule!r} takes parameters {sorted(_RULE_PARAMS[rule])}, "
                         f"got {sorted(unknown)}")
    guard = stabiliser(stabiliser_kind, 0.0)
    if rule == "lrp0":
        return Epsilon(epsilon=guard)
    if rule == "epsilon":
        return Epsilon(epsilon=stabiliser(stabiliser_kind, float(params.get("epsilon", 0.25))))
    if rule == "gamma":
        return Gamma(gamma=float(params.get("gamma", 0.25)), stabilizer=guard)
    if rule == "zbox":
        low, high = input_bounds(x, params.get("low"), params.get("high"))
        return ZBox(low=low, high=high, stabilizer=guard)
    if rule == "flat":
        return Flat(stabilizer=guard)
    if rule == "alpha_beta":
        return AlphaBeta(alpha=float(params.get("alpha", 2.0)), beta=float(params.get("beta", 1.0)),
                         stabilizer=guard)
    return ZPlus(stabilizer=guard)


def input_bounds(x: Tensor, low: Any = None, high: Any = None) -> tuple[Tensor, Tensor]:
    """z^B bounds: given numbers/tensors, or each sample's smallest and largest value ``[B,1,1,1]``
    (document 002, table 2.1: "lowest and highest pixel values of x")."""
    flat = x.detach().flatten(1)

    def given(value: Any) -> Tensor:
        tensor = torch.as_tensor(value).to(x)
        if tensor.ndim == 1 and tensor.numel() == x.shape[1]:
            tensor = tensor.view(1, -1, 1, 1)  # one bound per channel
        return tensor

    lo = flat.amin(1).view(-1, 1, 1, 1) if low is None else given(low)
    hi = flat.amax(1).view(-1, 1, 1, 1) if high is None else given(high)
    return lo, hi


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every Conv/Linear layer in registration order: the layer indices."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]


def tutorial_ranges(gamma: float = 0.25, epsilon: float = 0.25) -> list[RuleRange]:
    """LRP_Tutorial, document 002 table 2.4, in layer indices (see the module docstring)."""
    return [RuleRange(first=0, last=0, rule="zbox"),
            RuleRange(first=1, last=6, rule="gamma", params={"gamma": gamma}),
            RuleRange(first=7, last=12, rule="epsilon", params={"epsilon": epsilon}),
            RuleRange(first=13, last=None, rule="lrp0")]


def decreasing_gamma_ranges(gammas: Sequence[float] = (0.5, 0.25, 0.1, 0.0)) -> list[RuleRange]:
    """LRP_Decreasing-γ, document 002 table 2.3 (Eberle et al.), in layer indices."""
    if len(gammas) != 4:
        raise ValueError(f"gammas must hold 4 values (table 2.3), got {list(gammas)}")
    bounds = [(1, 4), (5, 7), (8, 10), (11, None)]
    return [RuleRange(first=0, last=0, rule="zbox")] + [
        RuleRange(first=a, last=b, rule="gamma", params={"gamma": g})
        for (a, b), g in zip(bounds, gammas)]


def name_map(model: nn.Module, ranges: Sequence[RuleRange], stabiliser_kind: str,
             x: Tensor) -> list[tuple[tuple[str, ...], Any]]:
    """Zennit ``name_map`` for ``NameMapComposite``: the layer names of each range with its rule."""
    layers = linear_layers(model)
    if not layers:
        raise ValueError("LRP needs at least one convolutional or linear layer")
    taken: set[int] = set()
    mapping = []
    for spec in ranges:
        last = len(layers) - 1 if spec.last is None else min(spec.last, len(layers) - 1)
        indices = list(range(spec.first, last + 1))
        overlap = taken.intersection(indices)
        if overlap:
            raise ValueError(f"rule ranges overlap at layer indices {sorted(overlap)}")
        taken.update(indices)
        if indices:
            names = tuple(layers[i][0] for i in indices)
            mapping.append((names, make_rule(spec.rule, spec.params, stabiliser_kind, x)))
    return mapping


# ---- canonizers -----------------------------------------------------------------------------


class ExactMergeBatchNorm(SequentialMergeBatchNorm):
    """Zennit's ``SequentialMergeBatchNorm`` (a batch norm right after a conv/linear layer in
    registration order is merged into it: W·γ/√(σ²+ε), (b − μ)·γ/√(σ²+ε) + β) with the batch norm
    left an exact identity. Zennit 0.5.1 resets it to mean 0, variance 1 but keeps its ε, so each
    merged batch norm still divides by √(1 + ε) (VGG-16-BN logits off by ~5e-5 relative); here its
    running variance becomes 1 − ε (PyTorch ≥ 2.10 refuses ε = 0, Zennit issue 234). Parameters
    and buffers are restored when the composite's context exits."""

    @staticmethod
    def merge_batch_norm(modules, batch_norm):
        SequentialMergeBatchNorm.merge_batch_norm(modules, batch_norm)
        batch_norm.running_var.data = torch.full_like(batch_norm.running_var.data,
                                                      1.0 - batch_norm.eps)


def _block_forward(kind: str):
    def basic(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(self.canonizer_sum(torch.stack([identity, out], dim=-1)))

    def bottleneck(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu2(self.bn2(self.conv2(out)))))
        return self.relu(self.canonizer_sum(torch.stack([identity, out], dim=-1)))

    def headless(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))))
        return self.canonizer_sum(torch.stack([identity, out], dim=-1))

    return {"basic": basic, "bottleneck": bottleneck, "headless": headless}[kind]


def _residual_attributes(name: str, module: nn.Module) -> dict | None:
    kinds = ((ExplainableBottleneck, "bottleneck"), (ExplainableBasicBlock, "basic"),
             (HeadlessBottleneck, "headless"))
    for cls, kind in kinds:
        if type(module) is cls:
            return {"forward": _block_forward(kind).__get__(module), "canonizer_sum": Sum()}
    return None


class ResidualSumCanonizer(AttributeCanonizer):
    """Route the residual sum of ``make_explainable``'s ResNet blocks through a Zennit ``Sum``
    module (Norm rule: relevance split in proportion to each branch's contribution)."""

    def __init__(self) -> None:
        super().__init__(_residual_attributes)

    def copy(self) -> ResidualSumCanonizer:
        return ResidualSumCanonizer()


def make_canonizers(model: nn.Module, kind: str) -> list[Canonizer]:
    """Canonizers for ``model``: "auto" merges batch norms when present and adds the residual
    ``Sum`` for ResNet blocks; "merge_bn", "resnet" (both) and "none" force a choice."""
    if kind not in CANONIZERS:
        raise ValueError(f"canonizer must be one of {CANONIZERS}, got {kind!r}")
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    has_blocks = any(_residual_attributes("", m) is not None for m in model.modules())
    if kind == "none":
        return []
    if kind == "merge_bn" or (kind == "auto" and not has_blocks):
        return [ExactMergeBatchNorm()] if (has_bn or kind == "merge_bn") else []
    return [ExactMergeBatchNorm(), ResidualSumCanonizer()]


def build_composite(model: nn.Module, spec: CompositeSpec, x: Tensor) -> Composite:
    """A Zennit composite: the spec's rules by layer name, Zennit's base rules (Pass for
    activations and batch norm, Norm for sums and average pooling) for everything else."""
    base = layer_map_base(stabiliser(spec.stabiliser, 0.0))
    return NameLayerMapComposite(name_map=name_map(model, spec.ranges, spec.stabiliser, x),
                                 layer_map=base, canonizers=make_canonizers(model, spec.canonizer))


# ---- attribution ----------------------------------------------------------------------------


_CANONIZATION_CHECKED: weakref.WeakKeyDictionary[nn.Module, set[tuple]] = (
    weakref.WeakKeyDictionary())
"""Per model, the (canonizer kinds, weights version) whose canonized logits passed the check."""


class CanonizationCheck:
    """:func:`check_canonized_logits` of ``model`` under ``canonizers`` on its first batch per
    weights and canonizers: made before canonizing (the original logits on ``x``, one forward
    pass, unless already checked), called with the canonized logits."""

    def __init__(self, model: nn.Module, x: Tensor, canonizers: Sequence[Canonizer]) -> None:
        self.model, self.canonizers = model, canonizers
        self.key = (tuple(type(c).__name__ for c in canonizers), weights_version(model))
        self.reference = None
        if canonizers and self.key not in _CANONIZATION_CHECKED.get(model, ()):
            with torch.no_grad():
                self.reference = model(x)

    def __call__(self, canonized: Tensor) -> None:
        if self.reference is not None:
            check_canonized_logits(canonized, self.reference, self.canonizers)
            _CANONIZATION_CHECKED.setdefault(self.model, set()).add(self.key)


def lrp_attribute(model: nn.Module, x: Tensor, y: Tensor, composite: Composite,
                  method: str = "lrp", layers: dict[str, nn.Module] | None = None,
                  ) -> tuple[Tensor, dict[str, Tensor]]:
    """Relevance at the input ``[B, C, H, W]`` under ``composite`` (output relevance = target
    logit), plus, for each module in ``layers``, the relevance sum at its input ``[B]``. With
    canonizers the canonized logits are checked against the original's
    (:func:`check_canonized_logits`) once per model, weights and canonizers."""
    require_explainable(model, x, method, allow_inplace=True)
    check = CanonizationCheck(model, x, composite.canonizers)
    captured: dict[str, Tensor] = {}
    handles = []

    def capture(name: str):
        def pre_hook(module: nn.Module, args: tuple) -> tuple:
            tapped = args[0].view_as(args[0])
            tapped.register_hook(lambda grad: captured.__setitem__(name, grad * 1.0))
            return (tapped, *args[1:])
        return pre_hook

    for name, module in (layers or {}).items():
        handles.append(module.register_forward_pre_hook(capture(name), prepend=True))
    try:
        with composite.context(model) as modified:
            inputs = x.detach().clone().requires_grad_(True)
            output = modified(inputs)
            check(output.detach())
            score = output.gather(1, y[:, None])
            start = torch.zeros_like(output).scatter(1, y[:, None], score.detach())
            (relevance,) = torch.autograd.grad(output, inputs, grad_outputs=start)
    finally:
        for handle in handles:
            handle.remove()
    sums = {"output": score.detach().flatten()}
    for name in (layers or {}):
        if name in captured:
            sums[name] = captured[name].flatten(1).sum(1)
    sums["input"] = relevance.flatten(1).sum(1)
    return relevance, sums


def check_canonized_logits(canonized: Tensor, original: Tensor,
                           canonizers: Sequence[Canonizer]) -> None:
    """Raise :class:`CanonizationError` unless |canonized − original| ≤ ``CANONIZED_RTOL`` ·
    max_k |original_k| for every sample and class (logits ``[B, K]``)."""
    scale = original.abs().amax(1, keepdim=True)
    deviation = (canonized - original).abs()
    if bool((deviation > CANONIZED_RTOL * scale).any()):
        error = (deviation / scale.clamp_min(torch.finfo(scale.dtype).tiny)).amax()
        names = sorted({type(c).__name__ for c in canonizers})
        raise CanonizationError(
            f"canonizers {names} changed the model's logits by up to {float(error):.2e} of the "
            f"largest |logit| (tolerance {CANONIZED_RTOL:g}): the canonized model is not the one "
            "being explained. SequentialMergeBatchNorm merges a batch norm into the conv/linear "
            "layer registered just before it, which must also run just before it; pass "
            "canonizer='none' to explain without canonization")


_NAMED = {
    "lrp_tutorial": lambda p: tutorial_ranges(p.pop("gamma", 0.25), p.pop("epsilon", 0.25)),
    "lrp_decreasing_gamma": lambda p: decreasing_gamma_ranges(
        p.pop("gammas", (0.5, 0.25, 0.1, 0.0))),
}


def _common(stabiliser_kind: str, canonizer: str) -> None:
    if stabiliser_kind not in STABILISERS:
        raise ValueError(f"stabiliser must be one of {STABILISERS}, got {stabiliser_kind!r}")
    if canonizer not in CANONIZERS:
        raise ValueError(f"canonizer must be one of {CANONIZERS}, got {canonizer!r}")


def _uniform(rule: str, params: dict, first_rule: str | None) -> list[RuleRange]:
    ranges = [RuleRange(first=1 if first_rule else 0, rule=rule, params=params)]
    if first_rule:
        ranges.insert(0, RuleRange(first=0, last=0, rule=first_rule))
    return ranges


def composite_spec(model: nn.Module, x: Tensor, method: str,
                   params: dict[str, Any]) -> CompositeSpec:
    """The layer-index composite behind a registered LRP method name with its parameters.
    Zennit's ``EpsilonPlusFlat`` and ``EpsilonGammaBox`` assign rules by layer type; here they
    are the same rules by layer index: flat on the first layer, z⁺ on convolutions, ε on linear
    layers; z^B on the first convolution, γ on the other convolutions, ε on linear layers."""
    params = dict(params)
    params.pop("backend", None)
    kind = params.pop("stabiliser", "zennit")
    canonizer = params.pop("canonizer", "auto")
    _common(kind, canonizer)
    if method == "lrp_composite":
        spec = params.pop("composite")
        if spec is None:
            raise ValueError("lrp_composite needs composite=CompositeSpec(...) or a mapping "
                             "{'ranges': [...], 'stabiliser': ..., 'canonizer': ...}")
        return spec if isinstance(spec, CompositeSpec) else CompositeSpec.parse(spec)
    if method in ("lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box"):
        ranges = _by_layer_type(model, method, params)
    elif method in _NAMED:
        ranges = _NAMED[method](params)
    else:
        rule = {"lrp_0": "lrp0", "lrp_epsilon": "epsilon", "lrp_gamma": "gamma",
                "lrp_alpha_beta": "alpha_beta", "lrp_flat": "flat", "lrp_zplus": "zplus"}[method]
        first = params.pop("first_rule", None)
        ranges = _uniform(rule, {k: params.pop(k) for k in list(params) if k in
                                 _RULE_PARAMS[rule]}, first)
    return CompositeSpec(ranges=ranges, stabiliser=kind, canonizer=canonizer)


def _by_layer_type(model: nn.Module, method: str, params: dict[str, Any]) -> list[RuleRange]:
    """EpsilonPlusFlat / EpsilonGammaBox as one rule range per conv/linear layer."""
    epsilon = {"epsilon": float(params.get("epsilon", 1e-6))}
    box = {k: params[k] for k in ("low", "high") if params.get(k) is not None}
    convs = [i for i, (_, m) in enumerate(linear_layers(model)) if not isinstance(m, nn.Linear)]
    ranges = []
    for i, (_, module) in enumerate(linear_layers(model)):
        if isinstance(module, nn.Linear) and not (method == "lrp_epsilon_plus_flat" and i == 0):
            rule, rule_params = "epsilon", epsilon
        elif method == "lrp_epsilon_plus_flat":
            rule, rule_params = ("flat", {}) if i == 0 else ("zplus", {})
        elif i == convs[0]:
            rule, rule_params = "zbox", box
        else:
            rule, rule_params = "gamma", {"gamma": float(params["gamma"])}
        ranges.append(RuleRange(first=i, last=i, rule=rule, params=rule_params))
    return ranges


def composite_for(model: nn.Module, x: Tensor, method: str, params: dict[str, Any]) -> Composite:
    """The Zennit composite behind a registered LRP method name with its parameters (Zennit's
    own ``EpsilonPlusFlat`` and ``EpsilonGammaBox`` classes for those two)."""
    if method in ("lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box"):
        params = dict(params)
        kind = params.pop("stabiliser", "zennit")
        canonizer = params.pop("canonizer", "auto")
        _common(kind, canonizer)
        eps = stabiliser(kind, float(params.pop("epsilon", 1e-6)))
        guard = stabiliser(kind, 0.0)
        canonizers = make_canonizers(model, canonizer)
        if method == "lrp_epsilon_plus_flat":
            return EpsilonPlusFlat(epsilon=eps, stabilizer=guard, canonizers=canonizers)
        low, high = input_bounds(x, params.pop("low", None), params.pop("high", None))
        return EpsilonGammaBox(low=low, high=high, epsilon=eps, gamma=float(params.pop("gamma")),
                               stabilizer=guard, canonizers=canonizers)
    return build_composite(model, composite_spec(model, x, method, params), x)


def relevance_by_layer(model: nn.Module, x: Tensor, y: Tensor | int, method: str = "lrp_tutorial",
                       **params: Any) -> dict[str, Tensor]:
    """Relevance sums ``[B]`` per layer for an LRP method: ``"output"`` (the target logit), the
    input of every conv/linear layer in order, and ``"input"`` (the pixels). With conserving
    rules every entry equals the output (document 002, eq. 2.2). The model is left as found."""
    spec = get_method(method)
    if spec.backend != "zennit":
        raise ValueError(f"relevance_by_layer needs an LRP method, got {method!r}")
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise TypeError(f"method {method!r} got unknown parameters {unknown}")
    model = check_model(model)
    x, y = check_batch(x, y)
    check_device(model, x)
    merged = {**spec.params, **params}
    with preserved_model(model):
        composite = composite_for(model, x, method, merged)
        layers = dict(linear_layers(model))
        _, sums = lrp_attribute(model, x, y, composite, method, layers)
    return sums


LRP_BACKENDS: dict[str, Callable[..., Tensor]] = {}
"""LRP implementations ``(model, x, y, method, params) -> maps``: ``zennit`` (Zennit's hooks,
:func:`zennit_backend`), and, added on import of :mod:`salbench.explain.lrp_fast`, ``fast`` (its
closed-form rules; Zennit with a warning where it cannot handle the model) and ``auto`` (the
default: the same without the warning)."""


def zennit_backend(model: nn.Module, x: Tensor, y: Tensor, method: str,
                   params: dict[str, Any]) -> Tensor:
    """A registered LRP method computed by Zennit's hooks."""
    return lrp_attribute(model, x, y, composite_for(model, x, method, params), method)[0]


LRP_BACKENDS["zennit"] = zennit_backend


def _lrp_method(name: str, extra: dict[str, Any], summary: str) -> None:
    def method(model: nn.Module, x: Tensor, y: Tensor, **params: Any) -> Tensor:
        backend = params.pop("backend")
        if backend not in LRP_BACKENDS:
            raise ValueError(f"backend must be one of {sorted(LRP_BACKENDS)}, got {backend!r}")
        return LRP_BACKENDS[backend](model, x, y, name, params)

    defaults = {"stabiliser": "zennit", "canonizer": "auto", "backend": "auto", **extra}
    register(name, "zennit", summary, params=defaults, requires="explainable")(method)


for _name, _extra, _summary in (
    ("lrp_0", {"first_rule": None}, "uniform LRP-0 (document 002, table 2.2)"),
    ("lrp_epsilon", {"epsilon": 0.25, "first_rule": None}, "uniform LRP-ε"),
    ("lrp_gamma", {"gamma": 0.25, "first_rule": None}, "uniform LRP-γ"),
    ("lrp_alpha_beta", {"alpha": 2.0, "beta": 1.0, "first_rule": None}, "uniform LRP-αβ"),
    ("lrp_flat", {"first_rule": None}, "uniform flat rule"),
    ("lrp_zplus", {"first_rule": None}, "uniform z⁺ rule"),
    ("lrp_epsilon_plus_flat", {"epsilon": 1e-6}, "Zennit EpsilonPlusFlat composite"),
    ("lrp_epsilon_gamma_box", {"epsilon": 1e-6, "gamma": 0.25, "low": None, "high": None},
     "Zennit EpsilonGammaBox composite"),
    ("lrp_tutorial", {"gamma": 0.25, "epsilon": 0.25}, "LRP_Tutorial (document 002, table 2.4)"),
    ("lrp_decreasing_gamma", {"gammas": (0.5, 0.25, 0.1, 0.0)},
     "LRP_Decreasing-γ (document 002, table 2.3)"),
    ("lrp_composite", {"composite": None}, "layer-index composite from a CompositeSpec config"),
):
    _lrp_method(_name, _extra, _summary)
