"""Synthetic cells (document 001, section 3.1, Algorithms 1-2): heatmap levels, class semantics,
shards and splits, determinism."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from salbench.data import cells
from salbench.data.cells import CLASSES, make_explanation

SIZE, N = 48, 300


@pytest.fixture(scope="module")
def data():
    return cells.generate(N, seed=5, size=SIZE, shard_size=25)


def test_heatmap_levels_exactly(data):
    values = set(torch.unique(data.masks).tolist())
    assert values <= {0.0, np.float32(0.4).item(), np.float32(0.9).item()}
    assert values == {0.0, np.float32(0.4).item(), np.float32(0.9).item()}
    assert data.x.shape == (N, 3, SIZE, SIZE) and data.x.min() >= 0 and data.x.max() <= 1


def test_class_nine_is_empty_and_cells_are_marked(data):
    for i in range(N):
        heat = data.masks[i]
        if int(data.y[i]) == 9:
            assert float(heat.abs().sum()) == 0
        else:
            assert float((heat > 0).float().sum()) > 0


def test_discriminative_regions_mean_what_the_classes_say(data):
    x, y, m = data.x.numpy(), data.y.numpy(), data.masks.numpy()
    for i in range(N):
        feature, body = m[i] == np.float32(0.9), m[i] == np.float32(0.4)
        if y[i] in (3, 4, 5) and feature.any():  # border colour tells RCell / RCellB / RCellC apart
            means = x[i][:, feature].mean(1)
            assert int(np.argmax(means)) == y[i] - 3
        if y[i] in (0, 3, 4, 5) and body.any():  # the inner body is blue-dominant
            inner = x[i][:, body].mean(1)
            assert inner[2] > inner[0] and inner[2] > inner[1]
        if y[i] == 0 and feature.any():  # the CCell border: every channel in [0.5, 0.9]
            border = x[i][:, feature]
            assert border.min() >= 0.5 - 1e-6 and border.max() <= 0.9 + 1e-6


def test_plain_background_is_black_off_the_cell(data):
    x, m = data.x.numpy(), data.masks.numpy()
    plain = np.flatnonzero(data.meta.background.to_numpy() == 1)
    assert len(plain)
    for i in plain:
        assert (x[i][:, m[i] == 0] == 0).all()


def literal_make_explanation(discriminative, localisation):
    """Algorithm 1's make_explanation, pixel by pixel, in double precision (Python floats: at a
    colour such as (0, 0, 0.15) the RMS sits on the 0.05 threshold and float32 rounding decides)."""
    _, h, w = discriminative.shape
    heat = np.zeros((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            rms = math.sqrt(sum(float(discriminative[c, i, j]) ** 2 for c in range(3))) / 3
            border = rms > 0.05
            body = any(math.sqrt(sum(float(layer[c, i, j]) ** 2 for c in range(3))) / 3 > 0.05
                       for layer in localisation)
            heat[i, j] = np.float32(0.9) if border else np.float32(0.4) if body else 0
    return heat


@settings(max_examples=40, deadline=None)
@given(arrays(bool, (3, 4, 5)), arrays(np.float32, (3, 3), elements=st.floats(0, 0.25, width=32)))
def test_make_explanation_matches_algorithm_1(masks, colours):
    parts = [(masks[k], colours[k]) for k in range(3)]
    layers = [m[None].astype(np.float32) * c[:, None, None] for m, c in parts]
    np.testing.assert_array_equal(make_explanation(parts[0], parts[1:]),
                                  literal_make_explanation(layers[0], layers[1:]))


def test_classes_uniform_and_shards_split_32_8_8(data):
    counts = np.bincount(data.y.numpy(), minlength=10)
    assert counts.min() > N / 10 - 4 * np.sqrt(N / 10)  # uniform draw, a 4-sigma band
    shards = data.meta.groupby("shard").split.unique()
    assert all(len(s) == 1 for s in shards)  # a shard lies in one split
    per_split = data.meta.groupby("split").shard.nunique().to_dict()
    assert per_split == {"train": 8, "val": 2, "test": 2}  # 12 shards in the ratio 32/8/8
    big = cells.make_spec(shard_size=200)
    splits = [big.make(200 * s, 200 * s + 1).meta[0]["split"] for s in range(48)]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (32, 8, 8)


def test_same_bytes_for_any_worker_count(data):
    parallel = cells.generate(N, seed=5, size=SIZE, shard_size=25, workers=2)
    assert torch.equal(parallel.x, data.x) and torch.equal(parallel.masks, data.masks)
    assert torch.equal(parallel.y, data.y)
    alone = cells.make_spec(seed=5, size=SIZE, shard_size=25).make(123, 124)
    assert np.array_equal(alone.x[0], data.x[123].numpy())


def test_size_scales_the_drawing():
    small = cells.make_spec(seed=2, size=64).sample(7)
    large = cells.make_spec(seed=2, size=256).sample(7)
    assert small[1] == large[1]
    share = [float((s[2] > 0).mean()) for s in (small, large)]
    assert share[0] == pytest.approx(share[1], abs=0.02)  # same drawing, scaled


def test_classes_subset_and_bad_input():
    some = cells.generate(20, size=32, classes=["RCell", "RCellB"], shard_size=5)
    assert set(some.y.tolist()) <= {3, 4} and some.classes == CLASSES
    with pytest.raises(ValueError, match="unknown cell class 'Blob'"):
        cells.generate(2, classes=["Blob"])
    with pytest.raises(ValueError, match="size must be an integer >= 32"):
        cells.generate(2, size=16)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        cells.generate(0)


SUPPORTED_SIZES = (cells.MIN_SIZE, 48, 64, 112, 128, 224, 512)  # 64-512: the study presets


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
def test_every_cell_with_a_discriminative_part_has_09_pixels(size):
    per_class = 100 if size <= 128 else 30 if size <= 224 else 8
    for seed in (0, 1):
        spec = cells.make_spec(seed=seed, size=size, classes=list(range(9)))
        chunk = spec.make(0, 9 * per_class)
        assert set(chunk.y.tolist()) == set(range(9))
        shown = (chunk.masks == np.float32(0.9)).any(axis=(1, 2))
        assert shown.all(), [CLASSES[c] for c in chunk.y[~shown]]
        # the 2 px minimum width keeps bars, poles and tails; redrawing is for the rare cell
        # whose tails point out of the image
        redrawn = np.array([m["draws"] for m in chunk.meta]) > 1
        assert redrawn.mean() < 0.01
