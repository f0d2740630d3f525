"""Gallery items: stored exactly, validated before writing, drawn with every map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salbench.report import load_gallery_item, save_gallery_item
from salbench.report.gallery import gallery_files, item_caption, item_figure


def sample(rng, size=12, methods=("saliency", "lrp")):
    image = rng.random((3, size, size)).astype(np.float32)
    mask = np.zeros((size, size), np.float32)
    mask[3:7, 4:9] = 1
    maps = {m: rng.normal(size=(3, size, size)).astype(np.float32) for m in methods}
    return image, mask, maps


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    image, mask, maps = sample(rng)
    maps["gradcam"] = torch.tensor(rng.normal(size=(1, 12, 12)), dtype=torch.float32)
    path = save_gallery_item(tmp_path, 7, image, mask, maps, {"true": 1, "pred": 0},
                             study="cells", dataset="cells", model_id="vgg")
    assert path.parent == tmp_path / "report" / "gallery" / "cells"
    item = load_gallery_item(path)
    np.testing.assert_array_equal(item.image, image)
    np.testing.assert_array_equal(item.mask, mask)
    assert list(item.maps) == ["saliency", "lrp", "gradcam"]  # insertion order kept
    np.testing.assert_array_equal(item.maps["gradcam"], maps["gradcam"].numpy())
    assert (item.sample_id, item.model_id, item.meta) == ("7", "vgg", {"true": 1, "pred": 0})
    assert "pred = 0" in item_caption(item)


def test_same_sample_replaces_and_no_mask_is_allowed(tmp_path):
    rng = np.random.default_rng(1)
    image, mask, maps = sample(rng)
    save_gallery_item(tmp_path, "s", image, mask, maps, study="x")
    save_gallery_item(tmp_path, "s", image, None, maps, study="x")
    files = gallery_files(tmp_path)["x"]
    assert len(files) == 1 and load_gallery_item(files[0]).mask is None
    save_gallery_item(tmp_path, "s", image, mask, maps, study="x", model_id="other")
    assert len(gallery_files(tmp_path)["x"]) == 2


@pytest.mark.parametrize("change, message", [
    (lambda i, m, a: (i, m[:5], a), "mask must have shape"),
    (lambda i, m, a: (i, m, {"bad": a["lrp"][:, :5]}), "maps\\['bad'\\] must have shape"),
    (lambda i, m, a: (i, m, {"nan": a["lrp"] * np.nan}), "NaN"),
    (lambda i, m, a: (i, m, {}), "non-empty"),
    (lambda i, m, a: (i[None], m, a), "image must have shape"),
])
def test_bad_input_is_refused_before_writing(tmp_path, change, message):
    image, mask, maps = change(*sample(np.random.default_rng(2)))
    with pytest.raises(ValueError, match=message):
        save_gallery_item(tmp_path, 0, image, mask, maps)
    assert not (tmp_path / "report").exists()


def test_item_figure_shows_every_map_with_contours(tmp_path):
    rng = np.random.default_rng(3)
    methods = [f"m{k}" for k in range(10)]
    image, mask, maps = sample(rng, methods=methods)
    item = load_gallery_item(save_gallery_item(tmp_path, 0, image, mask, maps))
    fig = item_figure(item, per_row=8)
    titled = [ax for ax in fig.axes if ax.get_title() in methods]
    assert sorted(ax.get_title() for ax in titled) == sorted(methods)
    for ax in titled:
        assert ax.images[0].norm.vmin == -1 and ax.images[0].norm.vmax == 1
        assert ax.collections  # the ground-truth contour
    h = maps["m9"].sum(axis=0)
    m9 = next(ax for ax in titled if ax.get_title() == "m9")
    np.testing.assert_allclose(m9.images[0].get_array(), h / np.abs(h).max(), rtol=1e-6)
