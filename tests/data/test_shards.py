"""The dataset type and the on-disk format: round trips, lazy loading, resume, workers."""

import json
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from salbench.data import GroundTruthDataset, cells, load, mri_lesions, save
from salbench.data.shards import write_dataset


@pytest.fixture(scope="module")
def spec():
    return cells.make_spec(seed=1, size=32, shard_size=10)


def test_written_dataset_equals_generated_and_loads_lazily(tmp_path, spec):
    memory = cells.generate(45, seed=1, size=32, shard_size=10)
    root = write_dataset(spec, 45, tmp_path / "cells", workers=2, shard_size=10)
    disk = load(root)
    assert disk.path == root and len(disk) == 45
    assert torch.equal(disk.x, memory.x) and torch.equal(disk.masks, memory.masks)
    assert torch.equal(disk.y, memory.y)
    assert disk.meta.astype(str).equals(memory.meta.astype(str))
    assert isinstance(np.load(root / "x.npy", mmap_mode="r"), np.memmap)
    assert len(pickle.dumps(disk)) < 100_000  # workers get the folder, not the arrays
    clone = pickle.loads(pickle.dumps(disk))
    assert torch.equal(clone[7][0], memory[7][0])


def test_dataloader_workers_give_the_same_batches(tmp_path, spec):
    root = write_dataset(spec, 30, tmp_path / "cells", shard_size=10)
    disk = load(root).split("train")
    loaded = list(DataLoader(disk, batch_size=8, num_workers=2))
    direct = list(DataLoader(disk, batch_size=8, num_workers=0))
    for a, b in zip(loaded, direct):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert sum(len(b[0]) for b in loaded) == len(disk) == int((disk.meta.split == "train").sum())


def test_resume_finishes_only_missing_shards(tmp_path, spec):
    full = write_dataset(spec, 30, tmp_path / "full", shard_size=10)
    part = write_dataset(spec, 30, tmp_path / "part", shard_size=10)
    (part / "meta" / "shard-00001.parquet").unlink()  # as if killed during shard 1
    x = np.load(part / "x.npy", mmap_mode="r+")
    x[10:20] = 0
    x.flush()
    del x
    with pytest.raises(ValueError, match="incomplete"):
        load(part)
    write_dataset(spec, 30, part, shard_size=10)
    assert torch.equal(load(part).x, load(full).x)
    other = cells.make_spec(seed=2, size=32, shard_size=10)
    with pytest.raises(ValueError, match="different dataset"):
        write_dataset(other, 30, part, shard_size=10)


def test_lesion_free_disk_dataset_has_zero_masks_without_storing_them(tmp_path):
    root = mri_lesions.write(4, tmp_path / "free", size=64, slices_per_subject=1,
                             lesion_free=True)
    assert not (root / "masks.npy").exists()
    disk = load(root)
    assert disk.masks.shape == (4, 64, 64) and float(disk.masks.abs().sum()) == 0
    assert json.loads((root / "manifest.json").read_text())["name"] == "mri-lesion-free"


def test_save_and_subsets(tmp_path):
    data = cells.generate(12, size=32, shard_size=2)
    disk = load(save(data, tmp_path / "saved"))
    assert torch.equal(disk.x, data.x)
    sub = disk.subset([5, 1, 3])
    assert torch.equal(sub.x, data.x[[5, 1, 3]]) and list(sub.meta.sample_id) == [5, 1, 3]
    assert torch.equal(sub[1][2], data.masks[1])
    with pytest.raises(ValueError, match="split name must be one of"):
        data.split("validation")
    with pytest.raises(ValueError, match="masks"):
        GroundTruthDataset(data.x, data.y, data.masks[:3], data.meta, data.classes)
    with pytest.raises(FileNotFoundError, match="not a salbench dataset"):
        load(tmp_path)
