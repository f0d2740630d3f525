"""``randomise_biases``: seeded N(0, std²) biases for every conv, linear and batch-norm layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from salbench.models import build, randomise_biases


def _biases(model: nn.Module) -> list[torch.Tensor]:
    return [m.bias.detach().clone() for m in model.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and m.bias is not None]


@pytest.mark.parametrize(("arch", "count"), [("vgg19", 19), ("vgg19_bn", 35)])
def test_biases_are_drawn_from_the_seed_with_the_given_spread(arch, count):
    model = build(arch, num_classes=3, input_size=64, width=0.0625)
    assert len(_biases(model)) == count  # 16 convs (+ 16 batch norms) + 3 linear layers
    assert all((b == 0).all() for b in _biases(model))  # torchvision initialises VGG biases at 0
    weights = [p.detach().clone() for n, p in model.named_parameters() if "weight" in n]
    randomise_biases(model, 0.1, seed=1)
    first = _biases(model)
    values = torch.cat(first)
    assert 0.08 < float(values.std()) < 0.12 and abs(float(values.mean())) < 0.02
    assert all(torch.equal(w, p) for w, (n, p) in zip(
        weights, ((n, p) for n, p in model.named_parameters() if "weight" in n)))
    randomise_biases(model, 0.1, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first, _biases(model)))
    randomise_biases(model, 0.1, seed=2)
    assert not torch.equal(first[0], _biases(model)[0])
    randomise_biases(model, 0.0, seed=3)
    assert all((b == 0).all() for b in _biases(model))
