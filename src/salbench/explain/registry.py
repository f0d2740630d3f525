"""One registry over every attribution method: ``explain(model, x, y, method, **params)``.

A method is a function ``(model, x, y, **params) -> Tensor[B, C, H, W]`` registered under a name
with its default parameters and the backend that computes it (Captum, Zennit, own torch code).
:func:`explain` validates the inputs, runs the method with the model in eval mode, restores the
model exactly as it was (modes, ``requires_grad``, hooks) and rejects NaN/infinite attributions.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from salbench.explain.checks import (
    check_batch,
    check_device,
    check_finite,
    check_model,
    preserved_model,
    target_range_hook,
)

MethodFn = Callable[..., Tensor]


@dataclass(frozen=True)
class Method:
    """A registered attribution method: name, backend, default parameters, one-line summary."""

    name: str
    backend: str
    function: MethodFn
    params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


_METHODS: dict[str, Method] = {}


def register(name: str, backend: str, summary: str,
             params: dict[str, Any] | None = None) -> Callable[[MethodFn], MethodFn]:
    """Register ``fn(model, x, y, **params)`` under ``name``; its keyword defaults (after the
    first three arguments) are the params unless ``params`` lists them explicitly."""

    def wrap(fn: MethodFn) -> MethodFn:
        if name in _METHODS:
            raise ValueError(f"attribution method {name!r} is already registered")
        defaults = params
        if defaults is None:
            signature = inspect.signature(fn)
            defaults = {p.name: p.default for p in list(signature.parameters.values())[3:]}
        _METHODS[name] = Method(name, backend, fn, dict(defaults), summary)
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

    ``x`` float ``[B, C, H, W]``; ``y`` an int or integer ``[B]`` (targets may differ per sample);
    ``method`` a name from :func:`available`; ``params`` override the method's defaults (unknown
    names are an error). The model runs in eval mode and is left exactly as found. CAM-family
    methods return one channel (``C = 1``); all others return the input's channels.
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
    with preserved_model(model), warnings.catch_warnings():
        # Captum announces that it sets requires_grad and hooks; salbench undoes both.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
        handle = model.register_forward_hook(target_range_hook(y))
        try:
            attribution = spec.function(model, x, y, **{**spec.params, **params})
        finally:
            handle.remove()
    return check_finite(attribution.detach(), method)
