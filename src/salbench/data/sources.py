"""A user's own images (and ground-truth masks) from whatever they have, as a dataset.

:func:`load_source` reads

- a **salbench dataset folder** (``manifest.json``, written by ``salbench data ...``);
- an **image folder** in ImageFolder layout (``root/<class>/<image>``, optionally
  ``root/{train,val,test}/<class>/<image>``) with an optional parallel mask folder
  (``masks/<class>/<stem>.*``, same relative path; see :mod:`salbench.data.folders`);
- an **.npz** file with ``x`` (``[N, C, H, W]`` or ``[N, H, W, C]``, floats in [0, 1] or uint8),
  ``y`` (``[N]`` class indices) and optionally ``masks`` (``[N, H, W]``) and ``classes``.

Samples without a mask get an all-zero mask (``meta.has_mask`` False); ground-truth metrics skip
them (NaN, counted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from salbench.data.dataset import GroundTruthDataset
from salbench.data.folders import load_folder
from salbench.data.shards import load as load_saved

KINDS = ("salbench", "folder", "npz")


def source_kind(path: str | Path) -> str:
    """Which of :data:`KINDS` ``path`` is (a ValueError naming the expected forms otherwise)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        return "npz"
    if path.is_dir():
        return "salbench" if (path / "manifest.json").is_file() else "folder"
    raise ValueError(f"--data {str(path)!r} is neither a salbench dataset folder, an image folder "
                     "(root/<class>/<image>) nor an .npz file with x, y (and masks)")


def load_source(path: str | Path, masks: str | Path | None = None, size: int | None = None,
                channels: int = 3) -> GroundTruthDataset:
    """The dataset at ``path`` (see the module docstring). ``masks``, ``size``, ``channels``: for
    an image folder (the mask folder, the side to resize to, RGB or grey)."""
    kind = source_kind(path)
    if kind == "salbench":
        return load_saved(path)
    if kind == "folder":
        return load_folder(path, masks=masks, size=size, channels=channels)
    return load_npz(path)


def load_npz(path: str | Path) -> GroundTruthDataset:
    """An .npz with ``x``, ``y`` and optional ``masks`` / ``classes`` as a dataset (all samples in
    the ``test`` split: they are the samples to explain)."""
    with np.load(path, allow_pickle=False) as content:
        arrays = {k: content[k] for k in content.files}
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise ValueError(f"--data {str(path)!r} has no array {missing} (it holds "
                         f"{sorted(arrays)}; expected x [N, C, H, W], y [N], optional masks)")
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 4:
        raise ValueError(f"--data {str(path)!r}: x must be [N, C, H, W] or [N, H, W, C], got shape "
                         f"{x.shape}")
    if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"--data {str(path)!r}: x holds NaN or infinite values")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise ValueError(f"--data {str(path)!r}: y must be [{len(x)}] non-negative class "
                         f"indices, got {y.dtype} {y.shape}")
    masks = arrays.get("masks")
    if masks is None:
        masks = np.zeros((len(x), *x.shape[2:]), np.float32)
    elif masks.shape != (len(x), *x.shape[2:]):
        raise ValueError(f"--data {str(path)!r}: masks must be [{len(x)}, {x.shape[2]}, "
                         f"{x.shape[3]}], got {masks.shape}")
    masks = masks.astype(np.float32)
    names = arrays.get("classes")
    classes = ([str(c) for c in names] if names is not None
               else [str(c) for c in range(int(y.max()) + 1)])
    meta = pd.DataFrame({"sample_id": np.arange(len(x)), "split": "test",
                         "has_mask": masks.reshape(len(x), -1).max(1) > 0})
    return GroundTruthDataset(x, y.astype(np.int64), masks, meta, classes, Path(path).stem,
                              {"source": str(path)})
