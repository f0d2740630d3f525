"""HAAS (document 003, section 2.2.3): the document's worked example, identities, the ratio."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from salbench.metrics.haas import haas, heatmap_assisted_images


def test_worked_example_of_the_document():
    # x = ±1/2 with a = ±1/2 (a_norm = a when max|a| = 1: the map also holds a 1 elsewhere)
    x = torch.tensor([[[[0.5, -0.5, 0.5, -0.5, 0.0]]]])
    a = torch.tensor([[[[0.5, 0.5, -0.5, -0.5, 1.0]]]])
    ha = heatmap_assisted_images(x, a, (-1.0, 1.0))
    assert ha[0, 0, 0, :4].tolist() == [0.75, -0.75, 0.25, -0.25]


def test_zero_map_and_clipping_in_input_space():
    x = torch.rand(2, 3, 4, 4)  # inputs in [0, 1]
    assert torch.allclose(heatmap_assisted_images(x, torch.zeros(2, 1, 4, 4), (0.0, 1.0)), x)
    a = torch.ones(2, 1, 4, 4)  # a_norm = 1: x_norm doubled, clipped to [-1, 1] -> [0, 1]
    ha = heatmap_assisted_images(x, a, (0.0, 1.0))
    expected = ((2 * (2 * x - 1)).clamp(-1, 1) + 1) / 2
    assert torch.allclose(ha, expected)
    assert ha.min() >= 0 and ha.max() <= 1


class Threshold(nn.Module):
    """Class 1 iff the mean of the first pixel row exceeds 0 (inputs in [-1, 1])."""

    def forward(self, x):
        s = x[:, 0, 0].mean(1)
        return torch.stack([-s, s], 1)


def test_haas_ratio_and_per_sample_correctness():
    x = torch.tensor([0.2, 0.1, -0.1, -0.3]).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    y = torch.tensor([1, 0, 0, 1])  # correct on x: samples 0 and 2
    a = torch.ones(4, 1, 2, 2)
    a[3] = -1.0  # de-emphasising sample 3 leaves it at 0 -> predicted class 0 (tie -> argmax 0)
    out = haas(Threshold(), x, y, a)
    assert out.correct.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert out.correct_ha.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert out.haas.item() == pytest.approx(1.0)
    flip = a.clone()
    flip[0] = -1.0  # sample 0: 0.2 -> 0 -> wrong
    assert haas(Threshold(), x, y, flip).haas.item() == pytest.approx(0.5)


def test_bad_input():
    x, y = torch.rand(2, 3, 4, 4), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="a must match x"):
        haas(Threshold(), x, y, torch.rand(2, 1, 5, 4))
    with pytest.raises(ValueError, match="input_range"):
        haas(Threshold(), x, y, torch.rand(2, 1, 4, 4), input_range=(1.0, 0.0))
