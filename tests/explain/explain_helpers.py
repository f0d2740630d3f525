"""Tiny models for the explain tests (32-64 px, width 0.0625); imported by the test modules."""

from __future__ import annotations

import torch
from torch import nn

from salbench.models import build, make_explainable

WIDTH = 0.0625


def input_size(arch: str) -> int:
    return 64 if arch == "alexnet" else 32


def tiny(arch: str, num_classes: int = 3, explainable: bool = True, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build(arch, num_classes, 3, input_size(arch), WIDTH)
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
