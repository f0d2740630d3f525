"""Infidelity (Yeh et al. 2019): Captum's infidelity on identical perturbations, a literal
per-sample, per-draw loop, exact zeros for the gradient of a linear model, the declared cost."""

from __future__ import annotations

import pytest
import torch
from captum.metrics import infidelity as captum_infidelity
from torch import nn

from conftest import gradient_explain, tiny_cnn
from salbench.metrics import get_metric, score
from salbench.metrics.infidelity import gaussian_perturbations, infidelity


def data(b: int = 4, size: int = 16):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(b, 3, size, size, generator=g)
    return x, torch.tensor([0, 1, 2, 1][:b]), torch.randn(b, 3, size, size, generator=g)


@pytest.mark.parametrize("normalise", [False, True])
def test_equals_captum_on_the_same_perturbations(normalise):
    model = tiny_cnn()
    x, y, a = data()
    n, std, seed = 6, 0.3, 3
    draws = torch.stack(list(gaussian_perturbations(tuple(x.shape), n, std, seed)))
    noise = draws.transpose(0, 1).reshape(-1, *x.shape[1:]).float()  # Captum: sample-major

    def perturb(inputs):
        return noise, inputs - noise

    expected = captum_infidelity(model, perturb, x, a, target=y, n_perturb_samples=n,
                                 normalize=normalise).double()
    ours = infidelity(model, x, y, a, std=std, n_samples=n, seed=seed, normalise=normalise)
    assert float(expected.min()) > 1e-7  # non-trivial values; compared relatively below
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=0)


def test_equals_a_literal_loop_whatever_the_chunking():
    model = tiny_cnn()
    x, y, a = data(3)
    n, std = 5, 0.2
    draws = list(gaussian_perturbations(tuple(x.shape), n, std, 0))
    expected = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for i in range(3):
            f_x = float(model(x[i:i + 1])[0, y[i]])
            for j in range(n):
                noise = draws[j][i].float()
                f_p = float(model((x[i] - noise)[None])[0, y[i]])
                dot = float((noise.double() * a[i].double()).sum())
                expected[i] += (dot - (f_x - f_p)) ** 2 / n
    for budget in (None, 1):
        ours = infidelity(model, x, y, a, std=std, n_samples=n, memory_budget=budget)
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-9)


def test_the_gradient_of_a_linear_model_has_zero_infidelity():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3)).double().eval()
    x, y, _ = data(4, 8)
    x = x.double()
    grad = gradient_explain(model, x, y)  # f(x) − f(x − I) = Iᵀ∇f exactly
    assert float(infidelity(model, x, y, grad, std=0.5, n_samples=8).max()) < 1e-20
    doubled = infidelity(model, x, y, 2 * grad, std=0.5, n_samples=8)
    assert float(doubled.min()) > 1e-3  # a wrong scale is penalised...
    scaled = infidelity(model, x, y, 2 * grad, std=0.5, n_samples=8, normalise=True)
    assert float(scaled.max()) < 1e-20  # ...unless the optimal scaling removes it
    # a one-channel map is the same weight for every channel of a pixel
    one = grad.sum(1, keepdim=True)
    torch.testing.assert_close(infidelity(model, x, y, one, n_samples=4),
                               infidelity(model, x, y, one.expand_as(x), n_samples=4))


def test_seeded_and_registered_with_its_forward_passes():
    model = tiny_cnn()
    x, y, a = data(3)
    first = infidelity(model, x, y, a, n_samples=4, seed=5)
    torch.testing.assert_close(first, infidelity(model, x, y, a, n_samples=4, seed=5))
    assert not torch.equal(first, infidelity(model, x, y, a, n_samples=4, seed=6))
    spec = get_metric("infidelity")
    assert spec.kind == "model" and spec.direction("infidelity") == "lower"

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.images = model, 0

        def forward(self, inputs):
            self.images += len(inputs)
            return self.model(inputs)

    counting = Counting()
    score("infidelity", model=counting, x=x, y=y, a=a, n_samples=4)  # measures activations once
    counting.images = 0
    r = score("infidelity", model=counting, x=x, y=y, a=a, n_samples=4)
    torch.testing.assert_close(r.values["infidelity"], infidelity(model, x, y, a, n_samples=4))
    assert counting.images == spec.estimate({"n_samples": 4}, (3, 16, 16)).forward * 3


@pytest.mark.parametrize("params, message", [
    ({"std": 0.0}, r"std must be a positive number"),
    ({"n_samples": 0}, r"n_samples must be a positive integer"),
    ({"normalise": "yes"}, r"normalise must be True or False"),
    ({"score": "softmax"}, r"score must be one of"),
])
def test_bad_arguments_are_clear_errors(params, message):
    x, y, a = data(2)
    with pytest.raises((ValueError, TypeError), match=message):
        infidelity(tiny_cnn(), x, y, a, **params)
    with pytest.raises(ValueError, match=r"a must match x"):
        infidelity(tiny_cnn(), x, y, a[:, :, :8])
