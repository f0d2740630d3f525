"""Tiny models, data and an explanation function shared by the metrics tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def tiny_cnn(channels: int = 3, classes: int = 3, seed: int = 0) -> nn.Module:
    """A small conv net for 16–32 px images, in eval mode."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, classes),
    ).eval()


def gradient_explain(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Plain gradient of the target logit (a deterministic method for the tests)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        grad, = torch.autograd.grad(out.gather(1, y[:, None]).sum(), x)
    return grad.detach()


def input_x_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return gradient_explain(model, x, y) * x


@pytest.fixture
def model() -> nn.Module:
    return tiny_cnn()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 16, 16, generator=g), torch.tensor([0, 1, 2, 1])


class Counting(nn.Module):
    """Wraps a model and counts the images that go through it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.model(x)
