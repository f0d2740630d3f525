"""The fast LRP backend (:mod:`salbench.explain.lrp_fast`) against Zennit, its oracle.

"Equal" means: every value within ``RTOL`` = 1e-5 of the largest |value| of Zennit's map of the
same sample, and the same values non-finite. The exactness tests run in float64, where the two
paths agree to ~1e-14 (float32 rounding alone moves either path by ~1e-6 of the map's largest
value after 16 layers); the lrp-grid composites are also checked in float32, the study's dtype.
Models: VGG-16, VGG-16-BN and a canonized ResNet-18 at width 0.125, 32 px, eval mode, random
weights with non-zero biases and trained-like batch-norm statistics.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from explain_helpers import batch_norm_statistics, conv_flatten_fc
from torch import nn

from salbench.explain import (
    CompositeSpec,
    FastLRPFallback,
    available,
    explain,
    get_method,
    lrp_grid_maps,
    preserved_model,
)
from salbench.explain.lrp import (
    LRP_BACKENDS,
    RULES,
    STABILISERS,
    build_composite,
    lrp_attribute,
)
from salbench.explain.lrp_fast import FastLRPUnsupported, fast_lrp_maps
from salbench.models import build, make_explainable
from salbench.models.surgery import fold_normalisation, to_conv_flatten_fc, to_gap_fc
from salbench.studies.lrp_grid.grid import composite_spec as grid_composite

RTOL = 1e-5
WIDTH, SIZE = 0.125, 32
LRP_METHODS = sorted(m.name for m in available() if m.backend == "zennit")
# the lrp-grid study's two axes, 0 included, up to its largest value
GRID_POINTS = [(0.0, 0.0), (0.0, 0.1), (0.25, 0.0), (0.25, 0.1), (1.0, 0.01)]
RULE_PARAMS = {"lrp0": {}, "epsilon": {"epsilon": 0.1}, "gamma": {"gamma": 0.3},
               "zbox": {}, "flat": {}, "alpha_beta": {"alpha": 1.5, "beta": 0.5}, "zplus": {}}


def assert_equal_maps(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    """``actual`` equals Zennit's ``expected`` (module docstring), per sample."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(actual), finite), "non-finite values differ"
    a, e = actual.where(finite, 0), expected.where(finite, 0)
    scale = e.flatten(1).abs().amax(1).clamp_min(1e-30).view(-1, *[1] * (e.ndim - 1))
    error = float(((a - e).abs() / scale).max().detach())
    assert error <= rtol, f"largest difference {error:.2e} of the map's largest |value|"


def make_model(arch: str, dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = batch_norm_statistics(build(arch, 5, 3, SIZE, WIDTH), seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.2 * torch.rand(m.bias.shape, generator=g) - 0.1)
    return make_explainable(model).eval().to(dtype)


_MODELS: dict[tuple, nn.Module] = {}


def model_for(arch: str, dtype: torch.dtype = torch.float64) -> nn.Module:
    if (arch, dtype) not in _MODELS:
        _MODELS[arch, dtype] = make_model(arch, dtype)
    return _MODELS[arch, dtype]


def images(n: int = 2, dtype: torch.dtype = torch.float64, size: int = SIZE, channels: int = 3,
           signed: bool = False) -> torch.Tensor:
    x = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(7))
    return (2 * x - 1 if signed else x).to(dtype)


TARGETS = torch.tensor([1, 3])


def zennit_maps(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                spec: CompositeSpec) -> torch.Tensor:
    """The spec's maps by Zennit's hooks, non-finite values kept (no finiteness check)."""
    with preserved_model(model):
        return lrp_attribute(model, x, y, build_composite(model, spec, x))[0]


def uniform(rule: str, stabiliser: str, canonizer: str = "auto") -> CompositeSpec:
    """``rule`` on every layer (z^B: on the pixel layer, ε = 0.1 above)."""
    if rule == "zbox":
        ranges = [{"first": 0, "last": 0, "rule": "zbox"},
                  {"first": 1, "rule": "epsilon", "params": {"epsilon": 0.1}}]
    else:
        ranges = [{"first": 0, "rule": rule, "params": RULE_PARAMS[rule]}]
    return CompositeSpec.parse({"ranges": ranges, "stabiliser": stabiliser,
                                "canonizer": canonizer})


@pytest.fixture(autouse=True)
def fallback_is_an_error():
    """A silent fallback to Zennit would make every comparison trivially true."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastLRPFallback)
        yield


# ---- every rule, stabiliser and named composite ---------------------------------------------


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn", "resnet18"])
def test_every_rule_and_stabiliser_equals_zennit(arch):
    """7 rules × 3 stabilisers, each point of one ``lrp_grid_maps`` call against Zennit alone
    (vanilla: NaN wherever Zennit's is, at the average pool's dead channels)."""
    model = model_for(arch)
    x = images()
    specs = [uniform(rule, kind) for rule in RULES for kind in STABILISERS]
    maps = lrp_grid_maps(model, x, TARGETS, specs)
    assert maps.shape == (len(specs), *x.shape) and not maps.requires_grad
    for spec, fast in zip(specs, maps):
        assert_equal_maps(fast, zennit_maps(model, x, TARGETS, spec))


@pytest.mark.parametrize("kind", STABILISERS)
def test_rules_with_finite_vanilla_maps_and_signed_inputs(kind):
    """A net without average pooling: vanilla maps are finite, so every value is compared;
    signed inputs exercise x⁻ (generalised γ, α-β, z⁺ with negative inputs) and per-channel
    z^B bounds."""
    torch.manual_seed(3)
    model = conv_flatten_fc(classes=4).double().eval()
    x = images(size=16, signed=True)
    box = {"first": 0, "last": 0, "rule": "zbox",
           "params": {"low": [-1.0, -1.5, -1.0], "high": [1.0, 1.0, 2.0]}}
    specs = [uniform(rule, kind) for rule in RULES] + [
        CompositeSpec.parse({"ranges": [box, {"first": 1, "rule": "gamma"}], "stabiliser": kind})]
    for spec, fast in zip(specs, lrp_grid_maps(model, x, TARGETS, specs)):
        expected = zennit_maps(model, x, TARGETS, spec)
        if kind != "vanilla":
            assert bool(torch.isfinite(expected).all())
        assert_equal_maps(fast, expected)


def _method_cases():
    extra = {"lrp_composite": {"composite": {"ranges": [
                 {"first": 0, "last": 0, "rule": "zbox", "params": {"low": 0.0, "high": 1.0}},
                 {"first": 1, "last": 3, "rule": "alpha_beta"},
                 {"first": 5, "rule": "gamma", "params": {"gamma": 0.1}}]}},  # layer 4: gradient
             "lrp_epsilon_gamma_box": {"gamma": 0.1, "low": 0.0, "high": 1.0}}
    cases = [(name, extra.get(name, {})) for name in LRP_METHODS]
    return cases + [("lrp_gamma", {"first_rule": "zbox"}),
                    ("lrp_tutorial", {"stabiliser": "tutorial", "gamma": 0.5, "epsilon": 0.0}),
                    ("lrp_decreasing_gamma", {"gammas": (1.0, 0.0, 0.3, 0.1)}),
                    ("lrp_alpha_beta", {"stabiliser": "tutorial", "alpha": 3.0, "beta": 2.0}),
                    ("lrp_epsilon_plus_flat", {"epsilon": 0.5})]


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn", "resnet18"])
def test_every_registered_method_with_backend_fast_equals_zennit(arch):
    """Through ``explain``: the registered methods (Zennit's own EpsilonPlusFlat and
    EpsilonGammaBox classes on the Zennit side), defaults and non-default parameters."""
    model = model_for(arch)
    x = images()
    for name, params in _method_cases():
        fast = explain(model, x, TARGETS, name, backend="fast", **params)
        assert_equal_maps(fast, explain(model, x, TARGETS, name, **params))


@pytest.mark.parametrize("head", ["classifier", "gap_fc", "conv_flatten_fc"])
def test_resnet50_bottlenecks_and_document_003_heads(head):
    """Bottleneck blocks, and the headless last block of document 003's surgery (its residual
    sum is the model's last convolutional output)."""
    model = make_model("resnet50")
    if head != "classifier":
        surgery = {"gap_fc": to_gap_fc, "conv_flatten_fc": to_conv_flatten_fc}[head]
        model = surgery(model).to(torch.float64).eval()  # the new head is float32
    x = images()
    for name in ("lrp_epsilon_gamma_box", "lrp_tutorial"):
        fast = explain(model, x, TARGETS, name, backend="fast")
        assert_equal_maps(fast, explain(model, x, TARGETS, name))


@pytest.mark.parametrize("canonizer", ["none", "merge_bn"])
def test_canonizer_choices_on_resnet(canonizer):
    """Without the residual ``Sum`` (plain gradient through the addition) and without any
    canonizer (batch norms unmerged: Pass rule)."""
    model = model_for("resnet18")
    x = images()
    for name in ("lrp_epsilon_gamma_box", "lrp_tutorial"):
        fast = explain(model, x, TARGETS, name, canonizer=canonizer, backend="fast")
        assert_equal_maps(fast, explain(model, x, TARGETS, name, canonizer=canonizer))


# ---- the lrp-grid study's composites --------------------------------------------------------


def _grid_specs(stabilisers=STABILISERS, layers=("table", "text")) -> list[CompositeSpec]:
    specs = [grid_composite("decreasing_gamma", f, s, kind, decreasing_gamma_layers=layer)
             for f, s in GRID_POINTS for kind in stabilisers for layer in layers]
    return specs + [grid_composite("tutorial", f, s, kind)
                    for f, s in GRID_POINTS for kind in stabilisers]


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_lrp_grid_maps_equal_each_grid_point_by_zennit(arch):
    """Decreasing-γ (both layer readings) and the tutorial composite at grid points with 0s,
    every stabiliser, all in one ``lrp_grid_maps`` call, each against Zennit alone."""
    model = model_for(arch)
    x = images()
    specs = _grid_specs()
    maps = lrp_grid_maps(model, x, TARGETS, specs)
    for spec, fast in zip(specs, maps):
        assert_equal_maps(fast, zennit_maps(model, x, TARGETS, spec))


def test_grid_point_alone_through_explain_equals_zennit():
    """One grid point as the study calls it (``lrp_composite`` with the spec's dump)."""
    model = model_for("vgg16")
    x = images()
    for composite in ("decreasing_gamma", "tutorial"):
        spec = grid_composite(composite, 0.25, 0.1, "tutorial").model_dump()
        fast = explain(model, x, TARGETS, "lrp_composite", composite=spec, backend="fast")
        assert_equal_maps(fast, explain(model, x, TARGETS, "lrp_composite", composite=spec))


def test_grid_in_float32_equals_zennit_in_float32():
    model = model_for("vgg16", torch.float32)
    x = images(dtype=torch.float32)
    specs = _grid_specs(stabilisers=("zennit", "tutorial"), layers=("table",))
    for spec, fast in zip(specs, lrp_grid_maps(model, x, TARGETS, specs)):
        assert_equal_maps(fast, zennit_maps(model, x, TARGETS, spec))


def test_grid_chunks_and_batch_do_not_change_the_maps():
    """Chunks of composites (a tiny memory budget: one composite per chunk) and samples
    explained alone give the same maps; an int target means every sample's class."""
    model = model_for("vgg16")
    x = images()
    specs = _grid_specs(stabilisers=("zennit",), layers=("table",))
    whole = lrp_grid_maps(model, x, TARGETS, specs)
    assert torch.allclose(lrp_grid_maps(model, x, TARGETS, specs, memory_budget=1), whole,
                          rtol=0, atol=1e-12 * float(whole.abs().max()))
    alone = lrp_grid_maps(model, x[1:], 3, specs)
    assert_equal_maps(alone[:, 0], whole[:, 1])


def test_the_model_is_left_as_found():
    model = model_for("resnet18")
    x = images()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        logits = model(x)
    lrp_grid_maps(model, x, TARGETS, _grid_specs(stabilisers=("zennit",), layers=("table",)))
    explain(model, x, TARGETS, "lrp_tutorial", backend="fast")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(x), logits)
    assert not any("forward" in vars(m) or m._forward_hooks or m._forward_pre_hooks
                   or m._backward_hooks for m in model.modules())
    assert not model.training


# ---- models the tracer handles, models it refuses -------------------------------------------


class _Small(nn.Module):
    def __init__(self, conv: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = conv or nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 4)


class ViewBySize(_Small):
    def forward(self, x):
        h = self.relu(self.conv(x))
        return self.fc(h.view(h.size(0), -1))


class FunctionalInplace(_Small):
    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv(x), True), 1))


class ModuleInplace(_Small):
    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.fc(torch.flatten(self.relu(self.conv(x)), 1))


class Standardised(_Small):
    """Per-image standardisation inside the model: scalars and reductions of the input."""

    def forward(self, x):
        x = (x - x.mean()) / x.std()
        return self.fc(torch.flatten(self.relu(self.conv(x)), 1))


class Grouped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(6, 6, 3, padding=1, groups=3), nn.ReLU(),
                                      nn.AvgPool2d(2))
        self.fc = nn.Linear(6 * 4 * 4, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class DataDependent(ViewBySize):
    def forward(self, x):
        h = self.relu(self.conv(x))
        if h.sum() > 0:
            h = h * 2
        return self.fc(torch.flatten(h, 1))


class InplaceMethod(_Small):
    def forward(self, x):
        return self.fc(torch.flatten(self.conv(x).relu_(), 1))


class Chunked(_Small):
    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        return self.fc(torch.flatten(torch.cat([self.relu(a), b], 1), 1))


class Transposed(_Small):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 4, 1)

    def forward(self, x):
        return self.fc(torch.flatten(self.relu(self.up(self.conv(x))), 1))


class Reflect(ViewBySize):
    def __init__(self) -> None:
        super().__init__(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"))


class SamePadding(ViewBySize):
    def __init__(self) -> None:
        super().__init__(nn.Conv2d(3, 4, 3, padding="same"))


SMALL_METHODS = ["lrp_gamma", "lrp_alpha_beta", "lrp_epsilon_gamma_box", "lrp_decreasing_gamma"]


@pytest.mark.parametrize("cls", [ViewBySize, FunctionalInplace, ModuleInplace, Standardised,
                                 Grouped])
def test_traced_models_with_shapes_inplace_ops_and_groups(cls):
    torch.manual_seed(0)
    model = cls().double().eval()
    x = images(size=8, signed=True)
    for name in SMALL_METHODS:
        fast = explain(model, x, TARGETS, name, backend="fast")
        assert_equal_maps(fast, explain(model, x, TARGETS, name))
    spec = uniform("gamma", "tutorial")  # on the model itself (explain may run on a copy)
    assert_equal_maps(lrp_grid_maps(model, x, TARGETS, [spec])[0],
                      zennit_maps(model, x, TARGETS, spec))


def test_folded_normalisation_is_traced():
    """The lrp-grid study's pre-trained VGG-16 has its normalisation folded into a
    ``ConstantPad`` before the first convolution (plain gradient through it, as in Zennit)."""
    model = fold_normalisation(copy.deepcopy(model_for("vgg16")))
    x = images()
    spec = grid_composite("tutorial", 0.25, 0.25, "zennit")
    assert_equal_maps(lrp_grid_maps(model, x, TARGETS, [spec])[0],
                      zennit_maps(model, x, TARGETS, spec))


@pytest.mark.parametrize("cls,reason", [
    (DataDependent, "torch.fx cannot trace"), (InplaceMethod, "in-place operation"),
    (Chunked, "returns several tensors"), (Transposed, "transposed convolutions"),
    (Reflect, "padding"), (SamePadding, "padding")])
def test_unsupported_models_fall_back_to_zennit_with_a_warning(cls, reason):
    torch.manual_seed(0)
    model = cls().double().eval()
    x = images(size=8)
    spec = uniform("gamma", "zennit")
    with pytest.raises(FastLRPUnsupported, match=reason):
        fast_lrp_maps(model, x, TARGETS, [spec])
    with warnings.catch_warnings():
        warnings.simplefilter("always", FastLRPFallback)
        with pytest.warns(FastLRPFallback, match=reason):
            maps = lrp_grid_maps(model, x, TARGETS, [spec, uniform("epsilon", "tutorial")])
        assert torch.equal(maps[0], zennit_maps(model, x, TARGETS, spec))
        for name in SMALL_METHODS:
            with pytest.warns(FastLRPFallback, match=f"{name}.*{reason}"):
                fast = explain(model, x, TARGETS, name, backend="fast")
            assert torch.equal(fast, explain(model, x, TARGETS, name))


def test_the_default_backend_runs_the_fast_path_and_falls_back_to_zennit_silently(monkeypatch):
    """``backend="auto"`` (the default) never calls Zennit on a model the fast path handles (its
    maps are the fast backend's), and on one it cannot handle gives Zennit's maps without a
    :class:`FastLRPFallback` warning (the autouse fixture turns one into an error)."""
    model, x = model_for("resnet18"), images()
    unsupported = InplaceMethod().double().eval()
    small = images(size=8)
    expected = {name: explain(unsupported, small, TARGETS, name, backend="zennit")
                for name in SMALL_METHODS}
    fast = {name: explain(model, x, TARGETS, name, backend="fast") for name in SMALL_METHODS}

    def no_zennit(*args, **kwargs):
        raise AssertionError("the default backend called Zennit on a supported model")

    with monkeypatch.context() as patch:
        patch.setitem(LRP_BACKENDS, "zennit", no_zennit)
        for name in SMALL_METHODS:
            assert get_method(name).params["backend"] == "auto"
            assert torch.equal(explain(model, x, TARGETS, name), fast[name])
    for name in SMALL_METHODS:
        assert torch.equal(explain(unsupported, small, TARGETS, name), expected[name])


# ---- bad arguments --------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    model = model_for("vgg16")
    x = images()
    spec = uniform("gamma", "zennit")
    with pytest.raises(ValueError, match="non-empty sequence of CompositeSpec"):
        lrp_grid_maps(model, x, TARGETS, spec)
    with pytest.raises(ValueError, match="non-empty sequence"):
        lrp_grid_maps(model, x, TARGETS, [])
    with pytest.raises(ValueError, match="share one canonizer"):
        lrp_grid_maps(model, x, TARGETS, [spec, uniform("gamma", "zennit", canonizer="none")])
    for budget in (0, 1.5, -3):
        with pytest.raises(ValueError, match="memory_budget"):
            lrp_grid_maps(model, x, TARGETS, [spec], memory_budget=budget)
    overlap = {"ranges": [{"first": 0, "last": 3, "rule": "zbox"},
                          {"first": 2, "rule": "gamma"}]}
    with pytest.raises(ValueError, match="overlap at layer indices"):
        lrp_grid_maps(model, x, TARGETS, [overlap])
    wrong = {"ranges": [{"first": 0, "rule": "gamma", "params": {"epsilon": 0.1}}]}
    with pytest.raises(ValueError, match="takes parameters"):
        lrp_grid_maps(model, x, TARGETS, [wrong])
    with pytest.raises(ValueError, match="rule"):
        lrp_grid_maps(model, x, TARGETS, [{"ranges": [{"first": 0, "rule": "wsquare"}]}])
    with pytest.raises(ValueError, match="stabiliser"):
        lrp_grid_maps(model, x, TARGETS, [{"ranges": [{"first": 0, "rule": "lrp0"}],
                                           "stabiliser": "clip"}])
    with pytest.raises(ValueError, match="y holds class 7"):
        lrp_grid_maps(model, x, 7, [spec])
    with pytest.raises(ValueError, match="y holds class 7"):
        explain(model, x, 7, "lrp_gamma", backend="fast")
    with pytest.raises(ValueError, match=r"shape \[B, C, H, W\]"):
        lrp_grid_maps(model, x[0], TARGETS, [spec])
    with pytest.raises(ValueError, match="backend must be one of"):
        explain(model, x, TARGETS, "lrp_gamma", backend="fastest")
    with pytest.raises(ValueError, match="lrp_composite needs composite"):
        explain(model, x, TARGETS, "lrp_composite", backend="fast")
    with pytest.raises(ValueError, match="at least one convolutional or linear layer"):
        lrp_grid_maps(nn.Sequential(nn.Flatten(), nn.ReLU()), x, 0, [spec])
