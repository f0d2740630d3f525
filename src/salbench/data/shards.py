"""Sample generation in parallel workers and the on-disk dataset format (chunked shards + manifest).

A generator is a picklable *spec* (see :class:`SampleSpec`) whose ``make(start, stop)`` returns the
samples ``start .. stop - 1``; sample ``i`` depends only on the spec (seed and parameters) and
``i``, so any worker count gives identical bytes and any sample can be regenerated alone.

On disk (``salbench data ... --out DIR``)::

    DIR/manifest.json            name, n, classes, shape, shard size, generator parameters
    DIR/x.npy                    float32 [N, C, H, W]   (memory-mapped when loaded)
    DIR/y.npy                    int64   [N]
    DIR/masks.npy                float32 [N, H, W]      (absent when the dataset has no masks)
    DIR/meta/shard-00000.parquet one per finished shard, written last: a shard is done when its
                                 metadata exists, so a killed generation resumes where it stopped
"""

from __future__ import annotations

import itertools
import json
import mmap
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from salbench.data.dataset import GroundTruthDataset
from salbench.runtime import track

FORMAT = "salbench-dataset/1"


@dataclass
class Chunk:
    """Samples ``start .. start + len(y) - 1`` of a generator."""

    x: np.ndarray  # float32 [k, C, H, W]
    y: np.ndarray  # int64 [k]
    masks: np.ndarray  # float32 [k, H, W]
    meta: list[dict]


def make_chunk(sample, start: int, stop: int, shape: tuple[int, int, int]) -> Chunk:
    """Samples ``start .. stop - 1`` from ``sample(i) -> (image [C, H, W] or [H, W], label, mask,
    meta)`` stacked into a :class:`Chunk` of images of ``shape``."""
    c, h, w = shape
    n = stop - start
    x = np.empty((n, c, h, w), np.float32)
    y = np.empty(n, np.int64)
    masks = np.empty((n, h, w), np.float32)
    meta = []
    for j, i in enumerate(range(start, stop)):
        image, y[j], masks[j], record = sample(i)
        x[j] = image.reshape(c, h, w)
        meta.append(record)
    return Chunk(x, y, masks, meta)


class SampleSpec(Protocol):
    """What :func:`generate_dataset` and :func:`write_dataset` need from a generator."""

    name: str
    seed: int

    def classes(self) -> list[str]: ...
    def shape(self) -> tuple[int, int, int]: ...
    def has_masks(self) -> bool: ...
    def params(self) -> dict: ...
    def prepare(self) -> None: ...
    def make(self, start: int, stop: int) -> Chunk: ...


def check_count(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer (number of samples), got {n!r}")
    return int(n)


def check_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, min(os.cpu_count() or 1, 8))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer or None (all cores), got {workers!r}")
    return workers


# Destination arrays of the running generation, by key. Worker processes are forked after the
# arrays are registered, inherit the (shared) memory maps and write their samples in place, so no
# image crosses a pipe; only metadata comes back.
_DESTINATIONS: dict[int, dict[str, np.ndarray]] = {}


def _fill(spec: SampleSpec, start: int, stop: int, key: int) -> list[dict]:
    arrays, chunk = _DESTINATIONS[key], spec.make(start, stop)
    arrays["x"][start:stop] = chunk.x
    arrays["y"][start:stop] = chunk.y
    if "masks" in arrays:
        arrays["masks"][start:stop] = chunk.masks
    for array in arrays.values():
        if isinstance(array, np.memmap):
            array.flush()
    return chunk.meta


def shared_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An array in anonymous shared memory: forked workers write to the parent's copy."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer(mmap.mmap(-1, max(nbytes, 1)), dtype=dtype,
                         count=int(np.prod(shape))).reshape(shape)


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def fill_chunks(spec: SampleSpec, ranges: list[tuple[int, int]], arrays: dict[str, np.ndarray],
                workers: int, description: str) -> Iterator[tuple[int, int, list[dict]]]:
    """Generate each range into ``arrays`` (``x``, ``y``, optional ``masks``) and yield
    ``(start, stop, meta)`` in order; ``workers`` forked processes write into shared memory maps."""
    spec.prepare()  # build shared state (lesion bank, template) once; forked workers inherit it
    key = id(arrays)
    _DESTINATIONS[key] = arrays
    try:
        if workers == 1 or len(ranges) == 1 or not can_fork():
            for start, stop in track(ranges, description):
                yield start, stop, _fill(spec, start, stop, key)
            return
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            todo = iter(ranges)
            pending = [(a, b, pool.submit(_fill, spec, a, b, key))
                       for a, b in itertools.islice(todo, 2 * workers)]
            for _ in track(range(len(ranges)), description):
                start, stop, future = pending.pop(0)
                yield start, stop, future.result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append((*nxt, pool.submit(_fill, spec, *nxt, key)))
    finally:
        del _DESTINATIONS[key]


def chunk_ranges(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def meta_frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records)


def generate_dataset(spec: SampleSpec, n: int, workers: int = 1,
                     chunk_size: int = 32) -> GroundTruthDataset:
    """Generate samples ``0 .. n - 1`` of ``spec`` into memory."""
    n, workers = check_count(n), check_workers(workers)
    c, h, w = spec.shape()
    empty = shared_empty if workers > 1 and can_fork() else np.empty
    arrays = {"x": empty((n, c, h, w), np.float32), "y": empty((n,), np.int64),
              "masks": empty((n, h, w), np.float32)}
    records: list[dict] = []
    for _, _, meta in fill_chunks(spec, chunk_ranges(0, n, chunk_size), arrays, workers,
                                  f"generating {spec.name}"):
        records.extend(meta)
    x, y, masks = arrays["x"], arrays["y"], arrays["masks"]
    return GroundTruthDataset(x, y, masks, meta_frame(records), spec.classes(), spec.name,
                              spec.params())


# ---------------------------------------------------------------------------------------------
# on-disk format


def _manifest(spec: SampleSpec, n: int, shard_size: int) -> dict:
    return {"format": FORMAT, "name": spec.name, "n": n, "classes": spec.classes(),
            "shape": list(spec.shape()), "has_masks": spec.has_masks(),
            "shard_size": shard_size, "params": spec.params()}


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))
    tmp.replace(path)


def _shard_meta_path(root: Path, k: int) -> Path:
    return root / "meta" / f"shard-{k:05d}.parquet"


def _open_for_writing(root: Path, manifest: dict, fresh: bool) -> dict[str, np.memmap]:
    n, (c, h, w) = manifest["n"], manifest["shape"]
    shapes = {"x": ((n, c, h, w), np.float32), "y": ((n,), np.int64)}
    if manifest["has_masks"]:
        shapes["masks"] = ((n, h, w), np.float32)
    arrays = {}
    for key, (shape, dtype) in shapes.items():
        path = root / f"{key}.npy"
        if fresh or not path.exists():
            arrays[key] = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        else:
            arrays[key] = np.load(path, mmap_mode="r+")
    return arrays


def write_dataset(spec: SampleSpec, n: int, out: str | Path, workers: int = 1,
                  shard_size: int = 256) -> Path:
    """Generate samples ``0 .. n - 1`` of ``spec`` into the folder ``out``, shard by shard.

    Rerunning with the same arguments skips finished shards (resume); a folder holding a different
    dataset is an error.
    """
    n, workers = check_count(n), check_workers(workers)
    shard_size = check_count(shard_size, "shard_size")
    root = Path(out)
    manifest = _manifest(spec, n, shard_size)
    manifest = json.loads(json.dumps(manifest))  # the form it has after a round trip
    manifest_path = root / "manifest.json"
    fresh = True
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old != manifest:
            raise ValueError(f"out={str(root)!r} already holds a different dataset ({old['name']}, "
                             f"n={old['n']}); choose another folder or delete it")
        fresh = False
    elif root.exists() and any(root.iterdir()):
        raise ValueError(f"out={str(root)!r} exists and is not a salbench dataset folder; "
                         "choose an empty or new folder")
    (root / "meta").mkdir(parents=True, exist_ok=True)
    _write_json(manifest_path, manifest)
    arrays = _open_for_writing(root, manifest, fresh)
    shards = [(k, a, b) for k, (a, b) in enumerate(chunk_ranges(0, n, shard_size))
              if not _shard_meta_path(root, k).exists()]
    starts = {a: k for k, a, _ in shards}
    for start, _, meta in fill_chunks(spec, [(a, b) for _, a, b in shards], arrays, workers,
                                      f"writing {spec.name} to {root}"):
        path = _shard_meta_path(root, starts[start])
        meta_frame(meta).to_parquet(path.with_suffix(".tmp"), index=False)
        path.with_suffix(".tmp").replace(path)
    return root


def save(dataset: GroundTruthDataset, out: str | Path) -> Path:
    """Write an in-memory dataset to ``out`` in the on-disk format (readable with :func:`load`)."""
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"out={str(root)!r} exists and is not empty; choose a new folder")
    c, h, w = dataset.x.shape[1:]
    has_masks = bool(dataset.masks.abs().sum() > 0)
    manifest = {"format": FORMAT, "name": dataset.name, "n": len(dataset),
                "classes": dataset.classes, "shape": [c, h, w], "has_masks": has_masks,
                "shard_size": max(len(dataset), 1), "params": dataset.params}
    (root / "meta").mkdir(parents=True, exist_ok=True)
    _write_json(root / "manifest.json", json.loads(json.dumps(manifest, default=str)))
    np.save(root / "x.npy", dataset.x.numpy())
    np.save(root / "y.npy", dataset.y.numpy())
    if has_masks:
        np.save(root / "masks.npy", dataset.masks.numpy())
    dataset.meta.to_parquet(_shard_meta_path(root, 0), index=False)
    return root


def read_manifest(path: str | Path) -> dict:
    manifest_path = Path(path) / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"path={str(path)!r} is not a salbench dataset folder "
                                "(no manifest.json); write one with `salbench data ... --out DIR`")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path} has format {manifest.get('format')!r}, "
                         f"expected {FORMAT}")
    return manifest


def open_arrays(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Memory-map ``x``, ``y`` and ``masks`` of an on-disk dataset (copy-on-write, never
    written)."""
    root, manifest = Path(path), read_manifest(path)
    x = torch.from_numpy(np.load(root / "x.npy", mmap_mode="c"))
    y = torch.from_numpy(np.load(root / "y.npy", mmap_mode="c"))
    if manifest["has_masks"]:
        masks = torch.from_numpy(np.load(root / "masks.npy", mmap_mode="c"))
    else:
        masks = torch.zeros((1, *x.shape[2:])).expand(len(x), *x.shape[2:])
    return x, y, masks


def load(path: str | Path) -> GroundTruthDataset:
    """Open an on-disk dataset lazily: arrays are memory-mapped, only metadata is read now.

    A partly written dataset (generation interrupted) is an error naming the missing shards.
    """
    root, manifest = Path(path), read_manifest(path)
    n_shards = -(-manifest["n"] // manifest["shard_size"])
    missing = [k for k in range(n_shards) if not _shard_meta_path(root, k).exists()]
    if missing:
        raise ValueError(f"path={str(root)!r} is incomplete: {len(missing)} of {n_shards} shards "
                         "missing; rerun the same generation command to finish it")
    meta = pd.concat([pd.read_parquet(_shard_meta_path(root, k)) for k in range(n_shards)],
                     ignore_index=True)
    x, y, masks = open_arrays(root)
    return GroundTruthDataset(x, y, masks, meta, manifest["classes"], manifest["name"],
                              manifest["params"], _path=root, _opener=open_arrays)
