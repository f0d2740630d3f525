"""The dataset type every salbench stage reads: images, targets, ground-truth masks and metadata.

A :class:`GroundTruthDataset` holds ``x`` float32 ``[N, C, H, W]``, ``y`` int64 ``[N]``, ``masks``
float32 ``[N, H, W]`` (all zeros where a dataset has no ground truth) and ``meta`` (a pandas
DataFrame, one row per sample, with at least ``sample_id`` and ``split``). Item ``i`` is the tuple
``(x[i], y[i], masks[i])``. A dataset read with :func:`salbench.data.load` keeps its arrays on disk
(memory-mapped): items are read on demand and DataLoader workers reopen the files instead of
copying them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")
log = logging.getLogger("salbench.data")


def _as_tensor(array, dtype: torch.dtype, name: str) -> torch.Tensor:
    if not isinstance(array, torch.Tensor):
        array = np.asarray(array)
        array = array if array.flags.writeable else array.copy()
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    if tensor.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {tensor.dtype}")
    return tensor


class GroundTruthDataset(Dataset):
    """Images with targets and ground-truth masks, usable as a torch ``Dataset``.

    ``x``: float32 ``[N, C, H, W]``; ``y``: int64 ``[N]`` (index into ``classes``); ``masks``:
    float32 ``[N, H, W]``; ``meta``: DataFrame with ``sample_id`` and ``split``
    (``train``/``val``/``test``). ``name`` says which generator made it and ``params`` its arguments
    (for provenance).
    """

    def __init__(self, x, y, masks, meta: pd.DataFrame, classes: list[str], name: str = "",
                 params: dict | None = None, *, _index: np.ndarray | None = None,
                 _path: Path | None = None, _opener: Callable | None = None):
        self._x = _as_tensor(x, torch.float32, "x")
        self._y = _as_tensor(y, torch.int64, "y")
        self._masks = _as_tensor(masks, torch.float32, "masks")
        self._index = None if _index is None else np.asarray(_index, dtype=np.int64)
        self._path = None if _path is None else Path(_path)
        self._opener = _opener  # reopens the arrays of an on-disk dataset after pickling
        n = len(self._x) if self._index is None else len(self._index)
        if self._x.ndim != 4:
            raise ValueError(f"x must be [N, C, H, W], got shape {tuple(self._x.shape)}")
        n_all = len(self._x)
        if self._y.shape != (n_all,) or self._masks.shape != (n_all, *self._x.shape[2:]):
            raise ValueError(f"y must be [{n_all}] and masks [{n_all}, H, W] to match x "
                             f"{tuple(self._x.shape)}; got {tuple(self._y.shape)} and "
                             f"{tuple(self._masks.shape)}")
        if len(meta) != n or not {"sample_id", "split"} <= set(meta.columns):
            raise ValueError(f"meta must have {n} rows and the columns sample_id, split; got "
                             f"{len(meta)} rows, columns {list(meta.columns)}")
        self.meta = meta.reset_index(drop=True)
        self.classes = list(classes)
        self.name = name
        self.params = dict(params or {})

    # The arrays, restricted to this dataset's samples. A subset of an on-disk dataset keeps an
    # index and reads its rows from disk on each access: use ``ds[i]`` or a DataLoader in loops.
    @property
    def x(self) -> torch.Tensor:
        return self._x if self._index is None else self._x[torch.from_numpy(self._index)]

    @property
    def y(self) -> torch.Tensor:
        return self._y if self._index is None else self._y[torch.from_numpy(self._index)]

    @property
    def masks(self) -> torch.Tensor:
        return self._masks if self._index is None else self._masks[torch.from_numpy(self._index)]

    @property
    def path(self) -> Path | None:
        """The folder an on-disk dataset was loaded from (``None`` for one held in memory)."""
        return self._path

    def __len__(self) -> int:
        return len(self._x) if self._index is None else len(self._index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        j = int(i) if self._index is None else int(self._index[i])
        return self._x[j], self._y[j], self._masks[j]

    def subset(self, indices) -> GroundTruthDataset:
        """The samples at ``indices`` (positions in this dataset), in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"indices must lie in [0, {len(self)}), got {idx.min()}..{idx.max()}")
        idx = idx % max(len(self), 1)
        base = idx if self._index is None else self._index[idx]
        meta = self.meta.iloc[idx]
        if self._path is None:  # in memory: copy the rows now
            rows = torch.from_numpy(base)
            return GroundTruthDataset(self._x[rows], self._y[rows], self._masks[rows], meta,
                                      self.classes, self.name, self.params)
        return GroundTruthDataset(self._x, self._y, self._masks, meta, self.classes, self.name,
                                  self.params, _index=base, _path=self._path,
                                  _opener=self._opener)

    def split(self, name: str) -> GroundTruthDataset:
        """The samples whose ``meta.split`` is ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"split name must be one of {SPLITS}, got {name!r}")
        return self.subset(np.flatnonzero(self.meta["split"].to_numpy() == name))

    def __repr__(self) -> str:
        c, h, w = self._x.shape[1:]
        counts = self.meta["split"].value_counts().to_dict()
        where = f", on disk at {self._path}" if self._path else ""
        return (f"GroundTruthDataset({self.name or 'unnamed'}: {len(self)} samples, {c}x{h}x{w}, "
                f"{len(self.classes)} classes, splits {counts}{where})")

    # DataLoader workers started with "spawn" receive a pickled dataset: an on-disk dataset sends
    # its folder (and the function that opens it, pickled by reference) and reopens the memory
    # maps rather than copying the arrays.
    def __getstate__(self):
        state = self.__dict__.copy()
        if self._path is not None:
            state["_x"] = state["_y"] = state["_masks"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._path is not None and self._x is None:
            self._x, self._y, self._masks = self._opener(self._path)


def check_fractions(fractions, name: str = "split_fractions") -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
        raise ValueError(f"{name} must be three non-negative numbers (train, val, test) summing "
                         f"to 1, got {fractions!r}")
    return values  # type: ignore[return-value]


def split_of_position(position: int, fractions: tuple[float, float, float]) -> str:
    """Split of the unit (subject, shard) at ``position`` in a fixed order.

    Each unit goes to the split furthest below its target share among units ``0 .. position``, so
    every prefix of units is split as close to ``fractions`` as whole units allow (60/20/20 gives
    train, val, train, test, train, ...). Pure in ``position``: adding units never moves old ones.
    """
    sequence = _SPLIT_SEQUENCES.setdefault(tuple(fractions), [])
    if len(sequence) <= position:
        target = np.asarray(fractions)
        counts = np.bincount([SPLITS.index(s) for s in sequence], minlength=3).astype(float)
        for p in range(len(sequence), position + 1):
            choice = int(np.argmax(target * (p + 1) - counts))
            counts[choice] += 1
            sequence.append(SPLITS[choice])
    return sequence[position]


_SPLIT_SEQUENCES: dict[tuple, list[str]] = {}


def units_needed(fractions: tuple[float, float, float]) -> int:
    """The fewest units (subjects, shards) whose splits (:func:`split_of_position`) include every
    split with a positive fraction: 4 for 60/20/20 and 32/8/8 (train, val, train, test)."""
    wanted = {name for name, f in zip(SPLITS, fractions) if f > 0}
    seen: set[str] = set()
    count = 0
    while not wanted <= seen:
        seen.add(split_of_position(count, fractions))
        count += 1
    return count


def check_split_sizes(units: np.ndarray, fractions: tuple[float, float, float], name: str,
                      what: str, unit: str, remedy: Callable[[list[str]], str]) -> None:
    """Refuse a dataset that leaves a split with a positive fraction empty.

    ``units``: the unit (subject, shard) position of every sample. The error names the counts per
    split and ``remedy(empty_splits)``; a split left empty because its fraction is 0 is only
    logged as a warning.
    """
    positions, per_unit = np.unique(np.asarray(units), return_counts=True)
    samples = dict.fromkeys(SPLITS, 0)
    groups = dict.fromkeys(SPLITS, 0)
    for position, count in zip(positions, per_unit):
        split = split_of_position(int(position), fractions)
        samples[split] += int(count)
        groups[split] += 1
    counts = ", ".join(f"{s} {samples[s]} ({_count(groups[s], unit)})" for s in SPLITS)
    empty = [s for s, f in zip(SPLITS, fractions) if f > 0 and not samples[s]]
    if empty:
        raise ValueError(f"{name}: {len(units)} {what} in {_count(len(positions), unit)} give "
                         f"{counts}: {_splits(empty)} would be empty; {remedy(empty)}")
    unused = [s for s, f in zip(SPLITS, fractions) if f == 0]
    if unused:
        log.warning("%s: %s empty (split_fractions gives 0); %s", name, _splits(unused), counts)


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}" + ("" if k == 1 else "s")


def _splits(names: list[str]) -> str:
    return f"the {' and '.join(names)} split" + ("s" if len(names) > 1 else "")
