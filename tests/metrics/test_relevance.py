"""Checks of relevance maps: finiteness per sample, and Σ R / f_y(x) through the layers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from salbench.metrics import get_metric, score


def positive_net() -> nn.Module:
    """Positive weights, no biases, ReLUs: LRP-0 conserves exactly for a positive image, and every
    denominator is 0 for a black one."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3, bias=False))
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    return model.eval()


def test_finite_flags_each_map_with_nan_or_inf():
    a = torch.rand(4, 3, 5, 5)
    a[1, 0, 2, 2] = math.nan
    a[3, 2, 0, 0] = math.inf
    result = score("finite", a=a)
    assert result.values["finite"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert result.direction("finite") == "higher"
    with pytest.raises(ValueError, match="floating-point"):
        score("finite", a=torch.ones(2, 3, dtype=torch.long))


def test_layer_conservation_of_lrp_0_is_one_everywhere():
    """Eq. 2.2: with conserving rules every layer holds the explained logit; the vanilla
    stabiliser's 0/0 on a black image gives NaN, recorded, not raised."""
    model = positive_net()
    x = torch.stack([torch.zeros(3, 8, 8), torch.rand(3, 8, 8) + 0.1])
    result = score("layer_conservation", model=model, x=x, y=torch.tensor([1, 2]),
                   lrp_method="lrp_0", lrp_params={"stabiliser": "vanilla"})
    curve = result.curves["relevance_ratio"]
    assert curve.labels == ("output", "6", "2", "0", "input")  # output first, pixels last
    assert curve.x.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert torch.allclose(curve.values[1], torch.ones(5, dtype=torch.float64), atol=1e-5)
    assert math.isnan(result.values["input_ratio"][0])
    assert result.values["input_ratio"][1] == pytest.approx(1.0, abs=1e-5)
    assert get_metric("layer_conservation").direction("input_ratio") == "none"


def test_layer_conservation_of_epsilon_on_one_linear_layer():
    """LRP-ε on f = W x (no bias): Σ R = Σ_i x_i W_yi f_y / (f_y + ε sign f_y), so the pixel
    ratio is |f_y| / (|f_y| + ε), written out here."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3, bias=False)).eval()
    x = torch.randn(4, 3, 2, 2)
    y = torch.tensor([0, 1, 2, 0])
    epsilon = 0.5
    result = score("layer_conservation", model=model, x=x, y=y, lrp_method="lrp_epsilon",
                   lrp_params={"epsilon": epsilon})
    with torch.no_grad():
        f = model(x).gather(1, y[:, None])[:, 0].double()
    expected = f.abs() / (f.abs() + epsilon)
    torch.testing.assert_close(result.values["input_ratio"], expected, rtol=1e-4, atol=1e-6)
    assert result.curves["relevance_ratio"].labels == ("output", "1", "input")
