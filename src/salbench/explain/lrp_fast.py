"""LRP at its own floor: Zennit's rules as closed-form modified gradients over a traced model,
many composites (a hyperparameter grid) in one pass.

Zennit (0.5.1, ``rules.py``) computes a rule as input × gradient of a modified forward: its hook
re-runs the layer 1–5 times with modified inputs and parameters inside the backward pass and
differentiates those copies. Here the same quantities are written out once per layer from the
forward pass, with W = W⁺ + W⁻ and x = x⁺ + x⁻ (document 002, table 2.2 and section 2.1.5), for
a layer with output z = Wx + b, output relevance g and s = g / stab(d):

- LRP-0 / ε: d = z, R = x ⊙ Wᵀs (LRP-0: ε = 0 with the stabiliser's guard);
- γ (Zennit's generalised γ): P = W⁺x⁺ + W⁻x⁻ + b⁺, N = W⁻x⁺ + W⁺x⁻ + b⁻; d = z + γP where
  z > 0, z + γN where z < 0, no relevance where z = 0; with c⁺ = s·(1 + γ·1[z>0])·1[z≠0] and
  c⁻ = s·(1 + γ·1[z<0])·1[z≠0]: R = x⁺ ⊙ (W⁺ᵀc⁺ + W⁻ᵀc⁻) + x⁻ ⊙ (W⁺ᵀc⁻ + W⁻ᵀc⁺), computed
  with Δ = c⁺ − c⁻ = γ·s·sign z as x⁺ ⊙ (Wᵀc⁻ + W⁺ᵀΔ) + x⁻ ⊙ (Wᵀc⁺ − W⁺ᵀΔ) (W⁻ never formed;
  γ = 0: R = x ⊙ Wᵀ(s·1[z≠0]), no P);
- z⁺: d = P, c⁺ = s, c⁻ = 0; αβ: c⁺ = α·g/stab(P), c⁻ = −β·g/stab(N) (same R);
- z^B: d = z − (W⁺l + b⁺) − (W⁻h + b⁻), R = x ⊙ Wᵀs − l ⊙ W⁺ᵀs − h ⊙ W⁻ᵀs;
- flat: d = 1ᵀ-weights applied to ones, R = 1ᵀs;
- activations and batch norms pass relevance unchanged, residual sums (the canonizer's ``Sum``)
  and average pools take the Norm rule R = x ⊙ ∇f(x)ᵀ(g / stab(f(x))), every other operation
  (max pooling, flatten, dropout, a conv/linear layer without a rule) its plain gradient: Zennit's
  ``layer_map_base`` and its behaviour for unhooked modules.

After a ReLU x⁻ = 0 and N = z − P, so a γ layer costs its forward z, one extra forward P and two
transposed products; z, P, the masks and the z^B bounds' outputs depend on no γ or ε, and the
relevance above the first layer where two composites differ is the same for both. A grid of
composites is therefore computed in one forward pass and one backward pass whose batch holds,
at each layer, one row per distinct relevance (:class:`Rows`).

The model is traced with ``torch.fx`` after the same canonizers as the Zennit path
(:func:`salbench.explain.lrp.make_canonizers`, logits checked) and run node by node (in-place
modules and ``inplace=True`` functions on a copy of their input); a model it cannot trace, an
in-place tensor operation (``x.relu_()``), an operation returning several tensors, a transposed
convolution or a convolution with a padding mode other than zeros or a string padding raise
:class:`FastLRPUnsupported`, and the callers fall back to Zennit with a :class:`FastLRPFallback`
warning naming the reason. Tested against Zennit in ``tests/explain/test_lrp_fast.py``.
"""

from __future__ import annotations

import functools
import inspect
import operator
import warnings
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from zennit.core import Composite, expand
from zennit.layer import Sum
from zennit.types import Activation, AvgPool, BatchNorm

from salbench.explain.checks import (
    check_batch,
    check_device,
    check_model,
    preserved_model,
    require_explainable,
    target_range_hook,
)
from salbench.explain.lrp import (
    LRP_BACKENDS,
    RULES,
    STABILISERS,
    TUTORIAL_GUARD,
    ZENNIT_GUARD,
    CanonizationCheck,
    CompositeSpec,
    build_composite,
    composite_spec,
    input_bounds,
    linear_layers,
    lrp_attribute,
    make_canonizers,
)

RULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "lrp0": {}, "epsilon": {"epsilon": 0.25}, "gamma": {"gamma": 0.25},
    "zbox": {"low": None, "high": None}, "flat": {}, "alpha_beta": {"alpha": 2.0, "beta": 1.0},
    "zplus": {}}
"""Each rule's parameters and defaults (those of :func:`salbench.explain.lrp.make_rule`)."""
MEMORY_BUDGET = 2**30
"""Bytes of relevance work tensors per chunk of composites in :func:`lrp_grid_maps`."""
WORK_TENSORS = 8
"""Tensors of a layer's largest activation size held per relevance row during the backward."""

_INPLACE = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ipow,
            operator.setitem}


class FastLRPUnsupported(ValueError):
    """The fast path cannot compute LRP on this model (the reason is the message)."""


class FastLRPFallback(UserWarning):
    """The fast LRP path fell back to Zennit (the reason is the message)."""


# ---- rules of one layer ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One layer's rule for one composite: ``name`` (a rule of :data:`RULES`, ``gradient`` for a
    conv/linear layer without one, ``norm`` for sums and average pools), its stabiliser and
    parameters. ``family`` is what rows must share to be computed in one batch (γ and ε may
    differ: they are per-row vectors)."""

    name: str
    stabiliser: str = "zennit"
    epsilon: float = 0.0
    gamma: float = 0.0
    alpha: float = 2.0
    beta: float = 1.0
    low: Hashable = None
    high: Hashable = None

    @property
    def family(self) -> tuple:
        return (self.name, self.stabiliser, self.alpha, self.beta, self.low, self.high)


def _hashable(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def layer_rules(model: nn.Module, spec: CompositeSpec) -> dict[str, Rule]:
    """Layer name → :class:`Rule` of a layer-index composite (conv/linear layers in registration
    order, as :func:`salbench.explain.lrp.name_map` assigns them; same errors)."""
    layers = linear_layers(model)
    if not layers:
        raise ValueError("LRP needs at least one convolutional or linear layer")
    rules: dict[str, Rule] = {}
    taken: dict[int, str] = {}
    for rng in spec.ranges:
        if rng.rule not in RULE_DEFAULTS:
            raise ValueError(f"rule must be one of {RULES}, got {rng.rule!r}")
        unknown = set(rng.params) - set(RULE_DEFAULTS[rng.rule])
        if unknown:
            raise ValueError(f"rule {rng.rule!r} takes parameters "
                             f"{sorted(RULE_DEFAULTS[rng.rule])}, got {sorted(unknown)}")
        params = {**RULE_DEFAULTS[rng.rule], **rng.params}
        last = len(layers) - 1 if rng.last is None else min(rng.last, len(layers) - 1)
        indices = list(range(rng.first, last + 1))
        overlap = sorted(set(taken).intersection(indices))
        if overlap:
            raise ValueError(f"rule ranges overlap at layer indices {overlap}")
        rule = Rule(rng.rule, spec.stabiliser,
                    epsilon=float(params.get("epsilon", 0.0)),
                    gamma=float(params.get("gamma", 0.0)),
                    alpha=float(params.get("alpha", 2.0)), beta=float(params.get("beta", 1.0)),
                    low=_hashable(params.get("low")), high=_hashable(params.get("high")))
        for i in indices:
            taken[i] = layers[i][0]
            rules[layers[i][0]] = rule
    return rules


def stabilise(kind: str, d: Tensor, epsilon: Tensor) -> Tensor:
    """The denominators of document 002, section 2.1.5, per row: ``d`` ``[n or 1, B, ...]``,
    ``epsilon`` ``[n, 1, ...]``: vanilla d + ε; zennit d + (1[d=0] + sign d)·ε with ε = 1e-6
    where it is 0 (written d ± ε: the same values, NaN kept); tutorial d + ε·rms(d) + 1e-9, the
    root mean square per row and sample."""
    if kind == "vanilla":
        return d + epsilon
    if kind == "zennit":
        epsilon = torch.where(epsilon > 0, epsilon, torch.full_like(epsilon, ZENNIT_GUARD))
        return torch.where(d < 0, d - epsilon, d + epsilon)
    if kind == "tutorial":
        rms = d.pow(2).flatten(2).mean(2).sqrt()
        return d + epsilon * rms.view(*rms.shape, *[1] * (d.ndim - 2)) + TUTORIAL_GUARD
    raise ValueError(f"stabiliser must be one of {STABILISERS}, got {kind!r}")


# ---- conv/linear layers as a forward and its transpose --------------------------------------

_CONV_INPUT_GRAD = {nn.Conv1d: torch.nn.grad.conv1d_input, nn.Conv2d: torch.nn.grad.conv2d_input,
                    nn.Conv3d: torch.nn.grad.conv3d_input}
_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}


class Affine:
    """A conv/linear layer as F(x; W', b') for any weights and as its transpose
    c ↦ ∂⟨c, F(x; W', 0)⟩/∂x (the input gradient, one ``convolution_backward``)."""

    def __init__(self, module: nn.Module) -> None:
        kind = type(module)
        if kind is not nn.Linear and kind not in _CONV:
            raise FastLRPUnsupported(f"layer {kind.__name__} has no fast LRP rule")
        if kind in _CONV and (module.padding_mode != "zeros" or isinstance(module.padding, str)):
            raise FastLRPUnsupported(f"convolution with padding {module.padding!r} and mode "
                                     f"{module.padding_mode!r} has no fast LRP rule")
        self.module = module
        self.weight = module.weight
        self.bias = module.bias if module.bias is not None else torch.zeros(
            module.weight.shape[0], dtype=module.weight.dtype, device=module.weight.device)
        self.groups = getattr(module, "groups", 1)

    @functools.cached_property
    def weight_pos(self) -> Tensor:
        return self.weight.clamp(min=0)

    @functools.cached_property
    def weight_neg(self) -> Tensor:
        return self.weight.clamp(max=0)

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        m = self.module
        if isinstance(m, nn.Linear):
            return F.linear(x, weight, bias)
        return _CONV[type(m)](x, weight, bias, m.stride, m.padding, m.dilation, m.groups)

    def transposed(self, c: Tensor, weight: Tensor, in_shape: Sequence[int]) -> Tensor:
        """Wᵀc for ``c`` ``[N, *out]``: ``[N, *in_shape]`` (``in_shape`` per sample)."""
        m = self.module
        if isinstance(m, nn.Linear):
            return c.matmul(weight)
        size = (c.shape[0], *in_shape)
        return _CONV_INPUT_GRAD[type(m)](size, weight, c, m.stride, m.padding, m.dilation,
                                         m.groups)


class LayerCache:
    """The γ/ε-independent quantities of one layer's rules, computed on first use: input x,
    output z, masks, P and N (module docstring) and the z^B bounds' outputs."""

    def __init__(self, layer: Affine, x: Tensor, z: Tensor, model_input: Tensor) -> None:
        self.layer, self.x, self.z, self.model_input = layer, x, z, model_input
        self.in_shape = x.shape[1:]
        self.nonneg = bool((x >= 0).all())
        self.boxes: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}

    @functools.cached_property
    def x_pos(self) -> Tensor:
        return self.x if self.nonneg else self.x.clamp(min=0)

    @functools.cached_property
    def x_neg(self) -> Tensor:
        return self.x.clamp(max=0)

    @functools.cached_property
    def pos(self) -> Tensor:
        return self.z > 0

    @functools.cached_property
    def neg(self) -> Tensor:
        return self.z < 0

    @functools.cached_property
    def nonzero(self) -> Tensor:
        return (self.pos | self.neg).to(self.z.dtype)

    @functools.cached_property
    def sign(self) -> Tensor:
        return self.pos.to(self.z.dtype) - self.neg.to(self.z.dtype)

    @functools.cached_property
    def p(self) -> Tensor:
        """P = F(x⁺; W⁺, b⁺) + F(x⁻; W⁻, 0)."""
        layer = self.layer
        p = layer.forward(self.x_pos, layer.weight_pos, layer.bias.clamp(min=0))
        return p if self.nonneg else p + layer.forward(self.x_neg, layer.weight_neg, None)

    @functools.cached_property
    def n(self) -> Tensor:
        """N = F(x⁺; W⁻, b⁻) + F(x⁻; W⁺, 0)."""
        layer = self.layer
        n = layer.forward(self.x_pos, layer.weight_neg, layer.bias.clamp(max=0))
        return n if self.nonneg else n + layer.forward(self.x_neg, layer.weight_pos, None)

    @functools.cached_property
    def gamma_part(self) -> Tensor:
        """P where z > 0, N elsewhere: d = z + γ·(this). With x ≥ 0, N = z − P (no extra
        forward; where z ≤ 0, |N| ≥ P, so the difference loses no precision)."""
        n = self.z - self.p if self.nonneg else self.n
        return torch.where(self.pos, self.p, n)

    def box(self, low: Hashable, high: Hashable) -> tuple[Tensor, Tensor, Tensor]:
        """z^B bounds l, h expanded to the input as Zennit expands them (given, or each sample's
        extremes of the model input: :func:`salbench.explain.lrp.input_bounds`) and
        d = z − (F(l; W⁺, b⁺) + F(h; W⁻, b⁻))."""
        if (low, high) not in self.boxes:
            lo, hi = input_bounds(self.model_input, low, high)
            lo, hi = (expand(t, self.x.shape, cut_batch_dim=True).to(self.x) for t in (lo, hi))
            layer = self.layer
            zl = layer.forward(lo, layer.weight_pos, layer.bias.clamp(min=0))
            zh = layer.forward(hi, layer.weight_neg, layer.bias.clamp(max=0))
            self.boxes[low, high] = (lo, hi, self.z - (zl + zh))
        return self.boxes[low, high]

    @functools.cached_property
    def flat(self) -> Tensor:
        """F(1; 1, 0): the number of inputs each output sees (flat rule)."""
        ones = torch.ones_like(self.x[:1])
        return self.layer.forward(ones, torch.ones_like(self.layer.weight), None)


def _per_row(values: Sequence[float], like: Tensor) -> Tensor:
    """A per-row parameter ``[n, 1, ...]`` broadcasting against ``[n, B, ...]`` rows."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(
        -1, *[1] * (like.ndim - 1))


def rule_relevance(cache: LayerCache, rules: Sequence[Rule], g: Tensor) -> Tensor:
    """Input relevance ``[n, B, *in]`` of one layer for output relevance rows ``g``
    ``[n, B, *out]``, row i under ``rules[i]`` (all of one :attr:`Rule.family`)."""
    rule, layer = rules[0], cache.layer
    n, batch = g.shape[:2]
    flat_rows = g.flatten(0, 1)
    kind = rule.stabiliser

    def rows(t: Tensor) -> Tensor:
        return t.reshape(n, batch, *t.shape[1:])

    def product(c: Tensor, weight: Tensor) -> Tensor:
        return rows(layer.transposed(c.flatten(0, 1), weight, cache.in_shape))

    def by_input(c_pos: Tensor, c_neg: Tensor | None) -> Tensor:
        """x⁺ ⊙ (W⁺ᵀc⁺ + W⁻ᵀc⁻) + x⁻ ⊙ (W⁺ᵀc⁻ + W⁻ᵀc⁺) for rows c⁺, c⁻ (None: 0), as Zennit
        sums it (α-β and z⁺: a huge c⁻ where N ≈ 0 meets only zero terms of W⁻ᵀ and x)."""
        relevance = cache.x_pos * product(c_pos, layer.weight_pos)
        if c_neg is not None:
            relevance = relevance + cache.x_pos * product(c_neg, layer.weight_neg)
        if not cache.nonneg:
            relevance = relevance + cache.x_neg * product(c_pos, layer.weight_neg)
            if c_neg is not None:
                relevance = relevance + cache.x_neg * product(c_neg, layer.weight_pos)
        return relevance

    def by_delta(delta: Tensor, c_neg: Tensor) -> Tensor:
        """The same sum for c⁺ = Δ + c⁻ with W and W⁺ only (W⁻ = W − W⁺ is never formed):
        x⁺ ⊙ (Wᵀc⁻ + W⁺ᵀΔ) + x⁻ ⊙ (Wᵀc⁺ − W⁺ᵀΔ); for x ≥ 0 two transposed products. For γ:
        |Δ| = γ·|s| ≤ γ·|c⁻|, so the sum loses at most a factor ~1 + 2γ of precision."""
        grad_pos = product(delta, layer.weight_pos)
        if cache.nonneg:
            return cache.x * (grad_pos + product(c_neg, layer.weight))
        relevance = cache.x.abs() * grad_pos + cache.x_pos * product(c_neg, layer.weight)
        return relevance + cache.x_neg * product(delta + c_neg, layer.weight)

    if rule.name == "gradient":
        return rows(layer.transposed(flat_rows, layer.weight, cache.in_shape))
    if rule.name in ("lrp0", "epsilon"):
        epsilon = _per_row([r.epsilon if r.name == "epsilon" else 0.0 for r in rules], g)
        s = g / stabilise(kind, cache.z[None], epsilon)
        grad = layer.transposed(s.flatten(0, 1), layer.weight, cache.in_shape)
        return cache.x * rows(grad)
    if rule.name == "gamma":
        # c⁺ = s·(1 + γ·1[z>0])·1[z≠0], c⁻ = s·(1 + γ·1[z<0])·1[z≠0], Δ = c⁺ − c⁻ = γ·s·sign z;
        # rows with γ = 0 have c⁺ = c⁻: R = x ⊙ Wᵀc, one product whatever the signs of x.
        values = [r.gamma for r in rules]
        gamma = _per_row(values, g)
        if not any(values):  # d = z: no P (no W⁺) needed
            s = g / stabilise(kind, cache.z[None], torch.zeros_like(gamma))
            grad = layer.transposed((s * cache.nonzero).flatten(0, 1), layer.weight,
                                    cache.in_shape)
            return cache.x * rows(grad)
        d = torch.addcmul(cache.z, gamma, cache.gamma_part)
        s = g / stabilise(kind, d, torch.zeros_like(gamma))
        c_neg = s * torch.where(cache.neg, 1 + gamma, cache.pos.to(g.dtype))
        return by_delta(s * (gamma * cache.sign), c_neg)
    zero = torch.zeros(n, *[1] * (g.ndim - 1), dtype=g.dtype, device=g.device)
    if rule.name == "zplus":
        return by_input(g / stabilise(kind, cache.p[None], zero), None)
    if rule.name == "alpha_beta":
        return by_input(rule.alpha * (g / stabilise(kind, cache.p[None], zero)),
                        -rule.beta * (g / stabilise(kind, cache.n[None], zero)))
    if rule.name == "zbox":
        lo, hi, d = cache.box(rule.low, rule.high)
        s = (g / stabilise(kind, d[None], zero)).flatten(0, 1)
        channels = cache.in_shape[0]
        if layer.groups == 1:
            weights = torch.cat([layer.weight, layer.weight_pos, layer.weight_neg], 1)
            shape = (3 * channels, *cache.in_shape[1:])
            grad_x, grad_l, grad_h = rows(layer.transposed(s, weights, shape)).split(channels, 2)
        else:
            grad_x, grad_l, grad_h = (rows(layer.transposed(s, w, cache.in_shape)) for w in
                                      (layer.weight, layer.weight_pos, layer.weight_neg))
        return cache.x * grad_x - (lo * grad_l + hi * grad_h)
    if rule.name == "flat":
        s = g / stabilise(kind, cache.flat[None], zero)
        ones = torch.ones_like(layer.weight)
        return rows(layer.transposed(s.flatten(0, 1), ones, cache.in_shape))
    raise ValueError(f"rule must be one of {RULES}, got {rule.name!r}")


# ---- relevance rows -------------------------------------------------------------------------


@dataclass
class Rows:
    """The relevance (or gradient) of one tensor for every composite of a grid: composite p's is
    ``values[index[p]]`` ``[B, ...]``; composites whose rules agree on every layer between this
    tensor and the output share a row."""

    values: Tensor
    index: tuple[int, ...]

    def take(self, rows: list[int]) -> Tensor:
        if rows == list(range(len(self.values))):
            return self.values
        return self.values[rows]


def combine(parts: Sequence[Rows]) -> Rows:
    """The sum of relevance arriving from several users of one tensor, on the finest common
    partition of the composites."""
    if len(parts) == 1:
        return parts[0]
    keys = list(zip(*(p.index for p in parts)))
    unique = list(dict.fromkeys(keys))
    position = {key: i for i, key in enumerate(unique)}
    values = functools.reduce(operator.add, (p.take([key[j] for key in unique])
                                             for j, p in enumerate(parts)))
    return Rows(values, tuple(position[key] for key in keys))


def apply_rules(rows: Rows, rules: Sequence[Rule],
                compute: Callable[[Sequence[Rule], Tensor], Tensor]) -> Rows:
    """Apply composite p's ``rules[p]`` to its row: one ``compute(rules, values)`` call per rule
    family, one output row per distinct (input row, rule)."""
    pairs = list(zip(rows.index, rules))
    unique = list(dict.fromkeys(pairs))
    families: dict[tuple, list[int]] = {}
    for i, (_, rule) in enumerate(unique):
        families.setdefault(rule.family, []).append(i)
    parts, order = [], []
    for members in families.values():
        parts.append(compute([unique[i][1] for i in members],
                             rows.take([unique[i][0] for i in members])))
        order.extend(members)
    values = parts[0] if len(parts) == 1 else torch.cat(parts)
    row_of = {unique[i]: j for j, i in enumerate(order)}
    return Rows(values, tuple(row_of[pair] for pair in pairs))


# ---- the traced model -----------------------------------------------------------------------


class _Tracer(fx.Tracer):
    """Keeps every module Zennit would hook a leaf: conv/linear layers, activations, batch
    norms, pools and the canonizer's ``Sum``."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        hooked = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, Activation, BatchNorm, AvgPool, Sum)
        return isinstance(m, hooked) or super().is_leaf_module(m, qualname)


_GRAPHS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, fx.Graph]] = (
    weakref.WeakKeyDictionary())


def traced_graph(model: nn.Module, canonizer: str) -> fx.Graph:
    """The fx graph of ``model`` with ``canonizer`` applied (call inside the canonizers'
    context), cached per model, module structure and canonizer."""
    signature = (canonizer, *((name, id(m)) for name, m in model.named_modules()
                              if not name.endswith("canonizer_sum")))
    cached = _GRAPHS.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    if any(isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
           for m in model.modules()):
        raise FastLRPUnsupported("transposed convolutions have no fast LRP rule")
    try:
        graph = _Tracer().trace(model)
    except Exception as error:  # any tracing failure: the caller falls back to Zennit
        raise FastLRPUnsupported(f"torch.fx cannot trace the model ({error})") from error
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise FastLRPUnsupported(f"the model takes {len(placeholders)} inputs, not one")
    for node in graph.nodes:
        target = node.target
        name = target if isinstance(target, str) else getattr(target, "__name__", "")
        if target in _INPLACE or (node.op in ("call_method", "call_function")
                                  and name.endswith("_") and not name.startswith("__")):
            raise FastLRPUnsupported(f"in-place operation {name!r} in the model's forward")
    _GRAPHS[model] = (signature, graph)
    return graph


def _attribute(model: nn.Module, target: str) -> Any:
    return functools.reduce(getattr, target.split("."), model)


@functools.cache
def _signature(target: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature
        return None


def _inplace_call(target: Callable, args: tuple, kwargs: dict) -> bool:
    """Whether a function call asks for ``inplace=True`` (``F.relu(x, inplace=True)``, or
    positionally ``F.relu(x, True)``)."""
    if kwargs.get("inplace") is True:
        return True
    signature = _signature(target)
    if signature is None or "inplace" not in signature.parameters:
        return False
    try:
        return signature.bind(*args, **kwargs).arguments.get("inplace") is True
    except TypeError:
        return False


def _call(model: nn.Module, node: fx.Node, args: tuple, kwargs: dict) -> Any:
    """Run one node; an in-place module or function runs on a copy of its input, so that every
    node's stored value stays what the forward computed there."""
    if node.op == "call_module":
        module = model.get_submodule(node.target)
        if getattr(module, "inplace", False):
            args = (args[0].clone(), *args[1:])
        return module(*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    if args and isinstance(args[0], Tensor) and _inplace_call(node.target, args, kwargs):
        args = (args[0].clone(), *args[1:])
    return node.target(*args, **kwargs)


def _has_tensor(value: Any) -> bool:
    return any(isinstance(leaf, Tensor) for leaf in torch.utils._pytree.tree_leaves(value))


@dataclass
class Forward:
    """Every node's value in one forward pass, and the nodes that depend on the input."""

    values: dict[fx.Node, Any]
    carrying: set[fx.Node]
    output: fx.Node


def run_forward(model: nn.Module, graph: fx.Graph, x: Tensor) -> Forward:
    """Interpret ``graph`` on ``x`` without autograd, keeping every value."""
    values: dict[fx.Node, Any] = {}
    carrying: set[fx.Node] = set()
    output = None
    with torch.no_grad():
        for node in graph.nodes:
            if node.op == "placeholder":
                values[node] = x
                carrying.add(node)
            elif node.op == "get_attr":
                values[node] = _attribute(model, node.target)
            elif node.op == "output":
                output = node.args[0]
                if not isinstance(output, fx.Node):
                    raise FastLRPUnsupported("the model returns more than one tensor")
            else:
                args = fx.node.map_arg(node.args, values.__getitem__)
                kwargs = fx.node.map_arg(node.kwargs, values.__getitem__)
                values[node] = value = _call(model, node, args, kwargs)
                if any(n in carrying for n in node.all_input_nodes):
                    # sizes and shapes of the input carry no relevance; containers of tensors
                    # (torch.chunk, torch.max with dim) have no rule here
                    if isinstance(value, Tensor):
                        carrying.add(node)
                    elif _has_tensor(value):
                        raise FastLRPUnsupported(
                            f"operation {node.format_node()!r} returns several tensors")
    return Forward(values, carrying, output)


def _inputs(node: fx.Node, forward: Forward) -> list[fx.Node]:
    return [n for n in node.all_input_nodes if n in forward.carrying]


def batched_vjp(model: nn.Module, node: fx.Node, forward: Forward, cotangent: Tensor,
                ) -> list[Tensor]:
    """The plain gradient through ``node``: the vector-Jacobian product of its function at the
    forward values, for each row of ``cotangent`` ``[n, B, ...]``, w.r.t. each input that
    depends on the model input (``[n, B, ...]`` each)."""
    inputs = _inputs(node, forward)
    values = forward.values

    def function(*tensors: Tensor) -> Tensor:
        given = dict(zip(inputs, tensors))
        args = fx.node.map_arg(node.args, lambda n: given[n] if n in given else values[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: given[n] if n in given else values[n])
        return _call(model, node, args, kwargs)

    _, pullback = torch.func.vjp(function, *(values[n] for n in inputs))
    if cotangent.shape[0] == 1:
        return [g.unsqueeze(0) for g in pullback(cotangent[0])]
    return list(torch.func.vmap(pullback)(cotangent))


def norm_relevance(model: nn.Module, node: fx.Node, forward: Forward, rules: Sequence[Rule],
                   g: Tensor) -> Tensor:
    """Zennit's Norm rule (sums, average pools): R = x ⊙ ∇f(x)ᵀ(g / stab(f(x))), stabiliser
    guard only."""
    zero = torch.zeros(len(g), *[1] * (g.ndim - 1), dtype=g.dtype, device=g.device)
    s = g / stabilise(rules[0].stabiliser, forward.values[node][None], zero)
    (grad,) = batched_vjp(model, node, forward, s)
    return forward.values[_inputs(node, forward)[0]] * grad


def _kind(model: nn.Module, node: fx.Node, rules: Mapping[str, Any]) -> str:
    """How relevance passes ``node``: ``rule`` (a conv/linear layer), ``pass`` (activations,
    batch norms), ``norm`` (sums, average pools) or ``gradient`` (everything else)."""
    if node.op != "call_module":
        return "gradient"
    if node.target in rules:
        return "rule"
    module = model.get_submodule(node.target)
    if isinstance(module, (Activation, BatchNorm)):
        return "pass"
    if isinstance(module, (Sum, AvgPool)):
        return "norm"
    return "gradient"


def run_backward(model: nn.Module, graph: fx.Graph, forward: Forward, start: Tensor,
                 per_layer: Mapping[str, Sequence[Rule]], stabilisers: Sequence[str],
                 x: Tensor) -> Rows:
    """Relevance at the model input for every composite: ``per_layer[name][p]`` is composite
    p's rule at layer ``name``, ``stabilisers[p]`` its stabiliser (Norm rule), ``start``
    ``[B, K]`` the output relevance."""
    points = len(stabilisers)
    pending: dict[fx.Node, list[Rows]] = {forward.output: [Rows(start[None], (0,) * points)]}
    result = None
    for node in reversed(graph.nodes):
        if node not in pending:
            continue
        rows = combine(pending.pop(node))
        if node.op == "placeholder":
            result = rows
            continue
        inputs = _inputs(node, forward)
        kind = _kind(model, node, per_layer)
        if kind == "rule":
            module = model.get_submodule(node.target)
            cache = LayerCache(Affine(module), forward.values[inputs[0]], forward.values[node], x)
            out = [apply_rules(rows, per_layer[node.target],
                               lambda rules, g, cache=cache: rule_relevance(cache, rules, g))]
        elif kind == "pass":
            out = [rows]
        elif kind == "norm":
            out = [apply_rules(rows, [Rule("norm", stab) for stab in stabilisers],
                               lambda rules, g, node=node: norm_relevance(model, node, forward,
                                                                           rules, g))]
        else:
            out = [Rows(grad, rows.index)
                   for grad in batched_vjp(model, node, forward, rows.values)]
        for target, part in zip(inputs, out):
            pending.setdefault(target, []).append(part)
        del forward.values[node]  # its users are done: free the activation
    if result is None:
        raise FastLRPUnsupported("no relevance reaches the model input")
    return result


# ---- public functions -----------------------------------------------------------------------


def _specs(composites: Sequence[CompositeSpec | Mapping]) -> list[CompositeSpec]:
    if isinstance(composites, (CompositeSpec, Mapping)) or not len(composites):
        raise ValueError("composites must be a non-empty sequence of CompositeSpec (or mappings "
                         "{'ranges': [...], 'stabiliser': ..., 'canonizer': ...})")
    specs = [c if isinstance(c, CompositeSpec) else CompositeSpec.parse(c) for c in composites]
    canonizers = {s.canonizer for s in specs}
    if len(canonizers) > 1:
        raise ValueError(f"composites must share one canonizer (the model explained), got "
                         f"{sorted(canonizers)}")
    return specs


def fast_lrp_maps(model: nn.Module, x: Tensor, y: Tensor, specs: Sequence[CompositeSpec],
                  method: str = "lrp_composite", memory_budget: int = MEMORY_BUDGET) -> Tensor:
    """LRP maps ``[P, B, C, H, W]`` of validated inputs under each of ``specs`` (one
    canonizer), in chunks of composites whose relevance rows fit ``memory_budget`` bytes.
    Raises :class:`FastLRPUnsupported` for a model the fast path cannot handle."""
    require_explainable(model, x, method, allow_inplace=True)
    canonizers = make_canonizers(model, specs[0].canonizer)
    check = CanonizationCheck(model, x, canonizers)
    with Composite(canonizers=canonizers).context(model):
        graph = traced_graph(model, specs[0].canonizer)
        rules = [layer_rules(model, spec) for spec in specs]
        names = {n.target for n in graph.nodes if n.op == "call_module"}
        per_layer = {name: [r.get(name, Rule("gradient")) for r in rules]
                     for name in names if any(name in r for r in rules)}
        for name in per_layer:
            Affine(model.get_submodule(name))  # FastLRPUnsupported before any work
        forward = run_forward(model, graph, x)
        logits = forward.values[forward.output]
        # the registry's target check is a forward hook on the model, which this path never
        # calls as a whole
        target_range_hook(y)(model, (x,), logits)
        check(logits)
        start = torch.zeros_like(logits).scatter(1, y[:, None], logits.gather(1, y[:, None]))
        largest = max(v.numel() // (len(v) if v.ndim else 1)
                      for v in (forward.values[n] for n in forward.carrying))
        chunk = max(1, memory_budget // (WORK_TENSORS * largest * len(x) * x.element_size()))
        maps = []
        for first in range(0, len(specs), chunk):
            part = slice(first, first + chunk)
            kept = Forward(dict(forward.values), forward.carrying, forward.output)
            with torch.no_grad():  # no graph through the parameters (torch.func.vjp still works)
                rows = run_backward(model, graph, kept, start,
                                    {k: v[part] for k, v in per_layer.items()},
                                    [s.stabiliser for s in specs[part]], x)
            maps.append(rows.values[list(rows.index)])
    return torch.cat(maps)


def lrp_grid_maps(model: nn.Module, x: Tensor, y: Tensor | int,
                  composites: Sequence[CompositeSpec | Mapping], *,
                  memory_budget: int = MEMORY_BUDGET) -> Tensor:
    """LRP maps ``[P, B, C, H, W]`` of images ``x`` ``[B, C, H, W]`` for targets ``y`` under each
    of the ``P`` layer-index ``composites`` (document 002's grid: one composite per grid point;
    all with one canonizer, stabilisers may differ), sharing one forward pass and all work that
    does not depend on where the composites differ (module docstring). Output relevance is the
    target logit, as :func:`salbench.explain.explain`. Maps are returned as computed: a vanilla
    stabiliser's zero denominators give NaN there. On a model the fast path cannot handle the
    maps come from Zennit, one composite at a time, with a :class:`FastLRPFallback` warning. The
    model is left as found."""
    specs = _specs(composites)
    model = check_model(model)
    x, y = check_batch(x, y)
    check_device(model, x)
    if not isinstance(memory_budget, int) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got "
                         f"{memory_budget!r}")
    with preserved_model(model):
        try:
            return fast_lrp_maps(model, x, y, specs, memory_budget=memory_budget)
        except FastLRPUnsupported as reason:
            warnings.warn(f"fast LRP falls back to Zennit: {reason}", FastLRPFallback,
                          stacklevel=2)
        return torch.stack([lrp_attribute(model, x, y, build_composite(model, spec, x))[0]
                            for spec in specs])


def fast_backend(model: nn.Module, x: Tensor, y: Tensor, method: str,
                 params: dict[str, Any], warn: bool = True) -> Tensor:
    """The ``fast`` backend of the registered LRP methods: the method's composite
    (:func:`salbench.explain.lrp.composite_spec`) on the fast path, Zennit where the fast path
    cannot handle the model (with a :class:`FastLRPFallback` warning if ``warn``)."""
    spec = composite_spec(model, x, method, params)
    try:
        return fast_lrp_maps(model, x, y, [spec], method)[0]
    except FastLRPUnsupported as reason:
        if warn:
            warnings.warn(f"fast LRP falls back to Zennit for {method!r}: {reason}",
                          FastLRPFallback, stacklevel=2)
    return LRP_BACKENDS["zennit"](model, x, y, method, params)


LRP_BACKENDS["fast"] = fast_backend
LRP_BACKENDS["auto"] = functools.partial(fast_backend, warn=False)
