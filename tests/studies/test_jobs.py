"""The shared jobs' loaders: a run's dataset and checkpoints are read once per process and file
version (a study's many jobs on one model), every job gets its own model, and a rewritten file is
read again."""

from __future__ import annotations

import os
import shutil

import torch

from salbench.data import cells
from salbench.models import build
from salbench.models.checkpoints import save as save_checkpoint
from salbench.studies import jobs
from salbench.studies.specs import DataSpec


def test_a_checkpoint_is_read_once_per_version_and_each_job_gets_its_own_model(tmp_path):
    path = jobs.checkpoint_path(tmp_path, "m")
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    save_checkpoint(build("resnet18", 3, 3, 32, 0.25), path)
    first, second = jobs.load_model(tmp_path, "m", "cpu"), jobs.load_model(tmp_path, "m", "cpu")
    assert first is not second and not first.training
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), name
    with torch.no_grad():
        first.fc.weight.zero_()  # one job's change reaches no other job
    assert bool(jobs.load_model(tmp_path, "m", "cpu").fc.weight.abs().sum() > 0)
    torch.manual_seed(1)
    retrained = build("resnet18", 3, 3, 32, 0.25)
    save_checkpoint(retrained, path)
    os.utime(path, ns=(1, 1))  # another version even where the clock did not move
    reread = jobs.load_model(tmp_path, "m", "cpu")
    assert torch.equal(reread.fc.weight, retrained.fc.weight)


def test_a_dataset_is_opened_once_per_manifest(tmp_path):
    spec = DataSpec(kind="cells", n=12, size=32, seed=0, params={"shard_size": 2})
    out = jobs.dataset_dir(tmp_path, spec)
    cells.write(n=12, out=out, seed=0, size=32, shard_size=2)
    dataset = jobs.load_dataset(tmp_path, spec)
    assert jobs.load_dataset(tmp_path, spec.model_dump()) is dataset
    shutil.rmtree(out)
    cells.write(n=12, out=out, seed=5, size=32, shard_size=2)  # other images, a new manifest
    os.utime(out / "manifest.json", ns=(1, 1))
    again = jobs.load_dataset(tmp_path, spec)
    assert again is not dataset and not torch.equal(again.x, dataset.x)
