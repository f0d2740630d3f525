"""Per-sample drill-down gallery: a study saves samples with every method's map; the report shows
them.

Storage: one uncompressed ``.npz`` per item (deflate saved 25 % of the bytes of float maps at
6x the write time) under ``<run>/report/gallery/<study>/``, holding
``image [C, H, W]``, ``mask [H, W]`` (absent when the data has no ground truth), ``map_0 …`` each
``[C, H, W]`` or ``[H, W]`` float32 exactly as the methods returned them, ``map_names`` and a JSON
``info`` (study, dataset, model_id, sample_id, meta). The report reduces channels and normalises
only when drawing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salbench.report import figures as F

GALLERY_DIR = Path("report") / "gallery"


@dataclass
class GalleryItem:
    """One stored sample: input, ground truth, the maps by label, and where it came from."""

    sample_id: str
    image: np.ndarray
    mask: np.ndarray | None
    maps: dict[str, np.ndarray]
    study: str = ""
    dataset: str = ""
    model_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_gallery_item(run_dir: str | Path, sample_id: str | int, image: Any, mask: Any,
                      maps: Mapping[str, Any], meta: Mapping[str, Any] | None = None, *,
                      study: str = "", dataset: str = "", model_id: str = "") -> Path:
    """Store one sample for the report's gallery and return the file written.

    ``image``: ``[C, H, W]`` or ``[H, W]``; ``mask``: ``[H, W]`` ground truth or ``None``;
    ``maps``: label (usually the method name) → attribution ``[C, H, W]`` or ``[H, W]`` of the same
    ``H, W``; numpy arrays or torch tensors. ``meta``: JSON-serialisable facts shown beside the
    sample (true/predicted class, score, …). Saving the same (study, dataset, model, sample) again
    replaces the file atomically.
    """
    x = F.to_numpy(image, "image")
    if x.ndim not in (2, 3):
        raise ValueError(f"image must have shape [C, H, W] or [H, W], got {list(x.shape)}")
    size = x.shape[-2:]
    arrays: dict[str, np.ndarray] = {"image": x.astype(np.float32)}
    if mask is not None:
        m = F.to_numpy(mask, "mask")
        if m.shape != size:
            raise ValueError(f"mask must have shape [H, W] = {list(size)}, got {list(m.shape)}")
        arrays["mask"] = m.astype(np.float32)
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps must be a non-empty mapping of label -> map [C, H, W] or [H, W]")
    for i, (label, a) in enumerate(maps.items()):
        h = F.to_numpy(a, f"maps[{label!r}]")
        if h.ndim not in (2, 3) or h.shape[-2:] != size:
            raise ValueError(f"maps[{label!r}] must have shape [C, {size[0]}, {size[1]}] or "
                             f"[{size[0]}, {size[1]}], got {list(h.shape)}")
        if not np.all(np.isfinite(h)):
            raise ValueError(f"maps[{label!r}] holds NaN or infinite values")
        arrays[f"map_{i}"] = h.astype(np.float32)
    info = {"study": str(study), "dataset": str(dataset), "model_id": str(model_id),
            "sample_id": str(sample_id), "meta": dict(meta or {})}
    try:
        info_text = json.dumps(info, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"meta must be JSON-serialisable: {err}") from None
    arrays["map_names"] = np.array([str(k) for k in maps], dtype=np.str_)
    arrays["info"] = np.array(info_text, dtype=np.str_)
    folder = Path(run_dir) / GALLERY_DIR / _slug(str(study) or "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_item_name(dataset, model_id, sample_id)}.npz"
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_gallery_item(path: str | Path) -> GalleryItem:
    """Read one item written by :func:`save_gallery_item`."""
    with np.load(path, allow_pickle=False) as data:
        info = json.loads(str(data["info"]))
        names = [str(n) for n in data["map_names"]]
        return GalleryItem(sample_id=info["sample_id"], image=data["image"],
                           mask=data["mask"] if "mask" in data.files else None,
                           maps={n: data[f"map_{i}"] for i, n in enumerate(names)},
                           study=info["study"], dataset=info["dataset"],
                           model_id=info["model_id"], meta=info["meta"], path=Path(path))


def gallery_files(run_dir: str | Path) -> dict[str, list[Path]]:
    """Stored item files per study folder, each list sorted by file name."""
    root = Path(run_dir) / GALLERY_DIR
    if not root.is_dir():
        return {}
    return {d.name: sorted(p for p in d.glob("*.npz") if not p.name.startswith("."))
            for d in sorted(root.iterdir()) if d.is_dir()}


def item_figure(item: GalleryItem, *, reduce: str = "sum", per_row: int = 8):
    """The item as one figure: input, ground truth, then every map (channel-reduced with
    ``reduce``, divided by max|h|, diverging colormap symmetric around 0, ground-truth contours),
    wrapped after ``per_row`` maps."""
    labels = list(item.maps)
    chunks = [labels[i:i + per_row] for i in range(0, len(labels), per_row)]
    rows = [[item.maps[k] for k in chunk] for chunk in chunks]
    images = [item.image] + [None] * (len(rows) - 1)
    masks = [item.mask] * len(rows) if item.mask is not None else None
    return F.map_grid(rows, titles=chunks, images=images, masks=masks, reduce=reduce)


def item_caption(item: GalleryItem) -> str:
    parts = [f"sample {item.sample_id}"]
    parts += [f"{k} {v}" for k, v in (("dataset", item.dataset), ("model", item.model_id)) if v]
    parts += [f"{k} = {v}" for k, v in item.meta.items()]
    return " · ".join(parts)


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug[:60] or "_"


def _item_name(dataset: str, model_id: str, sample_id: str | int) -> str:
    key = "\0".join(str(v) for v in (dataset, model_id, sample_id))
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{_slug(f'{dataset}_{model_id}_{sample_id}')}-{digest}"
