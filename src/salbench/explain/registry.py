"""One registry over every attribution method: ``explain(model, x, y, method, **params)``.

A method is a function ``(model, x, y, **params) -> Tensor[B, C, H, W]`` registered under a name
with its default parameters, the backend that computes it (Captum, Zennit, own torch code) and
what it **requires** of the model: ``none`` (autograd only: runs on TorchScript too), ``hooks``
(forward/backward hooks on modules) or ``explainable`` (hooks, and no in-place activation nor a
module called twice per forward: guided backprop, deconvolution, DeepLIFT, LRP).
:func:`explain` validates the inputs (finite images, targets within the model's classes), runs
an ``explainable`` method on an equivalent copy when the model needs one (made once per model
and weights, checked to give the same logits; the user's model is never changed), runs the
method in eval mode, restores the model exactly as it was (modes, ``requires_grad``, hooks) and
rejects NaN/infinite attributions.
"""

from __future__ import annotations

import inspect
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from salbench.explain.checks import (
    check_batch,
    check_device,
    check_finite,
    check_model,
    inplace_activations,
    preserved_model,
    reused_modules,
    target_range_hook,
    weights_version,
)
from salbench.models.surgery import make_explainable

Requires = Literal["none", "hooks", "explainable"]

MethodFn = Callable[..., Tensor]


@dataclass(frozen=True)
class Method:
    """A registered attribution method: name, backend, default parameters, one-line summary and
    what it requires of the model (see the module docstring)."""

    name: str
    backend: str
    function: MethodFn
    params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    requires: Requires = "hooks"


_METHODS: dict[str, Method] = {}


def register(name: str, backend: str, summary: str, params: dict[str, Any] | None = None, *,
             requires: Requires = "hooks") -> Callable[[MethodFn], MethodFn]:
    """Register ``fn(model, x, y, **params)`` under ``name``; its keyword defaults (after the
    first three arguments) are the params unless ``params`` lists them explicitly."""
    if requires not in ("none", "hooks", "explainable"):
        raise ValueError(f"requires must be 'none', 'hooks' or 'explainable', got {requires!r}")

    def wrap(fn: MethodFn) -> MethodFn:
        if name in _METHODS:
            raise ValueError(f"attribution method {name!r} is already registered")
        defaults = params
        if defaults is None:
            signature = inspect.signature(fn)
            defaults = {p.name: p.default for p in list(signature.parameters.values())[3:]}
        _METHODS[name] = Method(name, backend, fn, dict(defaults), summary, requires)
        return fn

    return wrap


def get_method(name: str) -> Method:
    """The registered method called ``name`` (ValueError listing the known names otherwise)."""
    if not isinstance(name, str) or name not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {name!r}")
    return _METHODS[name]


def available() -> list[Method]:
    """Every registered method (name, backend, default params, summary), sorted by name."""
    return [_METHODS[name] for name in sorted(_METHODS)]


def explain(model: nn.Module, x: Tensor, y: Tensor | int, method: str, **params: Any) -> Tensor:
    """Attribution maps ``Tensor[B, C, H, W]`` of ``model`` for images ``x`` and targets ``y``.

    ``x`` float ``[B, C, H, W]``, finite; ``y`` an int or integer ``[B]`` (targets may differ per
    sample) within the model's classes; ``method`` a name from :func:`available`; ``params``
    override the method's defaults (unknown names are an error). The model runs in eval mode and
    is left exactly as found; a method that needs an explainable model runs on an equivalent copy
    when this one has in-place activations or reused modules (:func:`explainable_copy`).
    CAM-family methods return one channel (``C = 1``); all others return the input's channels.
    Raises :class:`~salbench.explain.checks.NonFiniteAttributionError` on NaN/inf values.
    """
    spec = get_method(method)
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise TypeError(f"method {method!r} got unknown parameters {unknown}; "
                        f"it takes {sorted(spec.params)}")
    model = check_model(model)
    x, y = check_batch(x, y)
    check_device(model, x)
    scripted = isinstance(model, torch.jit.ScriptModule)
    if scripted and spec.requires != "none":
        runnable = sorted(m.name for m in _METHODS.values() if m.requires == "none")
        raise ValueError(f"method {method!r} needs forward/backward hooks on the model's modules,"
                         f" which a TorchScript model does not allow; on it run one of "
                         f"{runnable}, or pass the nn.Module")
    if spec.requires == "explainable":
        model, params = explainable_copy(model, x), _on_copy(params, model)
    with preserved_model(model), warnings.catch_warnings():
        # Captum announces that it sets requires_grad and hooks; salbench undoes both.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
        check_targets = target_range_hook(y)
        if scripted:  # no hooks on TorchScript: one forward of one sample tells the classes
            with torch.no_grad():
                check_targets(model, (x[:1],), model(x[:1]))
            handle = None
        else:
            handle = model.register_forward_hook(check_targets)
        try:
            attribution = spec.function(model, x, y, **{**spec.params, **params})
        finally:
            if handle is not None:
                handle.remove()
    return check_finite(attribution.detach(), method)


_COPIES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = (
    weakref.WeakKeyDictionary())


def explainable_copy(model: nn.Module, x: Tensor) -> nn.Module:
    """``model`` itself when it has no in-place activation and calls no module twice per forward;
    otherwise an equivalent copy (:func:`salbench.models.make_explainable`), made once per model
    and weights (cached), checked to give the same logits on ``x``. The model is not changed."""
    with preserved_model(model):  # eval mode: the probe forward updates no BN statistics
        if not inplace_activations(model) and not reused_modules(model, x):
            return model
        version = weights_version(model)
        cached = _COPIES.get(model)
        if cached is not None and cached[0] == version:
            return cached[1]
        copy = make_explainable(model)
        with preserved_model(copy):
            still = reused_modules(copy, x)
            if still:
                raise ValueError(f"the model calls modules more than once per forward "
                                 f"({still[:4]}) in a way salbench cannot rewrite; give each "
                                 "call site its own module")
            with torch.no_grad():
                ours, theirs = copy(x[:4]), model(x[:4])
    scale = float(theirs.abs().max()) or 1.0
    if not torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5 * scale):
        raise ValueError("the explainable copy of the model gives other logits than the model "
                         f"(max difference {float((ours - theirs).abs().max()):.3g}); the model's "
                         "forward depends on module identity or in-place side effects")
    _COPIES[model] = (version, copy)
    return copy


def _on_copy(params: dict[str, Any], original: nn.Module) -> dict[str, Any]:
    """Module-valued params (e.g. a CAM ``layer``) given as modules of ``original``, as their
    dotted names, so they resolve on the copy."""
    names = {id(m): n for n, m in original.named_modules()}
    return {k: names.get(id(v), v) if isinstance(v, nn.Module) else v for k, v in params.items()}
