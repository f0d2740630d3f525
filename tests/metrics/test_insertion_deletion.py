"""Deletion and insertion (Petsiuk, Das & Saenko 2018, "RISE", section 4.1): a hand-computed
case, literal per-sample, per-step loops, the blurred start, ranking of a true contribution map,
the registry entries and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate1d
from tests.metrics.conftest import Counting, tiny_cnn
from torch import nn

from salbench.metrics import get_metric, score
from salbench.metrics import perturbation as pt


class Linear2(nn.Module):
    """Logits (w·x, 0) over two classes: p(class 0) = sigmoid(w·x)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x * self.w).flatten(1).sum(1)
        return torch.stack([z, torch.zeros_like(z)], 1)


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def literal_curves(model, start, finish, y, a, counts):
    """Per sample and step, in NumPy order: the top-k pixels of the channel-summed map (ties:
    lower index first) of ``start`` take the values of ``finish``; the softmax probability of
    class y. Deletion: start = x, finish = 0; insertion: start = blurred x, finish = x."""
    b, c, h, w = start.shape
    curves = np.zeros((b, len(counts) + 1))
    with torch.no_grad():
        for i in range(b):
            order = np.argsort(-a[i].sum(0).flatten().numpy(), kind="stable")
            for t, k in enumerate([0, *counts]):
                img = start[i].clone().view(c, h * w)
                img[:, order[:k]] = finish[i].reshape(c, h * w)[:, order[:k]]
                p = model(img.view(1, c, h, w)).softmax(-1)[0, y[i]]
                curves[i, t] = float(p)
    return curves


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(3, 3, 12, 12, generator=g)
    a = torch.randn(3, 3, 12, 12, generator=g)
    return tiny_cnn(), x, torch.tensor([0, 2, 1]), a


def test_hand_case_linear_softmax_on_4x4():
    # one channel, pixel i = i/16 (row-major), w = 1: Σx = 120/16 = 7.5; a = x ranks pixel 15
    # first; the default schedule is linear:4 (one row of 4 pixels per step, 4 steps)
    x = (torch.arange(16.0) / 16).view(1, 1, 4, 4)
    model, y = Linear2(torch.ones(1, 1, 4, 4)), torch.tensor([0])
    row_sums = [54 / 16, 38 / 16, 22 / 16, 6 / 16]  # rows 3, 2, 1, 0
    left = [7.5, 7.5 - 54 / 16, 7.5 - 92 / 16, 7.5 - 114 / 16, 0.0]  # 7.5, 4.125, 1.75, .375, 0
    expected = [sigmoid(v) for v in left]
    r = pt.deletion(model, x, y, x)
    torch.testing.assert_close(r.fractions, torch.tensor([0, .25, .5, .75, 1], dtype=torch.float64))
    torch.testing.assert_close(r.curves[0].double(), torch.tensor(expected, dtype=torch.float64))
    auc = 0.25 * (sum(expected) - (expected[0] + expected[-1]) / 2)
    assert float(r.scores[0]) == pytest.approx(auc, abs=1e-6)
    # insertion into a black canvas: the same rows go in first
    inserted = [0.0, *np.cumsum(row_sums)]  # 0, 3.375, 5.75, 7.125, 7.5
    r = pt.insertion(model, x, y, x, start=0.0)
    expected = [sigmoid(v) for v in inserted]
    torch.testing.assert_close(r.curves[0].double(), torch.tensor(expected, dtype=torch.float64))
    assert float(r.scores[0]) == pytest.approx(
        0.25 * (sum(expected) - (expected[0] + expected[-1]) / 2), abs=1e-6)


@pytest.mark.parametrize("steps", [None, "log:7", "linear:50"])
def test_deletion_is_zeroing_the_top_k_pixels(setup, steps):
    model, x, y, a = setup
    counts = pt.step_counts(steps or "linear:12", 144).tolist()
    want = literal_curves(model, x, torch.zeros_like(x), y, a, counts)
    r = pt.deletion(model, x, y, a, steps=steps, memory_budget=1)  # one image per model call
    np.testing.assert_allclose(r.curves.numpy(), want, atol=1e-5)
    np.testing.assert_allclose(r.fractions.numpy(), np.array([0, *counts]) / 144)
    np.testing.assert_allclose(r.scores.numpy(), np.trapezoid(want, r.fractions.numpy()),
                               atol=1e-5)
    if steps is None:
        assert len(counts) == 12 and counts[0] == 12  # H steps of W pixels


def blur_numpy(x: np.ndarray, sigma: float, kernel: int) -> np.ndarray:
    """Separable truncated Gaussian of ``kernel`` taps, mirrored borders (torch "reflect")."""
    d = np.arange(kernel) - kernel // 2
    k = np.exp(-d ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    return correlate1d(correlate1d(x, k, axis=-1, mode="mirror"), k, axis=-2, mode="mirror")


def test_insertion_starts_blurred_and_ends_at_the_original(setup):
    model, x, y, a = setup
    blurred = torch.from_numpy(blur_numpy(x.double().numpy(), 5.0, 11)).float()
    torch.testing.assert_close(pt.BlurFill(5.0, 11)(x, None), blurred, atol=1e-5, rtol=0)
    r = pt.insertion(model, x, y, a)
    with torch.no_grad():
        p_blur = model(blurred).softmax(-1).gather(1, y[:, None])[:, 0]
        p_orig = model(x).softmax(-1).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(r.curves[:, 0], p_blur, atol=1e-5, rtol=0)
    torch.testing.assert_close(r.curves[:, -1], p_orig, atol=1e-5, rtol=0)
    assert not torch.allclose(p_blur, p_orig, atol=1e-3)  # the two ends are distinguishable
    counts = pt.step_counts("log:9", 144).tolist()
    want = literal_curves(model, blurred, x, y, a, counts)
    r = pt.insertion(model, x, y, a, steps="log:9", memory_budget=1)
    np.testing.assert_allclose(r.curves.numpy(), want, atol=1e-5)


def test_blur_fill_default_kernel_unchanged():
    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(pt.BlurFill(2.0)(x, None), pt.BlurFill(2.0, 13)(x, None))
    assert not torch.allclose(pt.BlurFill(2.0, 5)(x, None), pt.BlurFill(2.0)(x, None))


def test_true_contribution_map_ranks_better_than_its_negation():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(1, 1, 8, 8, generator=g)
    x = torch.rand(4, 1, 8, 8, generator=g)
    model, y = Linear2(w), torch.zeros(4, dtype=torch.long)
    contribution = w * x  # logit drop when a pixel is set to 0
    good, bad = (pt.deletion(model, x, y, s).scores for s in (contribution, -contribution))
    assert bool((good < bad - 1e-3).all()), (good, bad)
    gain = w * (x - pt.BlurFill(5.0, 11)(x, None))  # logit gain when a pixel is inserted
    good, bad = (pt.insertion(model, x, y, s).scores for s in (gain, -gain))
    assert bool((good > bad + 1e-3).all()), (good, bad)


def test_registry_directions_ranges_and_score():
    deletion, insertion = get_metric("deletion"), get_metric("insertion")
    assert deletion.kind == insertion.kind == "model"
    assert deletion.direction("deletion") == "lower"
    assert insertion.direction("insertion") == "higher"
    assert deletion.output("deletion").resolve_range(deletion.resolve({})) == (0.0, 1.0)
    assert insertion.output("insertion").resolve_range(
        insertion.resolve({"score": "logit"})) == (-math.inf, math.inf)
    assert "RISE" in deletion.source and "4.1" in insertion.source
    assert deletion.estimate(shape=(3, 224, 224)).forward == 225  # RISE: 224 steps + 1


@pytest.mark.parametrize("name, params", [("deletion", {}), ("insertion", {}),
                                          ("deletion", {"steps": "log:5"}),
                                          ("insertion", {"steps": "square"})])
def test_declared_cost_is_the_forward_passes_made(setup, name, params):
    model, x, y, a = setup
    counting = Counting(model)
    r = score(name, model=counting, x=x, y=y, a=a, **params)  # first call measures chunk sizes
    raw = getattr(pt, name)(model, x, y, a, **params)
    torch.testing.assert_close(r.values[name], raw.scores.double(), atol=1e-6, rtol=0)
    assert r.curves["score"].values.shape == raw.curves.shape
    counting.images = 0
    score(name, model=counting, x=x, y=y, a=a, **params)
    assert counting.images == get_metric(name).estimate(params, (3, 12, 12)).forward * len(x)


def test_bad_input_names_the_argument(setup):
    model, x, y, a = setup
    counting = Counting(model)
    for fn in (pt.deletion, pt.insertion):
        with pytest.raises(ValueError, match="a must match x"):
            fn(counting, x, y, a[..., :10])
        for steps in ("linear:0", "cubic", 5):
            with pytest.raises(ValueError, match="steps must be"):
                fn(counting, x, y, a, steps=steps)
        with pytest.raises(ValueError, match="input_range"):
            fn(counting, x, y, a, input_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="start must be a static fill"):
        pt.insertion(counting, x, y, a, start="inpaint-fast")
    with pytest.raises(ValueError, match="kernel must be an odd"):
        pt.BlurFill(5.0, 4)
    assert counting.images == 0  # every error came before any model pass
