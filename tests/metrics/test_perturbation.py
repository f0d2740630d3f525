"""Region perturbation / pixel flipping and AOPC: literal loops, Quantus, hand case, fills."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import quantus
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.metrics.conftest import tiny_cnn
from torch import nn

from salbench.metrics import perturbation as pt


def literal_region_perturbation(model, x, y, a, patch, order, fill, counts, repeated,
                                final_value=None, score="logit"):
    """Per sample, per step, per patch: the algorithm of document 002, section 2.2, as loops."""
    read = pt.target_score(score)
    b, _, h, w = x.shape
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    cells = [(r, c) for r in range(gh) for c in range(gw)]
    static = None if fill.mask_dependent else fill(x, None)
    curves = []
    with torch.no_grad():
        for i in range(b):
            s = a[i].sum(0)
            rel = [float(s[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch].sum())
                   for r, c in cells]
            idx = list(range(len(cells)))
            if order == "morf":
                idx.sort(key=lambda j: (-rel[j], j))
            elif order == "lrf":
                idx.sort(key=lambda j: (rel[j], j))
            curve = [float(read(model(x[i:i + 1]), y[i:i + 1]))]
            current = x[i:i + 1].clone()
            done = 0
            for t, n in enumerate(counts.tolist()):
                mask = torch.zeros(1, 1, h, w, dtype=torch.bool)
                new = torch.zeros(1, 1, h, w, dtype=torch.bool)
                for k, j in enumerate(idx[:n]):
                    r, c = cells[j]
                    mask[..., r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = True
                    if k >= done:
                        new[..., r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = True
                done = n
                if static is not None:
                    xp = torch.where(mask, static[i:i + 1], x[i:i + 1])
                elif repeated:
                    xp = torch.where(mask, fill(x[i:i + 1], mask), x[i:i + 1])
                else:
                    current = torch.where(new, fill(current, new), current)
                    xp = current
                if final_value is not None and t == len(counts) - 1:
                    xp = torch.full_like(xp, final_value)
                curve.append(float(read(model(xp), y[i:i + 1])))
            curves.append(curve)
    return torch.tensor(curves)


@pytest.fixture(scope="module")
def setup():
    model = tiny_cnn()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 12, 12, generator=g)
    y = torch.tensor([0, 2, 1])
    a = torch.randn(3, 3, 12, 12, generator=g)
    return model, x, y, a


FILLS = [("gray", None), ("uniform", None), ("mean", None), ("blur", None),
         ("inpaint-fast", True), ("inpaint-fast", False), ("inpaint-telea", True),
         ("inpaint-telea", False)]


@pytest.mark.parametrize("fill,repeated", FILLS)
@pytest.mark.parametrize("order,patch,steps", [("morf", 4, "linear:1"), ("lrf", 3, "log:5"),
                                               ("morf", 5, "square")])
def test_batched_matches_literal_loop(setup, fill, repeated, order, patch, steps):
    model, x, y, a = setup
    fill_fn = pt.make_fill(fill, (0.0, 1.0), seed=0)
    if isinstance(fill_fn, pt.TeleaFill):
        fill_fn = pt.TeleaFill(workers=2)
    out = pt.region_perturbation(model, x, y, a, patch=patch, order=order, fill=fill_fn,
                                 steps=steps, repeated=bool(repeated), last_step_gray=True,
                                 memory_budget=5 * x[0].numel() * 4)  # forces many chunks
    n_patches = math.ceil(12 / patch) ** 2
    counts = pt.step_counts(steps, n_patches)
    ref = literal_region_perturbation(model, x, y, a, patch, order, fill_fn, counts,
                                      bool(repeated), final_value=0.5)
    np.testing.assert_allclose(out.curves.numpy(), ref.numpy(), atol=1e-5)
    fr = np.concatenate([[0.0], counts.numpy() / n_patches])
    np.testing.assert_allclose(out.scores.numpy(), np.trapezoid(ref.numpy(), fr, axis=1), atol=1e-5)


@pytest.mark.parametrize("fill", ["gray", "uniform", "inpaint-fast"])
def test_blocks_that_split_an_image_s_steps_match_the_literal_loop(setup, fill, monkeypatch):
    """Blocks of 7 perturbed inputs against 9 steps per image: blocks start and end inside an
    image's steps (the static fills build each image's rows of a block by broadcasting)."""
    model, x, y, a = setup
    monkeypatch.setattr(pt, "BLOCK_BYTES", 7 * x[0].numel() * x.element_size())
    fill_fn = pt.make_fill(fill, (0.0, 1.0), seed=0)
    out = pt.region_perturbation(model, x, y, a, patch=4, fill=fill_fn, steps="linear:1",
                                 last_step_gray=True, memory_budget=3 * x[0].numel() * 4)
    ref = literal_region_perturbation(model, x, y, a, 4, "morf", fill_fn,
                                      pt.step_counts("linear:1", 9), True, final_value=0.5)
    np.testing.assert_allclose(out.curves.numpy(), ref.numpy(), atol=1e-5)


def test_random_order_is_a_seeded_permutation(setup):
    model, x, y, a = setup
    # a fixed chunk: while the chunk size is being measured, calls differ in the last bits
    r1 = pt.region_perturbation(model, x, y, a, patch=4, order="random", seed=5,
                                memory_budget=1 << 20)
    r2 = pt.region_perturbation(model, x, y, a, patch=4, order="random", seed=5,
                                memory_budget=1 << 20)
    r3 = pt.region_perturbation(model, x, y, a, patch=4, order="random", seed=6,
                                memory_budget=1 << 20)
    assert torch.equal(r1.curves, r2.curves) and not torch.equal(r1.curves, r3.curves)
    ranks = pt.patch_ranks(torch.zeros(4, 9), "random", seed=1)
    assert all(sorted(r.tolist()) == list(range(9)) for r in ranks)


def test_step_counts():
    assert pt.step_counts("linear:3", 10).tolist() == [3, 6, 9, 10]
    sq = pt.step_counts("square", 784)
    assert len(sq) == 28 and sq[-1] == 784 and sq[:3].tolist() == [1, 4, 9]  # 2k - 1 new per step
    lg = pt.step_counts("log:8", 784)
    assert lg[0] == 1 and lg[-1] == 784 and len(lg) == 8
    assert torch.all(lg[1:] > lg[:-1])
    with pytest.raises(ValueError, match="steps must be"):
        pt.step_counts("linear:0", 10)


def test_memory_budget_does_not_change_results(setup):
    model, x, y, a = setup
    big = pt.region_perturbation(model, x, y, a, patch=3, steps="linear:2", fill="uniform")
    small = pt.region_perturbation(model, x, y, a, patch=3, steps="linear:2", fill="uniform",
                                   memory_budget=x[0].numel() * 4)
    np.testing.assert_allclose(big.curves.numpy(), small.curves.numpy(), atol=1e-6)


# ---------------------------------------------------------------- Quantus


def quantus_call(metric, model, x, y, a):
    return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                             channel_first=True, softmax=False, device="cpu"), dtype=float)


@pytest.mark.parametrize("step", [1, 4])
def test_pixel_flipping_agrees_with_quantus(step):
    # Single-channel images: Quantus flips features (values of the flattened C·H·W array), so
    # pixels = features only when C = 1. Quantus's curve has no unperturbed point and its AUC is
    # np.trapz(curve, dx=1); ours runs over the flipped fraction from the unperturbed start.
    model = tiny_cnn(channels=1)
    g = torch.Generator().manual_seed(0)
    x, a = torch.rand(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g)
    y = torch.tensor([1, 0, 2])
    ours = pt.pixel_flipping(model, x, y, a, fill=0.0, steps=f"linear:{step}")
    pf = quantus.PixelFlipping(features_in_step=step, perturb_baseline=0.0, abs=False,
                               normalise=False, disable_warnings=True)
    theirs = quantus_call(pf, model, x, y, a)
    np.testing.assert_allclose(ours.curves[:, 1:].numpy(), theirs, atol=1e-5)
    # Quantus's AUC (utils.calculate_auc = np.trapz(curve, dx=1)) cannot run here: NumPy 2
    # removed np.trapz. The mapping: their AUC = trapezoid over our curve without point 0, dx=1;
    # ours = S · their AUC / S over the fraction axis plus the first segment from the start.
    s = ours.curves.shape[1] - 1
    theirs_auc = np.trapezoid(theirs, dx=1, axis=1)
    first = (ours.curves[:, 0] + ours.curves[:, 1]).numpy() / 2 / s
    np.testing.assert_allclose(ours.scores.numpy(), theirs_auc / s + first, atol=1e-5)


@pytest.mark.parametrize("order", ["morf", "lrf"])
def test_region_perturbation_agrees_with_quantus(order):
    # Quantus returns f(x) - f(x_k) for the first `regions_evaluation` steps ("lerf" = our "lrf").
    model = tiny_cnn()
    g = torch.Generator().manual_seed(1)
    x, a = torch.rand(3, 3, 16, 16, generator=g), torch.randn(3, 3, 16, 16, generator=g)
    y = torch.tensor([2, 0, 1])
    ours = pt.region_perturbation(model, x, y, a, patch=4, order=order, fill=0.25,
                                  steps="linear:1")
    rp = quantus.RegionPerturbation(patch_size=4, order={"lrf": "lerf"}.get(order, order),
                                    regions_evaluation=10, perturb_baseline=0.25, abs=False,
                                    normalise=False, disable_warnings=True)
    theirs = quantus_call(rp, model, x, y, a)
    np.testing.assert_allclose((ours.curves[:, :1] - ours.curves[:, 1:11]).numpy(), theirs,
                               atol=1e-5)


# ---------------------------------------------------------------- AOPC


class SumModel(nn.Module):
    """logits (Σ x, 0): p(class 0) = sigmoid(Σ x)."""

    def forward(self, x):
        s = x.flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_aopc_hand_case():
    x = torch.tensor([[[[2.0, 1.0], [0.5, 0.0]]]])

    def sig(v):
        return 1 / (1 + math.exp(-v))

    # most relevant first (a = x): remove 2, then 1, then 0.5, then 0 (replaced by 0)
    f = [sig(3.5), sig(1.5), sig(0.5), sig(0.0), sig(0.0)]
    expected = sum(f[0] - fk for fk in f[1:]) / 5  # 1/(L+1) Σ_{k=1}^{L}, L = 4
    out = pt.aopc(SumModel(), x, torch.tensor([0]), x, region=1, fill=0.0)
    assert out.scores.item() == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(out.curves[0].numpy(), f, atol=1e-6)


def test_aopc_uses_average_pooled_regions():
    # 3x3 image, region 2: regions are 2x2, 2x1, 1x2, 1x1; the 1x1 corner holds the largest
    # mean (sum would rank the big region first).
    a = torch.tensor([[[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]]])
    scores = pt.patch_scores(a[:, 0], 2, "mean")
    assert scores.tolist() == [[1.0, 0.0, 0.0, 2.0]]
    assert pt.patch_ranks(scores, "morf").tolist() == [[1, 2, 3, 0]]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 1000), st.sampled_from([2, 3, 4]))
def test_aopc_equals_mean_drop_of_its_curve(seed, region):
    model = tiny_cnn(seed=seed % 3)
    g = torch.Generator().manual_seed(seed)
    x, a = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1, torch.randn(2, 3, 8, 8, generator=g)
    y = torch.tensor([0, 1])
    out = pt.aopc(model, x, y, a, region=region, seed=seed)
    c = out.curves.double()
    np.testing.assert_allclose(out.scores.numpy(),
                               ((c[:, :1] - c[:, 1:]).sum(1) / c.shape[1]).numpy(), atol=1e-6)
    assert torch.all((out.curves >= 0) & (out.curves <= 1))  # probabilities


def literal_aopc_per_step(model, x, y, a, region, low, high, seed):
    """Document 003, section 4.3, as loops: per image, per step k, the k-th most relevant region
    (mean of the map, ties to the lower index) takes a fresh noise patch, the k-th draw of
    ``rand(P, B, C, region, region)`` (cropped at the border); the earlier regions keep theirs."""
    b, c, h, w = x.shape
    gh, gw = math.ceil(h / region), math.ceil(w / region)
    cells = [(r, q) for r in range(gh) for q in range(gw)]
    draws = torch.rand(len(cells), b, c, region, region,
                       generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    read = pt.target_score("probability")
    curves = []
    with torch.no_grad():
        for i in range(b):
            s = a[i].sum(0)
            rel = [float(s[r * region:(r + 1) * region, q * region:(q + 1) * region].mean())
                   for r, q in cells]
            order = sorted(range(len(cells)), key=lambda j: (-rel[j], j))
            current = x[i:i + 1].clone()
            curve = [float(read(model(current), y[i:i + 1]))]
            for k, j in enumerate(order):
                r, q = cells[j]
                block = current[0, :, r * region:(r + 1) * region, q * region:(q + 1) * region]
                patch = low + (high - low) * draws[k, i, :, :block.shape[1], :block.shape[2]]
                block.copy_(patch.float())
                curve.append(float(read(model(current), y[i:i + 1])))
            curves.append(curve)
    return torch.tensor(curves)


@pytest.mark.parametrize("region", [3, 4])  # 4 does not divide 10: cropped border regions
def test_aopc_per_step_noise_matches_literal_loop(region):
    """noise='per-step': a fresh patch at every step (the document's text), forced through many
    chunks; 'per-image' (the public code) draws other numbers from the same distribution."""
    model = tiny_cnn(seed=1)
    g = torch.Generator().manual_seed(7)
    x, a = torch.rand(3, 3, 10, 10, generator=g) * 2 - 1, torch.randn(3, 3, 10, 10, generator=g)
    y = torch.tensor([0, 1, 2])
    out = pt.aopc(model, x, y, a, region=region, noise="per-step", seed=4,
                  memory_budget=5 * x[0].numel() * 4)
    ref = literal_aopc_per_step(model, x, y, a, region, -1.0, 1.0, seed=4)
    np.testing.assert_allclose(out.curves.numpy(), ref.numpy(), atol=1e-5)
    c = ref.double()
    np.testing.assert_allclose(out.scores.numpy(), ((c[:, :1] - c[:, 1:]).sum(1)
                                                    / c.shape[1]).numpy(), atol=1e-5)
    once = pt.aopc(model, x, y, a, region=region, noise="per-image", seed=4)
    assert not torch.allclose(once.curves, out.curves)
    noise = pt.step_noise(pt.patch_ranks(torch.randn(64, 9), "morf"), (64, 3, 9, 9), 3,
                          -1.0, 1.0, seed=0)
    assert noise.min() >= -1 and noise.max() < 1 and abs(float(noise.mean())) < 0.02
    with pytest.raises(ValueError, match="needs fill='uniform'"):
        pt.aopc(model, x, y, a, region=region, fill="gray", noise="per-step")
    with pytest.raises(ValueError, match="noise must be one of"):
        pt.aopc(model, x, y, a, region=region, noise="per-region")


# ---------------------------------------------------------------- fills


def test_fast_inpaint_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 20, 21, generator=g)
    mask = torch.rand(4, 1, 20, 21, generator=g) < 0.4
    out = pt.fast_inpaint(x, mask)
    assert torch.equal(out[~mask.expand_as(x)], x[~mask.expand_as(x)])  # known pixels kept
    assert out.min() >= x.min() - 1e-6 and out.max() <= x.max() + 1e-6  # convex combinations
    const = torch.full((1, 2, 9, 9), 0.3)
    holes = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    holes[..., 2:7, 2:7] = True
    assert torch.allclose(pt.fast_inpaint(const, holes), const)
    # a left/right split image: holes near the left edge take left values
    split = torch.zeros(1, 1, 16, 16)
    split[..., 8:] = 1.0
    hole = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    hole[..., 6:10, 1:3] = True
    assert pt.fast_inpaint(split, hole)[hole].max() < 0.5


def test_telea_fill_is_opencv_per_channel():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    mask[0, 0, 4:8, 4:8] = True
    mask[1, 0, 10:14, 2:6] = True
    out = pt.TeleaFill(radius=3, workers=2)(x, mask)
    for i in range(2):
        for c in range(3):
            ref = cv2.inpaint(x[i, c].numpy(), mask[i, 0].numpy().astype(np.uint8), 3,
                              cv2.INPAINT_TELEA)
            np.testing.assert_allclose(out[i, c].numpy(), ref)


def test_model_left_unchanged_and_bad_input(setup):
    model, x, y, a = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pt.region_perturbation(model, x, y, a, patch=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="a must match x"):
        pt.region_perturbation(model, x, y, a[:, :, :8])
    with pytest.raises(ValueError, match="y must be an integer tensor"):
        pt.region_perturbation(model, x, y.float(), a)
    nan = a.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="a contains NaN"):
        pt.aopc(model, x, y, nan)
    with pytest.raises(ValueError, match="fill must be one of"):
        pt.region_perturbation(model, x, y, a, fill="black")
    with pytest.raises(ValueError, match="order must be one of"):
        pt.region_perturbation(model, x, y, a, order="lerf")
    with pytest.raises(ValueError, match="patch must be"):
        pt.region_perturbation(model, x, y, a, patch=0)


def test_chunk_size_counts_inputs_and_activations():
    from salbench.metrics._checks import bytes_per_sample, chunk_size

    model = tiny_cnn()
    x = torch.rand(2, 3, 8, 8)
    # input 3·64, conv 4·64, relu 4·64, conv 4·64, relu 4·64, pool 16, flatten 16, linear 3
    floats = 3 * 64 + 4 * 4 * 64 + 16 + 16 + 3
    assert bytes_per_sample(model, x) == 4 * floats
    assert chunk_size(model, x, 10 * 4 * floats) == 10
    assert chunk_size(lambda t: t, x, 10 * 4 * 3 * 64) == 10  # plain callable: inputs only
    with pytest.raises(ValueError, match="memory_budget must be a positive"):
        chunk_size(model, x, 0)


@pytest.mark.parametrize("repeated", [True, False])
def test_fill_blocks_do_not_change_results(setup, monkeypatch, repeated):
    model, x, y, a = setup
    params = {"patch": 3, "steps": "log:6", "fill": "inpaint-fast", "repeated": repeated}
    whole = pt.region_perturbation(model, x, y, a, **params)
    monkeypatch.setattr(pt, "BLOCK_BYTES", 1)  # one image per fill call
    split = pt.region_perturbation(model, x, y, a, memory_budget=1, **params)
    np.testing.assert_allclose(split.curves.numpy(), whole.curves.numpy(), atol=1e-6)
