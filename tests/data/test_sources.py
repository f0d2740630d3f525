"""A user's images from an .npz, an image folder with masks, or a salbench folder; `salbench data
import` writes a dataset the other commands read; bad input is a one-line error."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from salbench.cli import app
from salbench.data import load, save
from salbench.data.sources import load_npz, load_source, source_kind


def write_folder(root, n=6, size=16, masks=True):
    rng = np.random.default_rng(0)
    for i in range(n):
        label = "ab"[i % 2]
        image = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        (root / "img" / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "img" / label / f"{i}.png"), image)
        if masks and i != 0:  # image 0 has no mask
            (root / "msk" / label).mkdir(parents=True, exist_ok=True)
            mask = np.zeros((size, size), np.uint8)
            mask[2:8, 3:9] = 255
            cv2.imwrite(str(root / "msk" / label / f"{i}.png"), mask)


def test_npz_in_either_layout_and_uint8(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((5, 3, 8, 8)).astype(np.float32)
    masks = (rng.random((5, 8, 8)) > 0.7).astype(np.float32)
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(5) % 2, masks=masks)
    np.savez(tmp_path / "b.npz", x=(x.transpose(0, 2, 3, 1) * 255).astype(np.uint8),
             y=np.arange(5) % 2)
    a, b = load_npz(tmp_path / "a.npz"), load_npz(tmp_path / "b.npz")
    torch.testing.assert_close(a.x, torch.from_numpy(x))
    torch.testing.assert_close(b.x, torch.from_numpy(x), atol=1 / 255, rtol=0)
    assert a.classes == ["0", "1"] and set(a.meta.split) == {"test"}
    assert a.meta.has_mask.tolist() == (masks.reshape(5, -1).max(1) > 0).tolist()
    assert not b.meta.has_mask.any() and float(b.masks.abs().sum()) == 0


@pytest.mark.parametrize("content, message", [
    ({"x": np.zeros((2, 3, 4, 4))}, r"no array \['y'\]"),
    ({"x": np.full((2, 3, 4, 4), np.nan), "y": np.zeros(2, int)}, "NaN or infinite"),
    ({"x": np.zeros((2, 3, 4, 4)), "y": np.zeros(3, int)}, "non-negative class indices"),
    ({"x": np.zeros((2, 3, 4)), "y": np.zeros(2, int)}, r"\[N, C, H, W\]"),
    ({"x": np.zeros((2, 3, 4, 4)), "y": np.zeros(2, int), "masks": np.zeros((2, 5, 5))},
     "masks must be"),
])
def test_bad_npz_files_name_the_problem(tmp_path, content, message):
    np.savez(tmp_path / "bad.npz", **content)
    with pytest.raises(ValueError, match=message):
        load_npz(tmp_path / "bad.npz")


def test_the_source_kind_is_recognised(tmp_path):
    write_folder(tmp_path)
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3, 4, 4)), y=np.zeros(2, int))
    save(load_npz(tmp_path / "d.npz"), tmp_path / "saved")
    assert [source_kind(tmp_path / p) for p in ("img", "d.npz", "saved")] == [
        "folder", "npz", "salbench"]
    with pytest.raises(ValueError, match="neither a salbench dataset folder"):
        source_kind(tmp_path / "nothing.txt")


def test_data_import_writes_a_dataset_the_commands_read(tmp_path):
    write_folder(tmp_path)
    done = CliRunner().invoke(app, ["data", "import", str(tmp_path / "img"), "--masks",
                                    str(tmp_path / "msk"), "--out", str(tmp_path / "mine")])
    assert done.exit_code == 0, done.output
    assert "6 images (5 with masks" in done.output
    dataset = load(tmp_path / "mine")
    direct = load_source(tmp_path / "img", tmp_path / "msk")
    torch.testing.assert_close(dataset.x, direct.x)
    torch.testing.assert_close(dataset.masks, direct.masks)
    assert dataset.masks[dataset.meta.has_mask.to_numpy()].flatten(1).max(1).values.min() == 1
    again = CliRunner().invoke(app, ["data", "import", str(tmp_path / "img"), "--out",
                                     str(tmp_path / "mine")])
    assert again.exit_code == 2 and "exists" in again.output
    missing = CliRunner().invoke(app, ["data", "import", str(tmp_path / "nope"), "--out",
                                       str(tmp_path / "x")])
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1
