"""LRP on the batch-norm VGGs: every batch norm merged exactly into its convolution, the canonized
logits checked, the model left exactly as found (Zennit issue 237), layer indices that do not
count batch norms, and Zennit's own API on the canonized model as the oracle."""

from __future__ import annotations

import pytest
import torch
from explain_helpers import (
    batch_norm_statistics,
    hand_built_decreasing_gamma,
    hand_built_tutorial,
    tiny,
    zennit_attribution,
)
from torch import nn
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat, NameMapComposite

from salbench.explain import (
    CanonizationError,
    available,
    decreasing_gamma_ranges,
    explain,
    relevance_by_layer,
)
from salbench.explain.lrp import (
    ExactMergeBatchNorm,
    check_canonized_logits,
    linear_layers,
    name_map,
    tutorial_ranges,
)
from salbench.models import build

LRP_METHODS = [m.name for m in available() if m.backend == "zennit"]
BOX = {"ranges": [{"first": 0, "last": 0, "rule": "zbox", "params": {"low": 0.0, "high": 1.0}}]}


def merged_by_hand(model: nn.Module) -> nn.Module:
    """The plain VGG (no batch norm) computing what the VGG-BN ``model`` computes: each conv
    followed by a BN gets W·γ/√(σ²+ε) and (b − μ)·γ/√(σ²+ε) + β; the classifier is copied."""
    spec = model.salbench_spec
    plain = build(spec.arch.removesuffix("_bn"), spec.num_classes, spec.in_channels,
                  spec.input_size, spec.width).eval()
    layers = list(model.features)
    pairs = [(m, layers[i + 1]) for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    targets = [m for m in plain.features if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for (conv, bn), target in zip(pairs, targets, strict=True):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            target.weight.copy_(conv.weight * scale[:, None, None, None])
            target.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
        plain.classifier.load_state_dict(model.classifier.state_dict())
    return plain


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest |actual − expected| relative to the expected map's largest magnitude, per sample."""
    scale = expected.flatten(1).abs().amax(1).view(-1, *[1] * (expected.ndim - 1))
    return float(((actual - expected).abs() / scale).max())


def _case(arch: str) -> tuple:
    model = tiny(arch).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return model, merged_by_hand(model), x, torch.tensor([1, 2])


@pytest.fixture(scope="module", params=["vgg16_bn", "vgg19_bn"])
def case(request):
    return _case(request.param)


@pytest.fixture(scope="module")
def vgg16_case():
    """Document 002's module positions are VGG-16's: the hand-built oracles need VGG-16-BN."""
    return _case("vgg16_bn")


def test_merged_by_hand_is_the_same_function(case):
    model, plain, x, _ = case
    with torch.no_grad():
        assert _relative_error(plain(x), model(x)) <= 1e-5


@pytest.mark.parametrize("method", ["lrp_tutorial", "lrp_decreasing_gamma", "lrp_epsilon",
                                    "lrp_gamma", "lrp_alpha_beta", "lrp_epsilon_plus_flat",
                                    "lrp_epsilon_gamma_box"])
def test_bn_vgg_is_explained_as_the_plain_vgg_with_merged_weights(case, method):
    """Canonization merges every batch norm, and layer index k is the same convolution on both:
    the two models get the same maps (batch norms do not shift the composites' ranges)."""
    model, plain, x, y = case
    assert _relative_error(explain(model, x, y, method), explain(plain, x, y, method)) <= 1e-5


@pytest.mark.parametrize("gamma,epsilon", [(0.25, 0.25), (0.01, 1.0)])
def test_tutorial_equals_zennit_by_hand_on_the_canonized_model(vgg16_case, gamma, epsilon):
    """Oracle: Zennit's own NameMapComposite in document 002's VGG-16 module positions on the
    hand-canonized model, against salbench on the batch-norm model."""
    model, plain, x, y = vgg16_case
    spec = {"ranges": BOX["ranges"] + [
        {"first": 1, "last": 6, "rule": "gamma", "params": {"gamma": gamma}},
        {"first": 7, "last": 12, "rule": "epsilon", "params": {"epsilon": epsilon}},
        {"first": 13, "rule": "lrp0"}]}
    reference = zennit_attribution(plain, hand_built_tutorial(plain, gamma, epsilon), x, y)
    assert _relative_error(explain(model, x, y, "lrp_composite", composite=spec), reference) <= 1e-5


def test_decreasing_gamma_and_named_composites_equal_zennit_by_hand(vgg16_case):
    model, plain, x, y = vgg16_case
    gammas = (0.5, 0.25, 0.1, 0.0)
    spec = {"ranges": BOX["ranges"] + [r.model_dump() for r in decreasing_gamma_ranges(gammas)[1:]]}
    reference = zennit_attribution(plain, hand_built_decreasing_gamma(plain, gammas), x, y)
    assert _relative_error(explain(model, x, y, "lrp_composite", composite=spec), reference) <= 1e-5
    reference = zennit_attribution(plain, EpsilonPlusFlat(epsilon=0.1), x, y)
    ours = explain(model, x, y, "lrp_epsilon_plus_flat", epsilon=0.1)
    assert _relative_error(ours, reference) <= 1e-5
    reference = zennit_attribution(plain, EpsilonGammaBox(low=0.0, high=1.0), x, y)
    ours = explain(model, x, y, "lrp_epsilon_gamma_box", low=0.0, high=1.0)
    assert _relative_error(ours, reference) <= 1e-5


def _canonized_features(model: nn.Module, canonizer, x: torch.Tensor) -> torch.Tensor:
    with NameMapComposite([], canonizers=[canonizer]).context(model), torch.no_grad():
        return model.features(x)


def test_exact_merge_leaves_no_epsilon_factor(case):
    """Zennit 0.5.1's merge keeps each batch norm's ε, so the canonized VGG-BN divides by
    √(1 + ε) once per batch norm (13 or 16 times before the classifier); salbench's merge is
    exact to float rounding."""
    model, _, x, _ = case
    with torch.no_grad():
        original = model.features(x)
    scale = original.abs().max()
    zennit = (_canonized_features(model, SequentialMergeBatchNorm(), x) - original).abs().max()
    exact = (_canonized_features(model, ExactMergeBatchNorm(), x) - original).abs().max()
    assert float(exact / scale) < 1e-6 and float(zennit / scale) > 2e-5


def _state(model: nn.Module) -> list:
    """Every parameter and buffer: name, object, storage and a copy of its value."""
    return [(name, id(t), t.data_ptr(), t.detach().clone())
            for name, t in model.state_dict(keep_vars=True).items()]


def _assert_state(before: list, after: list) -> None:
    assert [b[:3] for b in before] == [a[:3] for a in after]
    for (name, *_, value), (_, *_, now) in zip(before, after):
        assert torch.equal(value, now), name


def test_model_is_exactly_as_before_after_every_lrp_method():
    """Zennit issue 237 (NOTES.md): after a MergeBatchNorm context exits, parameters can be
    stale. Every parameter and buffer must be the same object, storage and value afterwards, the
    logits bit-identical, a second explanation equal to the first, and an optimizer made before
    still train the live parameters."""
    model = tiny("vgg16_bn").eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = _state(model)
    with torch.no_grad():
        logits = model(x)
    params = {"lrp_composite": {"composite": {"ranges": [r.model_dump()
                                                         for r in tutorial_ranges()]}},
              "lrp_epsilon_gamma_box": {"low": 0.0, "high": 1.0}}
    for method in LRP_METHODS:
        first = explain(model, x, y, method, **params.get(method, {}))
        second = explain(model, x, y, method, **params.get(method, {}))
        assert torch.equal(first, second), method
        _assert_state(before, _state(model))
        with torch.no_grad():
            assert torch.equal(model(x), logits), method
    model.train()
    model(x)[:, 0].sum().backward()
    optimizer.step()
    after = _state(model)
    assert [b[:3] for b in before] == [a[:3] for a in after]  # updated in place
    changed = {name for (name, *_, value), (*_, now) in zip(before, after)
               if not torch.equal(value, now)}
    assert {"features.0.bias", "features.1.weight", "features.1.running_mean"} <= changed


class ReluBeforeNorm(nn.Module):
    """Registers conv then batch norm but runs a ReLU between them: the merge, which pairs
    layers by registration order, folds the batch norm into the wrong side of the ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.relu(self.conv(x))).flatten(1))


def test_canonization_that_changes_the_logits_is_refused():
    torch.manual_seed(0)
    model = batch_norm_statistics(ReluBeforeNorm()).eval()
    with torch.no_grad():
        model.bn.weight.uniform_(-1.5, -0.5)  # negative scales: merging across the ReLU flips
    x = torch.rand(2, 3, 8, 8)
    before = _state(model)
    with pytest.raises(CanonizationError, match="changed the model's logits"):
        explain(model, x, 0, "lrp_epsilon")
    _assert_state(before, _state(model))
    assert torch.isfinite(explain(model, x, 0, "lrp_epsilon", canonizer="none")).all()


def test_canonized_logit_check_by_hand():
    original = torch.tensor([[2.0, -1.0], [1e-3, 5e-4]])
    check_canonized_logits(original + torch.tensor([[1.9e-3, 0.0], [0.0, 0.9e-6]]), original, [])
    for shift in ([[2.1e-3, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.1e-6]]):
        with pytest.raises(CanonizationError, match="tolerance 0.001"):
            check_canonized_logits(original + torch.tensor(shift), original, [])


@pytest.mark.parametrize(("plain", "bn"), [("vgg16", "vgg16_bn"), ("vgg19", "vgg19_bn")])
def test_layer_indices_ignore_batch_norms(plain, bn):
    """Layer index k is the k-th conv/linear layer on both models: same shapes, same rules."""
    a = build(plain, 3, input_size=32, width=0.0625)
    b = build(bn, 3, input_size=32, width=0.0625)
    shapes_a = [m.weight.shape for _, m in linear_layers(a)]
    assert shapes_a == [m.weight.shape for _, m in linear_layers(b)]
    x = torch.rand(1, 3, 32, 32)
    for ranges in (tutorial_ranges(), decreasing_gamma_ranges()):
        index_a = {name: k for k, (name, _) in enumerate(linear_layers(a))}
        index_b = {name: k for k, (name, _) in enumerate(linear_layers(b))}
        map_a = [(sorted(index_a[n] for n in names), type(rule))
                 for names, rule in name_map(a, ranges, "zennit", x)]
        map_b = [(sorted(index_b[n] for n in names), type(rule))
                 for names, rule in name_map(b, ranges, "zennit", x)]
        assert map_a == map_b


def test_tutorial_ranges_on_vgg16_bn_by_name():
    """Table 2.4 on VGG-16-BN, written out: batch norms sit between the named convolutions."""
    model = build("vgg16_bn", 3, input_size=32, width=0.0625)
    names = [set(n) for n, _ in name_map(model, tutorial_ranges(), "zennit",
                                         torch.rand(1, 3, 32, 32))]
    assert names == [{"features.0"}, {f"features.{i}" for i in (3, 7, 10, 14, 17, 20)},
                     {f"features.{i}" for i in (24, 27, 30, 34, 37, 40)},
                     {"classifier.0", "classifier.3", "classifier.6"}]


def test_relevance_is_conserved_through_a_bias_free_merged_vgg16_bn():
    """Zero conv biases, batch-norm means and shifts: the merged net is bias-free, so LRP-ε with
    ε -> 0 conserves relevance at every layer (document 002, eq. 2.2)."""
    model = tiny("vgg16_bn")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.bias.zero_()
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                m.bias.zero_()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    sums = relevance_by_layer(model, x, torch.tensor([0, 1]), "lrp_epsilon", epsilon=1e-9)
    for name, value in sums.items():
        torch.testing.assert_close(value, sums["output"], rtol=1e-3, atol=1e-9, msg=name)


def test_canonized_logits_are_checked_once_per_weights():
    """The check's extra forward pass runs on the first batch explained per model, weights and
    canonizers; an in-place edit of the weights checks again, so a merge the edit made wrong is
    still refused."""
    torch.manual_seed(0)
    model = batch_norm_statistics(ReluBeforeNorm()).eval()
    with torch.no_grad():
        model.bn.weight.fill_(1.0)
        model.bn.bias.copy_(model.bn.running_mean)  # BN after ReLU is (z - μ)/σ + μ: no shift
        model.bn.running_var.fill_(1.0 - model.bn.eps)  # ... and no scale: merging is exact
    forwards = []
    model.register_forward_pre_hook(lambda *_: forwards.append(1))
    x = torch.rand(2, 3, 8, 8)

    def count(**params) -> int:
        forwards.clear()
        explain(model, x, 0, "lrp_epsilon", **params)
        return len(forwards)

    count(canonizer="none")  # the one-time probes of explain (explainable_copy)
    plain = count(canonizer="none")
    first, again = count(), count()
    x = torch.rand(2, 3, 8, 8)
    assert (first, again, count()) == (plain + 1, plain, plain)
    assert count(canonizer="merge_bn") == plain  # the same canonizer kinds as "auto" here
    with torch.no_grad():
        model.bn.weight.uniform_(-1.5, -0.5)  # in place: the merge across the ReLU is now wrong
    with pytest.raises(CanonizationError, match="changed the model's logits"):
        explain(model, x, 0, "lrp_epsilon")
