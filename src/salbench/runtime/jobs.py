"""Jobs: a job is a pure function of its config, named by a hash of (function, config).

A job function has the signature ``fn(config: dict, ctx: JobContext) -> rows`` where rows maps
result table names to lists of row dicts (``salbench.results.tables``), or is a plain list (the
``results`` table), or ``None`` for a job that only writes artifacts (a trained checkpoint) under
``ctx.run_dir``. Artifacts must be written atomically (temp file, then rename) so a killed job
leaves none half-written. The config holds exactly the job's inputs: its hash is the job's key,
so anything else in it would rerun the job when it changes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salbench.runtime.devices import resolve_device
from salbench.runtime.seeding import derive_seed, seed_everything


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn`` ("package.module:function") applied to a JSON-serialisable
    config."""

    fn: str
    config: Mapping[str, Any]
    study: str
    label: str = ""
    key: str = field(init=False)

    def __post_init__(self) -> None:
        if ":" not in self.fn:
            raise ValueError(f"Job.fn must be 'package.module:function', got {self.fn!r}")
        text = json.dumps({"fn": self.fn, "config": self.config, "study": self.study},
                          sort_keys=True, default=str)
        object.__setattr__(self, "key", hashlib.sha256(text.encode()).hexdigest()[:24])


@dataclass(frozen=True)
class JobContext:
    """What a job may know about where it runs; nothing in it changes the job's result."""

    run_dir: Path
    device: str
    seed: int
    key: str


def resolve_function(path: str) -> Callable[[dict, JobContext], Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def execute(job: Job, run_dir: str | Path, device: str) -> dict | list | None:
    """Run ``job`` in this process with its own seed (derived from the config's ``seed`` and
    key)."""
    seed = derive_seed(int(job.config.get("seed", 0)), job.key)
    seed_everything(seed)
    ctx = JobContext(run_dir=Path(run_dir), device=str(resolve_device(device)), seed=seed,
                     key=job.key)
    return resolve_function(job.fn)(dict(job.config), ctx)
