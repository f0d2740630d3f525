"""DeepLIFT's rescale rule as own autograd code (Shrikumar et al. 2017, sections 3.3–3.5).

The attribution of input i against a reference x' is (x_i − x'_i)·m_i, where the multiplier m is
back-propagated like a gradient except through each nonlinearity y = f(x), whose local gradient
is replaced by Δy/Δx (Δ = value at the input minus value at the reference): the rescale rule.
Where Δx = 0 the rule falls back to the gradient f'(x) (Captum does so wherever |Δx| < 1e-10,
its ``eps``; the two differ only for 0 < |Δx| < 1e-10, where Δy/Δx is kept here, exact to
rounding: no rounding-level floor on summation-to-delta). Linear modules (convolutions,
linear layers, batch norm in eval mode, average pooling, flatten, dropout in eval mode, the
residual sums of :func:`salbench.models.make_explainable` blocks) keep their gradient, so
Σ_i (x_i − x'_i)·m_i = f(x) − f(x') (summation-to-delta, section 3.1). These are Captum's
defaults (``DeepLift``: rescale for ``nn.ReLU``, its max-pool rule for ``nn.MaxPool2d``, the
gradient elsewhere).

Max pooling (Captum's rule): with o = pool(x), o' = pool(x') and M = max(o, o'), the change
o − o' is split into M − o' (routed to the input's arg-max) and o − M (routed to the reference's
arg-max); each input position's share divided by its Δx is its multiplier.

Where this departs from Captum 0.9 (the version installed): three Captum bugs, the first two
fixed upstream after 0.9, the third with no upstream issue found:

- Where one hooked nonlinearity feeds another (ReLU → max-pool on VGG, AlexNet and the ResNet
  stem; max-pool → ReLU), Captum's hook on the first reads its output gradient *before* the
  second's rule rewrites it (captum issue 1104, fixed in PR 1843): the pool then acts as its
  plain gradient. The maps differ from the rule unless the reference's activations at the pool
  are all zero (a zero baseline through zero biases), and break summation-to-delta unless they
  are constant in each window, e.g. for a random baseline or a batch-normed model.
- Captum's max-pool fallback uses the first sample's gradient for every sample (issue 1276, PR
  1847).
- Captum routes the pooled change with ``max_unpool2d``, which overwrites where overlapping
  windows (AlexNet's and ResNet's 3×3 stride-2 pools) share an arg-max; here it is summed.

Where Captum has none of these bugs the maps are Captum's, and they are Captum's with the three
patched out of it, on every zoo architecture and baseline (tests/explain/test_deeplift.py: to
1e-5); everywhere they sum to f(x) − f(x').

Speed: the reference pass runs once, without autograd, for the distinct references only (one for
the all-zero baseline, n for a DeepLiftSHAP distribution, whatever the batch); the input pass
runs with autograd and back-propagates the multipliers of the inputs alone. Captum pushes inputs
and references through one doubled batch and back-propagates both halves. During both passes
each ReLU / max-pool module's ``forward`` is replaced (an instance attribute, removed
afterwards) by one that computes its value and saves its multipliers at once (one pooling per
max-pool, not two), and the multipliers are computed without comparisons or ``torch.where``,
which cost 5–25× an arithmetic kernel on the CPU (:func:`_ratio_or_gradient`).

Models whose leaf modules are not all in :data:`RESCALE_MODULES` or :data:`LINEAR_MODULES`
(another activation, a pooling without a rule here, batch norm or dropout in training mode) are
left to Captum: :func:`rescale_supported` says which. Nonlinear *functions* called in a
``forward`` (``torch.relu`` rather than an ``nn.ReLU`` module) get their gradient, as in Captum.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salbench.models.surgery import ConstantPad
from salbench.models.zoo import GreyToRGB

RESCALE_MODULES = (nn.ReLU, nn.MaxPool2d)
"""Nonlinear modules with a rule here: rescale for ReLU, Captum's max-pool rule."""

LINEAR_MODULES = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.AdaptiveAvgPool2d, nn.AvgPool2d,
                  nn.Flatten, nn.Dropout, nn.Identity, GreyToRGB, ConstantPad)
"""Affine modules (in eval mode): their multiplier is their gradient (the linear rule)."""

_TRAIN_DEPENDENT = (nn.BatchNorm2d, nn.Dropout)


def unsupported_modules(model: nn.Module) -> list[str]:
    """Names of leaf modules this implementation has no rule for (exact types, as Captum matches
    them, and without a ``forward`` of their own; batch norm and dropout only in eval mode, batch
    norm only with running statistics, a ReLU only not in place, a max-pool only without
    ``return_indices``)."""
    names = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue
        kind = type(module)
        known = kind in RESCALE_MODULES or kind in LINEAR_MODULES
        if (not known or "forward" in vars(module)  # an instance forward: not the type's
                or (kind in _TRAIN_DEPENDENT and module.training)
                or (kind is nn.BatchNorm2d and module.running_mean is None)
                or (kind is nn.ReLU and module.inplace)
                or (kind is nn.MaxPool2d and module.return_indices)):
            names.append(name or type(module).__name__)
    return names


def rescale_supported(model: nn.Module) -> bool:
    """Whether :func:`rescale_attributions` handles ``model`` (else use Captum's DeepLift)."""
    return not unsupported_modules(model)


def _pairwise(op, t: Tensor, ref: Tensor) -> Tensor:
    """``op(t_j, ref[j % R])`` for every row j of a batch ``t`` of ``G·R`` rows."""
    return op(t.unflatten(0, (-1, ref.shape[0])), ref).flatten(0, 1)


def _paired(t: Tensor, ref: Tensor) -> Tensor:
    """Δ = ``t − ref`` row by row, row j of ``t`` paired with reference ``j % R``."""
    return _pairwise(torch.sub, t, ref)


def _offset(delta: Tensor) -> Tensor:
    """±the dtype's smallest normal number, with the sign of ``delta`` (``+0`` → +, ``−0`` → −)."""
    return delta.new_full((), torch.finfo(delta.dtype).tiny).copysign(delta)


def _ratio_or_gradient(change: Tensor, delta: Tensor, gradient: Tensor) -> Tensor:
    """``change / delta``, and ``gradient`` where ``delta`` is 0 (in place in ``change`` and
    ``delta``): (change + s·gradient) / (delta + s) with s = :func:`_offset` (``delta``), which
    equals change / delta to rounding wherever |delta| is above the smallest normal number.
    Without comparisons or ``torch.where`` (many times slower on the CPU)."""
    offset = _offset(delta)
    return change.addcmul_(offset, gradient).div_(delta.add_(offset))


class _ReLURescale(torch.autograd.Function):
    """``relu(x)``; backward ``grad · m`` with m = Δy/Δx against the references (the gradient
    1[x > 0] where Δx = 0)."""

    @staticmethod
    def forward(ctx, x: Tensor, ref_in: Tensor, ref_out: Tensor) -> Tensor:
        output = torch.relu(x)
        multiplier = _ratio_or_gradient(_paired(output, ref_out), _paired(x, ref_in),
                                        output.sign())
        ctx.save_for_backward(multiplier)
        return output

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (multiplier,) = ctx.saved_tensors
        return grad * multiplier, None, None


class _MaxPoolRescale(torch.autograd.Function):
    """``pool(x)``; backward: the shares of Δo routed to the input's (M − o') and the
    reference's (o − M) arg-max positions (M = max(o, o')), summed per input position and
    divided by its Δx; the pool's gradient where Δx = 0."""

    @staticmethod
    def forward(ctx, x: Tensor, module: nn.MaxPool2d, ref_in: Tensor, ref_out: Tensor,
                ref_index: Tensor) -> Tensor:
        output, index = _pool(module, x)
        top = _pairwise(torch.maximum, output, ref_out)
        ctx.save_for_backward(_paired(top, ref_out), output - top, index, ref_index,
                              _paired(x, ref_in))
        return output

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        to_input, to_reference, index, ref_index, delta_in = ctx.saved_tensors
        # [G, R, C, positions]: row j = (g, r) against reference r, reference indices broadcast
        refs, channels = ref_index.shape[:2]
        grouped = (-1, refs, channels, index[0, 0].numel())
        g, index = grad.reshape(grouped), index.reshape(grouped)
        ref_index = ref_index.reshape(1, *grouped[1:]).expand_as(index)
        zeros = g.new_zeros(*index.shape[:3], delta_in[0, 0].numel())
        share = (zeros.scatter_add(3, index, g * to_input.reshape(grouped))
                 .scatter_add_(3, ref_index, g * to_reference.reshape(grouped)))
        gradient = zeros.scatter_add_(3, index, g)
        out = _ratio_or_gradient(share.view_as(delta_in), delta_in, gradient.view_as(delta_in))
        return out, None, None, None, None


def _pool(module: nn.MaxPool2d, x: Tensor) -> tuple[Tensor, Tensor]:
    return F.max_pool2d(x, module.kernel_size, module.stride, module.padding, module.dilation,
                        module.ceil_mode, return_indices=True)


@contextmanager
def _replaced_forwards(model: nn.Module, make) -> Iterator[None]:
    """Every ReLU and max-pool module's ``forward`` replaced by ``make(module)`` for the block
    (an instance attribute, removed afterwards; hooks still run around it)."""
    replaced = []
    try:
        for module in model.modules():
            if type(module) in RESCALE_MODULES:
                replaced.append((module, module.__dict__.get("forward")))
                module.forward = make(module)
        yield
    finally:
        for module, previous in replaced:
            if previous is None:
                del module.forward
            else:
                module.forward = previous


def reference_activations(model: nn.Module, reference: Tensor) -> dict[nn.Module, tuple]:
    """Input and output (and, for a max-pool, its arg-max indices) of every ReLU and max-pool
    module for the references ``[R, C, H, W]``: one forward pass without autograd."""
    store: dict[nn.Module, tuple] = {}

    def make(module: nn.Module):
        def forward(x: Tensor) -> Tensor:
            if type(module) is nn.MaxPool2d:
                output, index = _pool(module, x)
                store[module] = (x, output, index)
            else:
                output = torch.relu(x)
                store[module] = (x, output)
            return output
        return forward

    with torch.no_grad(), _replaced_forwards(model, make):
        model(reference)
    return store


def _rescaled(store: dict[nn.Module, tuple]):
    """``make`` for :func:`_replaced_forwards`: the module's value, with a backward that carries
    the multipliers against the stored references."""

    def make(module: nn.Module):
        def forward(x: Tensor) -> Tensor:
            if module not in store:
                raise RuntimeError(f"{module} was not called in the references' forward pass; "
                                   "DeepLIFT needs the same modules called for every input")
            if type(module) is nn.MaxPool2d:
                return _MaxPoolRescale.apply(x, module, *store[module])
            return _ReLURescale.apply(x, *store[module])
        return forward

    return make


def rescale_multipliers(model: nn.Module, x: Tensor, y: Tensor,
                        store: dict[nn.Module, tuple]) -> Tensor:
    """Multipliers m = ∂^DeepLIFT f_y/∂x of the inputs ``x`` ``[G·R, C, H, W]``, row j against
    reference ``j % R`` of ``store`` (:func:`reference_activations`)."""
    inputs = x.detach().requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # no weight gradients, and no activations saved for them
        p.requires_grad_(False)
    try:
        with torch.enable_grad(), _replaced_forwards(model, _rescaled(store)):
            out = model(inputs)
            (multipliers,) = torch.autograd.grad(out.gather(1, y[:, None]).sum(), inputs)
    finally:
        for p in params:
            p.requires_grad_(True)
    return multipliers


def distinct_references(reference: Tensor) -> Tensor:
    """``reference[:1]`` when every row equals the first (the all-zero baseline), else all rows."""
    if reference.shape[0] > 1 and torch.equal(reference, reference[:1].expand_as(reference)):
        return reference[:1]
    return reference


def rescale_attributions(model: nn.Module, x: Tensor, y: Tensor, reference: Tensor) -> Tensor:
    """DeepLIFT (rescale rule) of ``x`` ``[B, C, H, W]`` for targets ``y`` ``[B]`` against one
    reference per sample (``reference`` ``[B, C, H, W]``, or ``[1, C, H, W]`` for all):
    (x − x')·m."""
    reference = distinct_references(reference)
    store = reference_activations(model, reference)
    multipliers = rescale_multipliers(model, x, y, store)
    return _paired(x, reference) * multipliers


def rescale_shap(model: nn.Module, x: Tensor, y: Tensor, references: Tensor,
                 chunk: int) -> Tensor:
    """DeepLiftSHAP: the mean over the ``references`` ``[n, C, H, W]`` of the DeepLIFT maps of
    each sample against each (Captum's ``DeepLiftShap``), ``chunk`` samples (× n pairs) per
    pass; the references' forward pass runs once."""
    references = distinct_references(references)
    n = references.shape[0]
    store = reference_activations(model, references)
    parts = []
    for start in range(0, x.shape[0], chunk):
        xs, ys = x[start:start + chunk], y[start:start + chunk]
        pairs = xs.repeat_interleave(n, 0)
        multipliers = rescale_multipliers(model, pairs, ys.repeat_interleave(n), store)
        parts.append((_paired(pairs, references) * multipliers).unflatten(0, (-1, n)).mean(1))
    return torch.cat(parts)
