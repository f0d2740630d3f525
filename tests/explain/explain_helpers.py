"""Tiny models for the explain tests (32-64 px, width 0.0625); imported by the test modules."""

from __future__ import annotations

import torch
from torch import nn
from zennit.composites import NameMapComposite
from zennit.core import Composite
from zennit.rules import Epsilon, Gamma, ZBox

from salbench.models import build, make_explainable

WIDTH = 0.0625


def input_size(arch: str) -> int:
    return 64 if arch == "alexnet" else 32


def batch_norm_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """In place: trained-like batch norms (running mean ±0.2, variance 0.5–1.5, scale 0.5–1.5,
    shift ±0.2), so a dropped, unmerged or stale batch norm changes the model's function."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                for value, low, high in ((m.running_mean, -0.2, 0.2), (m.running_var, 0.5, 1.5),
                                         (m.weight, 0.5, 1.5), (m.bias, -0.2, 0.2)):
                    value.copy_(low + (high - low) * torch.rand(value.shape, generator=g))
    return model


def tiny(arch: str, num_classes: int = 3, explainable: bool = True, seed: int = 0) -> nn.Module:
    """A zoo model at width 0.0625 with trained-like batch-norm statistics."""
    torch.manual_seed(seed)
    model = batch_norm_statistics(build(arch, num_classes, 3, input_size(arch), WIDTH), seed)
    return make_explainable(model) if explainable else model


def conv_flatten_fc(bias: bool = True, classes: int = 4) -> nn.Sequential:
    """Conv - ReLU - MaxPool - Conv - ReLU - Flatten - Linear on [B, 3, 16, 16]."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 5, 3, padding=1, bias=bias), nn.ReLU(), nn.Flatten(),
        nn.Linear(5 * 8 * 8, classes, bias=bias))


class GapNet(nn.Module):
    """Conv - ReLU - Conv - ReLU - GAP - Linear: the CAM architecture."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def hand_built_composite(model: nn.Module, feature_rules: list, classifier_rule) -> Composite:
    """A Zennit ``NameMapComposite`` written in VGG-16 *module* positions, as document 002's
    tables count: ``feature_rules`` ``[(first, last, rule)]`` over ``features`` indices of the
    convolutions, ``classifier_rule`` for every ``classifier`` Linear."""
    convs = {int(name.split(".")[1]): name for name, m in model.named_modules()
             if name.startswith("features.") and isinstance(m, nn.Conv2d)}
    linears = tuple(name for name, m in model.named_modules()
                    if name.startswith("classifier.") and isinstance(m, nn.Linear))
    mapping = [(tuple(n for i, n in convs.items() if first <= i <= last), rule)
               for first, last, rule in feature_rules]
    return NameMapComposite(mapping + [(linears, classifier_rule)])


def hand_built_tutorial(model: nn.Module, gamma: float, epsilon: float) -> Composite:
    """Document 002 table 2.4 in VGG-16 module positions, z^B bounds [0, 1]."""
    return hand_built_composite(model, [(0, 0, ZBox(low=0.0, high=1.0)),
                                        (1, 16, Gamma(gamma=gamma)),
                                        (17, 30, Epsilon(epsilon=epsilon))],
                                Epsilon(epsilon=1e-6))


def hand_built_decreasing_gamma(model: nn.Module, gammas: tuple) -> Composite:
    """Document 002 table 2.3 in VGG-16 module positions (0, 2–10, 11–17, 18–24, 25–31), the
    classifier with the last γ, z^B bounds [0, 1]."""
    ranges = [(2, 10), (11, 17), (18, 24), (25, 31)]
    return hand_built_composite(
        model, [(0, 0, ZBox(low=0.0, high=1.0))]
        + [(a, b, Gamma(gamma=g)) for (a, b), g in zip(ranges, gammas)], Gamma(gamma=gammas[-1]))


def zennit_attribution(model: nn.Module, composite: Composite, x: torch.Tensor,
                       y: torch.Tensor) -> torch.Tensor:
    """Relevance at the input under ``composite``, output relevance the target logit: Zennit's
    API called directly."""
    model.eval()
    with composite.context(model) as modified:
        inputs = x.clone().requires_grad_(True)
        out = modified(inputs)
        start = torch.zeros_like(out).scatter(1, y[:, None], out.gather(1, y[:, None]).detach())
        (relevance,) = torch.autograd.grad(out, inputs, grad_outputs=start)
    return relevance
