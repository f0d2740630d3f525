"""The metric registry: every metric declares what it needs, its outputs' directions and ranges
and its cost; ``score`` returns one record type whatever the metric, equal to the plain function;
the declared cost equals the forward passes the metric really makes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tests.metrics.conftest import Counting, gradient_explain, tiny_cnn

from salbench.metrics import (
    KINDS,
    MetricResult,
    available,
    get_metric,
    label,
    pixel_flipping,
    score,
    soft_five_band,
    top_k_precision,
)
from salbench.metrics.registry import DIRECTIONS, jsonable


def inputs(b: int = 3, size: int = 16) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, size, size, generator=g)
    a = torch.randn(b, 3, size, size, generator=g)
    m = (torch.rand(b, size, size, generator=g) < 0.3).float()
    m[:, 0, 0] = 1
    levels = torch.tensor([0.0, 0.4, 0.9])[torch.randint(0, 3, (b, size, size), generator=g)]
    return {"x": x, "y": torch.tensor([0, 1, 2][:b]), "a": a, "m": m, "levels": levels,
            "reference": a.flip(-1), "model": tiny_cnn(), "explain_fn": gradient_explain}


CHEAP = {"max_sensitivity": {"n_samples": 2}, "avg_sensitivity": {"n_samples": 2},
         "model_randomisation": {"similarities": ["spearman", "ssim"]},
         "region_perturbation": {"patch": 4}, "aopc": {"region": 4},
         "top_k_intersection": {"k": 10}}


def run(spec, data, **params):
    given = {k: data["levels"] if k == "m" and spec.mask == "levels" else data[k]
             for k in spec.inputs}
    return score(spec.name, **given, **{**CHEAP.get(spec.name, {}), **params})


@pytest.mark.parametrize("spec", available(), ids=lambda s: s.name)
def test_every_metric_returns_a_record_with_declared_outputs_and_directions(spec):
    assert spec.kind in KINDS and spec.source and spec.summary
    data = inputs()
    result = run(spec, data)
    assert isinstance(result, MetricResult) and result.metric == spec.name
    declared = {o.name: o for o in spec.outputs}
    assert set(result.values) <= {n for n, o in declared.items() if o.level == "sample"}
    assert set(result.aggregates) <= {n for n, o in declared.items() if o.level == "set"}
    assert result.values and result.n == 3
    for name, values in result.values.items():
        assert values.shape == (3,) and values.dtype == torch.float64
        lo, hi = declared[name].resolve_range(result.params)
        finite = values[torch.isfinite(values)]
        assert bool(((finite >= lo - 1e-9) & (finite <= hi + 1e-9)).all()), (name, values)
        assert result.direction(name) in DIRECTIONS
    for curve in result.curves.values():
        assert curve.values.shape[0] == 3 and curve.values.shape[1] == len(curve.x)
    assert set(result.params) == set(spec.params)
    json.dumps(jsonable(result.params))  # storable as the rows' metric_params


def test_score_equals_the_plain_functions():
    data = inputs()
    r = score("top_k_precision", a=data["a"], m=data["m"])
    torch.testing.assert_close(r.values["top_k_precision"],
                               top_k_precision(data["a"], data["m"]).double())
    r = score("pixel_flipping", model=data["model"], x=data["x"], y=data["y"], a=data["a"],
              order="lrf", fill=0.0)
    raw = pixel_flipping(data["model"], data["x"], data["y"], data["a"], order="lrf", fill=0.0)
    torch.testing.assert_close(r.values["auc"], raw.scores.double())
    torch.testing.assert_close(r.curves["score"].values, raw.curves.double())
    r = score("soft_five_band", a=data["a"], m=data["levels"], schedule="clamped")
    raw = soft_five_band(data["a"], data["levels"], "clamped")
    torch.testing.assert_close(r.values["precision_avg"], raw.precision_avg)
    torch.testing.assert_close(r.curves["recall"].values.mean(0), raw.roc_recall)


@pytest.mark.parametrize("order, direction", [("morf", "lower"), ("lrf", "higher"),
                                              ("random", "none")])
def test_perturbation_direction_follows_the_order(order, direction):
    for name in ("pixel_flipping", "region_perturbation"):
        assert get_metric(name).direction("auc", {"order": order}) == direction
    assert get_metric("aopc").direction("aopc") == "higher"
    assert get_metric("max_sensitivity").direction("max_sensitivity") == "lower"
    assert get_metric("soft_five_band").direction("fpr_avg") == "lower"
    assert get_metric("haas").direction("correct_x") == "none"


def test_empty_masks_give_nan_for_those_samples_only():
    data = inputs()
    m = data["m"].clone()
    m[1] = 0
    r = score("top_k_precision", a=data["a"], m=m)
    values = r.values["top_k_precision"]
    assert math.isnan(values[1]) and torch.isfinite(values[[0, 2]]).all()
    torch.testing.assert_close(values[[0, 2]],
                               top_k_precision(data["a"][[0, 2]], m[[0, 2]]).double())
    empty = score("iou", a=data["a"], m=torch.zeros_like(m))
    assert torch.isnan(empty.values["iou"]).all()
    # the support of a level mask is its non-zero part
    r = score("top_k_precision", a=data["a"], m=data["m"] * 0.4)
    torch.testing.assert_close(r.values["top_k_precision"],
                               top_k_precision(data["a"], data["m"]).double())


def test_bad_names_params_and_inputs_are_errors_naming_them():
    data = inputs()
    with pytest.raises(ValueError, match="metric must be one of"):
        score("nosuch", a=data["a"])
    with pytest.raises(TypeError, match=r"unknown parameters \['thresh'\]"):
        score("iou", a=data["a"], m=data["m"], thresh=0.1)
    with pytest.raises(TypeError, match=r"missing \['m'\]"):
        score("iou", a=data["a"])


@pytest.mark.parametrize("name, params", [
    ("region_perturbation", {"patch": 4}), ("region_perturbation", {"patch": 4, "steps": "log:5"}),
    ("pixel_flipping", {}), ("aopc", {"region": 4}), ("aopc", {"region": 4, "steps": 3}),
    ("haas", {}), ("hull_sensitivity", {}), ("classification", {}), ("conservation", {}),
])
def test_declared_cost_is_the_forward_passes_made(name, params):
    data = inputs(size=16)
    spec = get_metric(name)
    counting = Counting(data["model"])
    given = {k: counting if k == "model" else data[k] for k in spec.inputs}
    score(name, **given, **params)  # the first call also measures the activation size once
    counting.images = 0
    score(name, **given, **params)
    cost = spec.estimate(params, (3, 16, 16))
    assert counting.images == cost.forward * 3


def test_explainer_cost_counts_the_explanations():
    data = inputs()
    calls = []

    def explain_fn(model, x, y):
        calls.append(len(x))
        return gradient_explain(model, x, y)

    score("max_sensitivity", model=data["model"], x=data["x"], y=data["y"],
          explain_fn=explain_fn, a=data["a"], n_samples=4)
    assert sum(calls) == get_metric("max_sensitivity").estimate({"n_samples": 4}).explanations * 3


def test_labels_name_the_non_default_params():
    assert label("aopc", "aopc") == "aopc"
    assert label("aopc", "aopc", {"region": 14}) == "aopc [region=14]"
    assert label("region_perturbation", "auc", {"order": "lrf", "patch": 8}) == (
        "region_perturbation.auc [order=lrf]")
    assert label("soft_five_band", "precision_avg", {"schedule": "clamped"}) == (
        "soft_five_band.precision_avg [schedule=clamped]")


def test_every_metric_has_a_distinct_source_cited_and_the_registry_is_sorted():
    names = [m.name for m in available()]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert {"top_k_precision", "soft_five_band", "region_perturbation", "aopc",
            "max_sensitivity", "haas", "model_randomisation", "complexity_ratio"} <= set(names)
    assert np.all([bool(m.source) for m in available()])
