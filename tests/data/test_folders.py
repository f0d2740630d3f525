"""ImageFolder reader: classes, masks, splits, unreadable files."""

import cv2
import numpy as np
import pytest

from salbench.data.folders import load_folder


def write_tree(root, with_masks=True):
    rng = np.random.default_rng(0)
    images = {}
    for name in ("benign", "malignant"):
        (root / "img" / name).mkdir(parents=True)
        (root / "masks" / name).mkdir(parents=True)
        for k in range(3):
            image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            cv2.imwrite(str(root / "img" / name / f"{k}.png"), image)
            images[(name, k)] = image
            if with_masks and k < 2:
                mask = np.zeros((20, 20), np.uint8)
                mask[5:10, 5:10] = 255
                cv2.imwrite(str(root / "masks" / name / f"{k}.bmp"), mask)
    (root / "img" / "benign" / "broken.png").write_bytes(b"not an image")
    return images


def test_reads_classes_pixels_masks_and_counts_unreadable(tmp_path):
    images = write_tree(tmp_path)
    data = load_folder(tmp_path / "img", masks=tmp_path / "masks")
    assert data.classes == ["benign", "malignant"] and len(data) == 6
    assert data.params["skipped"] == 1
    row = data.meta.index[data.meta.path == "malignant/1.png"][0]
    expected = images[("malignant", 1)][..., ::-1].transpose(2, 0, 1) / 255.0  # BGR file -> RGB
    np.testing.assert_allclose(data.x[row].numpy(), expected, atol=1e-6)
    assert int(data.y[row]) == 1
    assert data.masks[row].sum() == 25 and data.meta.has_mask[row]
    last = data.meta.index[data.meta.path == "malignant/2.png"][0]
    assert not data.meta.has_mask[last] and data.masks[last].sum() == 0
    assert set(data.meta.split) <= {"train", "val", "test"}


def test_resize_and_split_folders(tmp_path):
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / split / name / "x.png"), np.full((30, 40), 200, np.uint8))
    data = load_folder(tmp_path, size=16, channels=1)
    assert data.x.shape == (4, 1, 16, 16)
    assert sorted(data.meta.split) == ["test", "test", "train", "train"]
    np.testing.assert_allclose(data.x.numpy(), 200 / 255, atol=1e-6)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        load_folder(tmp_path / "missing")
    (tmp_path / "only" / "cls").mkdir(parents=True)
    (tmp_path / "only" / "cls" / "bad.png").write_bytes(b"xx")
    with pytest.raises(ValueError, match="no readable image"):
        load_folder(tmp_path / "only")
    for k, shape in enumerate([(10, 10), (12, 10)]):
        (tmp_path / "mixed" / "c").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "mixed" / "c" / f"{k}.png"), np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match="pass size=N"):
        load_folder(tmp_path / "mixed")


def test_a_mask_at_another_resolution_is_resized_and_a_misshapen_one_refused(tmp_path):
    (tmp_path / "img" / "a").mkdir(parents=True)
    (tmp_path / "masks" / "a").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "img" / "a" / "0.png"), np.zeros((20, 40), np.uint8))
    half = np.zeros((10, 20), np.uint8)
    half[2:4, 4:8] = 255  # 2 x 4 px at half resolution: 4 x 8 px at full
    cv2.imwrite(str(tmp_path / "masks" / "a" / "0.png"), half)
    data = load_folder(tmp_path / "img", masks=tmp_path / "masks", channels=1)
    assert data.masks.shape == (1, 20, 40) and data.masks[0, 4:8, 8:16].sum() == 32
    assert data.masks.sum() == 32
    cv2.imwrite(str(tmp_path / "masks" / "a" / "0.png"), np.zeros((1, 40), np.uint8))
    with pytest.raises(ValueError, match=r"is 1x40 px but its image .* is 20x40 px"):
        load_folder(tmp_path / "img", masks=tmp_path / "masks", channels=1)
