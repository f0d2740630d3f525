"""The metric registry, the twin of ``salbench.explain``'s: every metric with what it needs, its
parameters, each output's direction and range, its cost and its source.

``score(name, **inputs, **params)`` runs a registered metric and returns one
:class:`MetricResult` whatever the metric: per-sample values per named output ``[B]``, curves with
their x-axis, set-level aggregates, the resolved parameters and each output's direction. No caller
needs to know a metric's own result type, and nothing downstream guesses a direction from a name.

What a metric needs is its **kind** (:data:`KINDS`): the inputs, in the order its function takes
them positionally. Parameters are the function's keyword arguments after those inputs, with their
defaults; an unknown parameter is an error naming the known ones.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

Direction = Literal["higher", "lower", "none"]
DIRECTIONS = ("higher", "lower", "none")
"""``higher``/``lower``: that value is better; ``none``: a value that ranks nothing (a model's
accuracy on unperturbed inputs, a map's range)."""

KINDS: dict[str, tuple[str, ...]] = {
    "ground_truth": ("a", "m"),
    "map": ("a",),
    "map_pair": ("a", "reference"),
    "model": ("model", "x", "y", "a"),
    "model_pair": ("model", "x", "y", "a", "reference"),
    "explainer": ("model", "x", "y", "explain_fn"),
    "classifier": ("model", "x", "y"),
}
"""Kind -> required inputs: ``a`` attributions ``[B, C, H, W]``, ``m`` ground-truth masks
``[B, H, W]``, ``reference`` a second map to compare with (GAD: the base method's map),
``model``/``x``/``y`` the classifier, images and targets, ``explain_fn(model, x, y)`` the method
under test (``explainer`` metrics take the already computed ``a`` as an optional keyword)."""

INPUTS = ("a", "m", "reference", "model", "x", "y", "explain_fn")
UNBOUNDED = (-math.inf, math.inf)
NON_NEGATIVE = (0.0, math.inf)
UNIT = (0.0, 1.0)


@dataclass(frozen=True)
class Output:
    """One named output of a metric. ``direction`` and ``range`` may depend on the parameters
    (a callable of the resolved params). ``level``: ``sample`` (one value per sample) or ``set``
    (one aggregate over the scored samples, e.g. HAAS's accuracy ratio)."""

    name: str
    direction: Direction | Callable[[Mapping[str, Any]], Direction]
    range: tuple[float, float] | Callable[[Mapping[str, Any]], tuple[float, float]] = UNBOUNDED
    summary: str = ""
    level: Literal["sample", "set"] = "sample"

    def resolve_direction(self, params: Mapping[str, Any]) -> Direction:
        value = self.direction(params) if callable(self.direction) else self.direction
        if value not in DIRECTIONS:
            raise ValueError(f"output {self.name!r}: direction must be one of {DIRECTIONS}, "
                             f"got {value!r}")
        return value

    def resolve_range(self, params: Mapping[str, Any]) -> tuple[float, float]:
        return self.range(params) if callable(self.range) else self.range


@dataclass(frozen=True)
class Cost:
    """What scoring one sample costs: model ``forward`` passes and ``explanations`` (calls of the
    method under test, each one forward and one backward pass or more, by method)."""

    forward: float = 0.0
    explanations: float = 0.0


CostFn = Callable[[Mapping[str, Any], tuple[int, int, int], Any], Cost]
"""``cost(params, shape, model) -> Cost``: ``shape`` = (C, H, W) of one image; ``model`` may be
None when unknown (then model-dependent counts are NaN)."""


@dataclass(frozen=True)
class Curve:
    """A per-sample curve: ``values`` ``[B, K]`` at positions ``x`` ``[K]`` (named ``x_name``);
    ``labels`` name the points where they have names (the randomised layers)."""

    x: Tensor
    values: Tensor
    x_name: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.x):
            raise ValueError(f"curve values must be [B, {len(self.x)}], got "
                             f"{tuple(self.values.shape)}")
        if self.labels and len(self.labels) != len(self.x):
            raise ValueError(f"curve labels must name all {len(self.x)} points")


@dataclass(frozen=True)
class MetricResult:
    """What :func:`score` returns for every metric.

    ``values``: output name -> ``[B]`` (NaN where the metric is undefined for a sample);
    ``curves``: curve name -> :class:`Curve`; ``aggregates``: set-level output -> float;
    ``params``: every parameter as used (defaults filled in).
    """

    metric: str
    params: dict[str, Any]
    values: dict[str, Tensor]
    curves: dict[str, Curve] = field(default_factory=dict)
    aggregates: dict[str, float] = field(default_factory=dict)

    def direction(self, output: str) -> Direction:
        """Whether a higher or lower ``output`` is better (or ``none``), for these params."""
        return get_metric(self.metric).direction(output, self.params)

    @property
    def n(self) -> int:
        """Number of scored samples."""
        return len(next(iter(self.values.values()))) if self.values else 0


@dataclass(frozen=True)
class Metric:
    """A registered metric (see the module docstring)."""

    name: str
    kind: str
    function: Callable[..., Any]
    params: dict[str, Any]
    outputs: tuple[Output, ...]
    adapt: Callable[[Any, Mapping[str, Any]], tuple[dict, dict, dict]]
    cost: CostFn
    source: str
    summary: str
    curves: tuple[str, ...] = ()
    mask: Literal["support", "levels"] = "support"
    labels: Literal["explained", "true"] = "explained"

    @property
    def inputs(self) -> tuple[str, ...]:
        return KINDS[self.kind]

    def output(self, name: str) -> Output:
        for out in self.outputs:
            if out.name == name:
                return out
        raise ValueError(f"metric {self.name!r} has no output {name!r}; outputs: "
                         f"{[o.name for o in self.outputs]}")

    def direction(self, output: str, params: Mapping[str, Any] | None = None) -> Direction:
        return self.output(output).resolve_direction(self.resolve(params or {}))

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults updated by ``params``; unknown names are a TypeError."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise TypeError(f"metric {self.name!r} got unknown parameters {unknown}; it takes "
                            f"{sorted(self.params)}")
        return {**self.params, **params}

    def estimate(self, params: Mapping[str, Any] | None = None,
                 shape: tuple[int, int, int] = (3, 224, 224), model: Any = None) -> Cost:
        """Cost per sample of images ``shape`` = (C, H, W) with these params (and ``model``,
        for counts that depend on it)."""
        return self.cost(self.resolve(params or {}), tuple(shape), model)


_METRICS: dict[str, Metric] = {}


def _defaults(function: Callable[..., Any], n_inputs: int) -> dict[str, Any]:
    """Keyword parameters after the first ``n_inputs`` positional ones, with their defaults."""
    params = list(inspect.signature(function).parameters.values())
    out = {}
    for p in params[n_inputs:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in INPUTS:
            continue
        if p.default is inspect.Parameter.empty:
            raise ValueError(f"{function.__name__}: parameter {p.name!r} needs a default to be "
                             "registered")
        out[p.name] = p.default
    return out


def register(name: str, *, kind: str, function: Callable[..., Any], outputs: Sequence[Output],
             adapt: Callable[[Any, Mapping[str, Any]], tuple[dict, dict, dict]],
             cost: CostFn, source: str, summary: str, curves: Sequence[str] = (),
             params: Mapping[str, Any] | None = None,
             mask: Literal["support", "levels"] = "support",
             labels: Literal["explained", "true"] = "explained") -> Metric:
    """Register ``function`` under ``name``.

    ``adapt(raw, params) -> (values, curves, aggregates)`` turns the function's own return value
    into the record's parts. ``params``: the defaults, when not read from the signature.
    ``mask`` (ground-truth metrics): ``support`` scores against the mask's non-zero pixels (a
    binary mask; samples with an empty mask get NaN), ``levels`` against its values as given
    (document 001's 0 / 0.4 / 0.9). ``labels``: the ``y`` the metric takes, the ``explained``
    class (whose score a perturbation curve follows; the default) or the ``true`` class (an
    accuracy, e.g. HAAS explains the predicted class but counts correct predictions).
    """
    if name in _METRICS:
        raise ValueError(f"metric {name!r} is already registered")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    n_inputs = len(KINDS[kind])
    defaults = dict(params) if params is not None else _defaults(function, n_inputs)
    clash = sorted(set(defaults) & set(INPUTS))
    if clash:
        raise ValueError(f"metric {name!r}: parameter names {clash} are input names")
    names = [o.name for o in outputs]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"metric {name!r}: outputs must be unique and non-empty, got {names}")
    metric = Metric(name, kind, function, defaults, tuple(outputs), adapt, cost, source, summary,
                    tuple(curves), mask, labels)
    _METRICS[name] = metric
    return metric


def get_metric(name: str) -> Metric:
    """The registered metric called ``name`` (ValueError listing the known names otherwise)."""
    if not isinstance(name, str) or name not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {name!r}")
    return _METRICS[name]


def available() -> list[Metric]:
    """Every registered metric, sorted by name."""
    return [_METRICS[name] for name in sorted(_METRICS)]


def score(metric: str, **kwargs: Any) -> MetricResult:
    """Run the registered ``metric`` on the inputs its kind needs; every other keyword is a
    parameter. Returns a :class:`MetricResult`.

    Example: ``score("top_k_precision", a=a, m=m)``; ``score("region_perturbation", model=model,
    x=x, y=y, a=a, patch=8, order="morf")``.
    """
    spec = get_metric(metric)
    inputs = {k: kwargs.pop(k) for k in INPUTS if k in kwargs}
    missing = [k for k in spec.inputs if inputs.get(k) is None]
    if missing:
        raise TypeError(f"metric {metric!r} ({spec.kind}) needs inputs {list(spec.inputs)}; "
                        f"missing {missing}")
    params = spec.resolve(kwargs)
    rows = None
    if "m" in spec.inputs and spec.mask == "support":
        m = inputs["m"]
        if not isinstance(m, Tensor) or m.ndim != 3:
            raise ValueError(f"m must be a mask tensor [B, H, W], got "
                             f"{getattr(m, 'shape', type(m).__name__)}")
        inputs["m"] = (m > 0).to(m.dtype if m.is_floating_point() else torch.float32)
        filled = inputs["m"].flatten(1).amax(1) > 0
        if not bool(filled.all()):  # empty masks: undefined, NaN for those samples
            rows = torch.nonzero(filled).flatten()
            inputs = {k: (v[rows] if k in ("a", "m", "reference", "x", "y") and v is not None
                          else v) for k, v in inputs.items()}
    total = len(next(v for k, v in inputs.items() if k in ("a", "x")))
    if rows is not None and len(rows) == 0:
        values = {o.name: torch.full((len(filled),), math.nan, dtype=torch.float64)
                  for o in spec.outputs if o.level == "sample"}
        return MetricResult(metric, params, values)
    args = [inputs[k] for k in spec.inputs]
    extra = {"a": inputs["a"]} if spec.kind == "explainer" and inputs.get("a") is not None else {}
    raw = spec.function(*args, **extra, **params)
    values, curves, aggregates = spec.adapt(raw, params)
    declared = {o.name for o in spec.outputs}
    undeclared = sorted((set(values) | set(aggregates)) - declared)
    if undeclared:
        raise RuntimeError(f"metric {metric!r} returned undeclared outputs {undeclared}")
    values = {k: v.detach().double().cpu() for k, v in values.items()}
    if rows is not None:
        values = {k: _scatter(v, rows, len(filled)) for k, v in values.items()}
        curves = {k: Curve(c.x, _scatter(c.values, rows, len(filled)), c.x_name, c.labels)
                  for k, c in curves.items()}
    elif any(len(v) != total for v in values.values()):
        raise RuntimeError(f"metric {metric!r} returned values for the wrong number of samples")
    return MetricResult(metric, params, values, curves, {k: float(v) for k, v in
                                                         aggregates.items()})


def _scatter(values: Tensor, rows: Tensor, n: int) -> Tensor:
    """``values`` of the samples ``rows`` placed into NaN-filled ``[n, ...]``."""
    out = torch.full((n, *values.shape[1:]), math.nan, dtype=torch.float64)
    out[rows.cpu()] = values.double().cpu()
    return out


def jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with values JSON cannot hold (tuples, fills, callables) made representable:
    tuples become lists, other objects their ``repr``."""
    def convert(value: Any) -> Any:
        if isinstance(value, (bool, int, float, str)) or value is None:
            return value
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, Tensor) and value.numel() == 1:
            return value.item()
        return repr(value)

    out = {k: convert(v) for k, v in params.items()}
    json.dumps(out)  # a value convert() missed would fail here, not in the store
    return out


UNLABELLED = ("seed", "memory_budget")


def label(metric: str, output: str, params: Mapping[str, Any] | None = None) -> str:
    """A display name: ``metric`` (or ``metric.output`` when the output is named otherwise), with
    the scalar parameters that differ from the defaults in brackets, e.g. ``aopc [region=14]``
    (lists such as an input range or layer names, seeds and memory budgets are left out)."""
    spec = get_metric(metric)
    name = metric if output == metric else f"{metric}.{output}"
    changed = {k: v for k, v in jsonable(spec.resolve(params or {})).items()
               if k in spec.params and k not in UNLABELLED
               and isinstance(v, (bool, int, float, str))
               and v != jsonable({k: spec.params[k]})[k]}
    if not changed:
        return name
    text = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
    return f"{name} [{text}]"


# ---------------------------------------------------------------- small adapters and costs

def single(output: str) -> Callable[[Any, Mapping[str, Any]], tuple[dict, dict, dict]]:
    """Adapter of a function returning one ``Tensor[B]``: that tensor is ``output``."""
    def adapt(raw: Tensor, params: Mapping[str, Any]) -> tuple[dict, dict, dict]:
        return {output: raw}, {}, {}

    return adapt


def free(params: Mapping[str, Any], shape: tuple[int, int, int], model: Any = None) -> Cost:
    """No model pass: computed from the maps (and masks) alone."""
    return Cost()


def forward_passes(n: float) -> CostFn:
    """A cost of ``n`` forward passes per sample, whatever the parameters."""
    def cost(params: Mapping[str, Any], shape: tuple[int, int, int], model: Any = None) -> Cost:
        return Cost(forward=n)

    return cost
