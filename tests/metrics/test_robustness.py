"""Max/avg-sensitivity: Quantus oracle on shared perturbations, literal loop, batching."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from tests.metrics.conftest import gradient_explain, input_x_gradient, tiny_cnn

from salbench.metrics import robustness as rb


def quantus_explain(model, inputs, targets, **kwargs):
    return input_x_gradient(model, torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()


def shared_noise(n, shape, radius, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, *shape), generator=g) * 2 - 1) * radius


@pytest.mark.parametrize("name", ["max", "avg"])
def test_agrees_with_quantus(name):
    model = tiny_cnn()
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(3, 3, 12, 12, generator=g), torch.tensor([0, 1, 2])
    n, radius = 4, 0.1
    noise = shared_noise(n, x.shape, radius)
    steps = iter(noise.numpy())

    def perturb(arr, indices, indexed_axes=None, **kwargs):  # Quantus hands x flattened [B, D]
        return arr + next(steps).reshape(arr.shape)

    cls = quantus.MaxSensitivity if name == "max" else quantus.AvgSensitivity
    metric = cls(nr_samples=n, perturb_func=perturb, normalise=False, abs=False,
                 disable_warnings=True)
    a = input_x_gradient(model, x, y)
    theirs = np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
                               a_batch=a.numpy(), explain_func=quantus_explain,
                               channel_first=True, device="cpu"), dtype=float)
    fn = rb.max_sensitivity if name == "max" else rb.avg_sensitivity
    # Quantus divides by ‖Φ(x)‖ (relative=True) and explains the label (target="label").
    ours = fn(model, x, y, input_x_gradient, n_samples=n, radius=radius, noise=noise,
              relative=True, target="label", a=a)
    np.testing.assert_allclose(ours.scores.numpy(), theirs, rtol=1e-5, atol=1e-6)


def test_matches_literal_loop_and_batching():
    model = tiny_cnn()
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(3, 3, 10, 10, generator=g), torch.tensor([2, 2, 0])
    n, radius = 5, 0.05
    noise = shared_noise(n, x.shape, radius, seed=9)
    pred = model(x).argmax(1)
    ref = torch.zeros(3, n)
    for i in range(3):  # literal: one sample, one perturbation at a time
        base = gradient_explain(model, x[i:i + 1], pred[i:i + 1])
        for j in range(n):
            pert = gradient_explain(model, x[i:i + 1] + noise[j, i:i + 1], pred[i:i + 1])
            ref[i, j] = (base - pert).flatten().norm()
    for budget in (x[0].numel() * 4, 2**26):  # one input per call vs everything in one call
        out = rb.max_sensitivity(model, x, y, gradient_explain, n_samples=n, radius=radius,
                                 noise=noise, memory_budget=budget)
        np.testing.assert_allclose(out.distances.numpy(), ref.numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out.scores.numpy(), ref.amax(1).numpy(), rtol=1e-5)
    avg = rb.avg_sensitivity(model, x, y, gradient_explain, n_samples=n, radius=radius,
                             noise=noise)
    np.testing.assert_allclose(avg.scores.numpy(), ref.mean(1).numpy(), rtol=1e-5)


def test_default_noise_stays_in_the_ball_and_is_seeded():
    seen = []

    def spy(model, x, y):
        seen.append(x.clone())
        return x.clone()  # identity "explanation": distance = ‖δ‖_F

    x, y = torch.zeros(2, 1, 4, 4), torch.tensor([0, 0])

    def model(t):
        return torch.zeros(len(t), 2)

    out = rb.max_sensitivity(model, x, y, spy, n_samples=7, radius=0.3, seed=1)
    assert torch.cat(seen[1:]).abs().max() <= 0.3
    again = rb.max_sensitivity(model, x, y, spy, n_samples=7, radius=0.3, seed=1)
    assert torch.equal(out.scores, again.scores)
    assert out.distances.shape == (2, 7)


def test_bad_input():
    model = tiny_cnn()
    x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="n_samples"):
        rb.max_sensitivity(model, x, y, gradient_explain, n_samples=0)
    with pytest.raises(ValueError, match="noise must have shape"):
        rb.max_sensitivity(model, x, y, gradient_explain, n_samples=2, noise=torch.zeros(3))
    with pytest.raises(ValueError, match="explain_fn output contains NaN"):
        rb.max_sensitivity(model, x, y, lambda m, xs, ys: torch.full_like(xs, float("nan")),
                           n_samples=1, a=torch.zeros_like(x))
