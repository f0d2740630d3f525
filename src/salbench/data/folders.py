"""ImageFolder-style reader for a user's own images (CRC, HAM10000, BreakHis, ...).

Layout: ``root/<class>/<image>``, classes sorted by name. When ``root`` holds ``train``, ``val``
and/or ``test`` folders with class folders inside, they give the split; otherwise samples are split
60/20/20 at random (``split_seed``). Optional masks: a parallel folder ``masks/<class>/<stem>.*``
(same relative path and file stem; any image format), read as grey levels in [0, 1]; an image
without a mask gets zeros and ``has_mask = False`` in ``meta``. Unreadable files are skipped and
counted (``dataset.params["skipped"]``); a folder with no readable image is an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from salbench.data.dataset import SPLITS, GroundTruthDataset, check_fractions

log = logging.getLogger("salbench.data")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _read_image(path: Path, channels: int) -> np.ndarray | None:
    """``[C, H, W]`` float32 in [0, 1], or None when unreadable."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None or data.size == 0:
        return None
    scale = 65535.0 if data.dtype == np.uint16 else 255.0 if data.dtype == np.uint8 else 1.0
    data = data.astype(np.float32) / scale
    if data.ndim == 2:
        data = data[..., None]
    if data.shape[2] == 4:
        data = data[..., :3]
    if data.shape[2] == 3:
        data = data[..., ::-1]  # BGR -> RGB
    if channels == 1 and data.shape[2] == 3:
        data = data @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]
    elif channels == 3 and data.shape[2] == 1:
        data = np.repeat(data, 3, axis=2)
    return np.ascontiguousarray(np.clip(data, 0, 1).transpose(2, 0, 1))


def _resize(array: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    method = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return np.stack([cv2.resize(c, (size, size), interpolation=method) for c in array])


def _fit_mask(mask: np.ndarray, shape: tuple[int, int], mask_path: Path,
              image_path: Path) -> np.ndarray:
    """A mask ``[1, h, w]`` of another resolution than its image, resized (nearest) to ``shape``
    when it has the image's aspect ratio; any other shape is an error naming both files."""
    (h, w), (mh, mw) = shape, mask.shape[1:]
    if mh * w != mw * h:
        raise ValueError(f"mask {str(mask_path)!r} is {mh}x{mw} px but its image "
                         f"{str(image_path)!r} is {h}x{w} px: a mask must have its image's size "
                         "(or the same aspect ratio, then it is resized)")
    return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_NEAREST) for c in mask])


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _find_mask(masks_root: Path, relative: Path) -> Path | None:
    folder = masks_root / relative.parent
    if not folder.is_dir():
        return None
    for candidate in sorted(folder.glob(relative.stem + ".*")):
        if candidate.suffix.lower() in IMAGE_SUFFIXES:
            return candidate
    return None


def load_folder(root: str | Path, masks: str | Path | None = None, size: int | None = None,
                channels: int = 3, split_fractions=(0.6, 0.2, 0.2),
                split_seed: int = 0) -> GroundTruthDataset:
    """Read ``root/<class>/<image>`` (and masks) into a :class:`GroundTruthDataset` in memory.

    ``size``: resize every image to ``size`` x ``size`` (area interpolation; masks nearest);
    ``None`` requires all images to share one size. ``channels``: 3 (RGB) or 1 (grey).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder (expected root/<class>/<image>)")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}")
    masks_root = None if masks is None else Path(masks)
    if masks_root is not None and not masks_root.is_dir():
        raise ValueError(f"masks={str(masks)!r} is not a folder")
    split_dirs = [root / s for s in SPLITS if (root / s).is_dir()]
    sources = [(d.name, d) for d in split_dirs] if split_dirs else [(None, root)]
    classes = sorted({c.name for _, d in sources for c in _class_folders(d)})
    if not classes:
        raise ValueError(f"root={str(root)!r} has no class sub-folders")
    entries = []
    for split, folder in sources:
        for class_dir in _class_folders(folder):
            for path in sorted(class_dir.rglob("*")):
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    entries.append((split, classes.index(class_dir.name), path))
    xs, ms, records, skipped = [], [], [], 0
    for split, label, path in entries:
        image = _read_image(path, channels)
        if image is None:
            skipped += 1
            continue
        relative = path.relative_to(root)
        mask_path = None if masks_root is None else _find_mask(masks_root, relative)
        mask = None if mask_path is None else _read_image(mask_path, 1)
        if mask is not None and mask.shape[1:] != image.shape[1:]:
            mask = _fit_mask(mask, image.shape[1:], mask_path, path)
        if size is not None:
            image = _resize(image, size)
            mask = None if mask is None else _resize(mask, size, nearest=True)
        xs.append(image)
        ms.append(np.zeros(image.shape[1:], np.float32) if mask is None else mask[0])
        records.append({"sample_id": len(records), "split": split, "path": str(relative),
                        "class_name": classes[label], "label": label,
                        "has_mask": mask is not None})
    if skipped:
        log.warning("load_folder(%s): skipped %d unreadable files", root, skipped)
    if not xs:
        raise ValueError(f"root={str(root)!r} holds no readable image ({skipped} unreadable)")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise ValueError(f"images in {str(root)!r} differ in size ({sorted(shapes)[:3]} ...); "
                         "pass size=N to resize them")
    meta = pd.DataFrame.from_records(records)
    if not split_dirs:
        fractions = check_fractions(split_fractions)
        u = np.random.default_rng([split_seed, 9001]).random(len(meta))
        edges = np.cumsum(fractions)
        meta["split"] = [SPLITS[int(np.searchsorted(edges, v, side="right"))] if v < edges[-1]
                         else SPLITS[-1] for v in u]
    y = meta.pop("label").to_numpy(np.int64)
    return GroundTruthDataset(np.stack(xs), y, np.stack(ms), meta, classes, "folder",
                              {"root": str(root), "masks": None if masks is None else str(masks),
                               "size": size, "channels": channels, "skipped": skipped})
