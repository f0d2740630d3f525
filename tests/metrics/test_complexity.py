"""Sparseness (Gini), complexity (entropy) and effective complexity: hand-computed maps, a second
formula written out slowly, and Quantus 0.6 on identical maps (with its normalisation and shift
mapped explicitly)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from salbench.metrics import get_metric, score
from salbench.metrics.complexity import complexity, effective_complexity, sparseness

QUANTUS_SHIFT = 1e-7  # Quantus 0.6 Sparseness adds this to every value


def maps(b: int = 5, c: int = 1, size: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, c, size, size, generator=g) * torch.rand(b, 1, 1, 1, generator=g) * 3
    a[0, :, :4] = 0  # exact zeros
    return a


def test_hand_computed_values():
    n = 16
    one_hot = torch.zeros(1, 1, 4, 4)
    one_hot[0, 0, 2, 1] = -3.0  # the magnitude counts, not the sign
    uniform = torch.full((1, 1, 4, 4), 0.5)
    two = torch.zeros(1, 1, 4, 4)
    two[0, 0, 0, :2] = torch.tensor([1.0, 3.0])
    a = torch.cat([one_hot, uniform, two])
    # two: values 1, 3 at sorted ranks 15, 16 of 16 -> ((2·15 − 17)·1 + (2·16 − 17)·3) / (16·4)
    torch.testing.assert_close(sparseness(a), torch.tensor([1 - 1 / n, 0.0, 58 / 64],
                                                           dtype=torch.float64))
    torch.testing.assert_close(complexity(a), torch.tensor(
        [0.0, math.log(n), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))],
        dtype=torch.float64))
    torch.testing.assert_close(effective_complexity(a, eps=0.9),
                               torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(effective_complexity(a, eps=0.0),
                               torch.tensor([1.0, 16.0, 2.0], dtype=torch.float64))


def test_channel_reduction_is_explicit():
    a = torch.zeros(1, 3, 4, 4)
    a[0, 0, 0, 0], a[0, 1, 0, 0] = 1.0, -1.0  # cancel under "sum", not under "abs-sum"
    a[0, 2, 3, 3] = 1.0
    assert float(effective_complexity(a, eps=0.5)) == 1.0
    assert float(effective_complexity(a, eps=0.5, reduce="abs-sum")) == 2.0
    assert float(complexity(a, reduce="abs-sum")) == pytest.approx(
        -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))


def test_all_zero_maps_are_nan_for_gini_and_entropy_only():
    a = maps(3)
    a[1] = 0
    for fn in (sparseness, complexity):
        values = fn(a)
        assert math.isnan(values[1]) and torch.isfinite(values[[0, 2]]).all()
    assert float(effective_complexity(a)[1]) == 0.0


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_gini_equals_the_mean_absolute_difference_form(n, seed, zeros):
    """G = Σ_i Σ_j |v_i − v_j| / (2 n Σ v): the textbook definition, a double loop."""
    g = torch.Generator().manual_seed(seed)
    v = torch.rand(n, generator=g, dtype=torch.float64) * (torch.rand(n, generator=g) >= zeros)
    if v.sum() == 0:
        v[0] = 1.0
    total = sum(abs(float(v[i]) - float(v[j])) for i in range(n) for j in range(n))
    expected = total / (2 * n * float(v.sum()))
    assert float(sparseness(v.view(1, 1, 1, n))) == pytest.approx(expected, abs=1e-12)
    p = v / v.sum()
    entropy = -sum(float(q) * math.log(float(q)) for q in p if q > 0)
    assert float(complexity(v.view(1, 1, 1, n))) == pytest.approx(entropy, abs=1e-12)


def quantus_scores(metric_class, a: torch.Tensor, **params) -> np.ndarray:
    metric = metric_class(disable_warnings=True, **params)
    b = a.shape[0]
    x = np.zeros((b, 1, *a.shape[-2:]), dtype=np.float32)
    return np.asarray(metric(model=None, x_batch=x, y_batch=np.zeros(b, dtype=int),
                             a_batch=a.numpy().copy()), dtype=np.float64)


@pytest.fixture
def quantus():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus as q
    return q


def test_against_quantus(quantus):
    """Quantus 0.6 takes |a| and divides by the largest |a| of the whole batch (not per sample),
    then scores; its Gini adds 1e-7 to every value first. Gini and entropy are scale-invariant,
    so only the shift and the threshold of effective complexity need mapping."""
    a = maps(6, size=12)
    n = a[0].numel()
    magnitude = a.abs().double()
    batch_normalised = magnitude / magnitude.max()
    totals = batch_normalised.flatten(1).sum(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q_sparse = quantus_scores(quantus.Sparseness, a)
        q_complex = quantus_scores(quantus.Complexity, a)
        q_effective = quantus_scores(quantus.EffectiveComplexity, a, eps=0.2)
    ours = sparseness(a).numpy()
    mapped = (sparseness(a) * totals / (totals + n * QUANTUS_SHIFT)).numpy()
    assert np.abs(q_sparse - mapped).max() < 1e-5
    assert np.abs(q_sparse - ours).max() > np.abs(q_sparse - mapped).max()  # the shift is real
    assert np.abs(q_complex - complexity(a).numpy()).max() < 1e-5
    torch.testing.assert_close(torch.from_numpy(q_effective),
                               effective_complexity(batch_normalised, eps=0.2))
    # per-sample normalisation would give other counts: the batch-wide max is what Quantus does
    per_sample = magnitude / magnitude.flatten(1).amax(1).view(-1, 1, 1, 1)
    assert not torch.equal(effective_complexity(per_sample, eps=0.2),
                           torch.from_numpy(q_effective))


def test_registered_with_directions_ranges_and_no_cost():
    a = maps(4)
    for name, direction in (("sparseness", "higher"), ("complexity", "lower"),
                            ("effective_complexity", "lower")):
        spec = get_metric(name)
        assert spec.kind == "map" and spec.direction(name) == direction
        assert spec.estimate(shape=(3, 8, 8)).forward == 0
        r = score(name, a=a)
        fn = {"sparseness": sparseness, "complexity": complexity,
              "effective_complexity": effective_complexity}[name]
        torch.testing.assert_close(r.values[name], fn(a))
    assert get_metric("sparseness").output("sparseness").range == (0.0, 1.0)


@pytest.mark.parametrize("call, message", [
    (lambda: sparseness(np.zeros((2, 8, 8))), "a must be a torch.Tensor"),
    (lambda: complexity(torch.zeros(8, 8)), r"a must be 3-D or 4-D"),
    (lambda: sparseness(torch.zeros(2, 3, 4, 4), reduce="mean"), "reduce must be one of"),
    (lambda: effective_complexity(torch.zeros(2, 1, 4, 4), eps=-1.0),
     r"eps must be a non-negative number"),
    (lambda: complexity(torch.full((1, 1, 2, 2), math.nan)), "a contains NaN"),
])
def test_bad_arguments_are_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
