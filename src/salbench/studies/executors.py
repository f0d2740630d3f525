"""Executors: run a list of jobs, skipping those the run's store already holds intact.

``local`` runs jobs in order in this process; ``ray`` submits the same jobs as Ray tasks (one GPU
each when GPUs exist, one CPU otherwise) and writes each job's rows as it completes. Both write
through :class:`salbench.results.ResultStore` from this process only, so a study killed at any
point and rerun ends with exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from salbench.results import ResultStore
from salbench.runtime import Job, execute, track

log = logging.getLogger("salbench.studies")
EXECUTORS = ("local", "ray")


@dataclass
class Summary:
    """What one executor call did."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the stage (set by run_study)


def pending(jobs: Sequence[Job], store: ResultStore, summary: Summary) -> list[Job]:
    """Jobs not done yet (not in the manifest, or with missing/unreadable parts), each key once,
    in the given order."""
    finished, seen, todo = store.finished(), set(), []
    for job in jobs:
        if job.key in seen:
            continue
        seen.add(job.key)
        (summary.skipped.append(job.key) if job.key in finished else todo.append(job))
    return todo


def _store_result(store: ResultStore, job: Job, rows, summary: Summary) -> None:
    store.write(job.key, rows, defaults={"study": job.study, "run": store.run_dir.name})
    summary.done.append(job.key)


def _store_failure(store: ResultStore, job: Job, error: str, summary: Summary) -> None:
    log.error("job %s (%s) failed: %s", job.key, job.label or job.fn, error)
    store.record_failure(job.key, error)
    summary.failed[job.key] = error.strip().splitlines()[-1] if error.strip() else "failed"


class LocalExecutor:
    """Run jobs one after the other in this process."""

    name = "local"

    def __init__(self, device: str = "auto"):
        self.device = device

    def run(self, jobs: Sequence[Job], run_dir: str | Path, description: str = "jobs") -> Summary:
        store, summary = ResultStore(run_dir), Summary()
        for job in track(pending(jobs, store, summary), description):
            try:
                rows = execute(job, run_dir, self.device)
            except Exception:
                _store_failure(store, job, traceback.format_exc(), summary)
                continue
            _store_result(store, job, rows, summary)
        return summary


class RayExecutor:
    """Run jobs as Ray tasks on a running cluster (``address``) or a local one started here."""

    name = "ray"

    def __init__(self, device: str = "auto", address: str | None = None,
                 cpus_per_job: float = 1.0):
        try:
            import ray
        except ImportError as err:
            raise RuntimeError("executor='ray' needs the ray extra: pip install 'salbench[ray]'"
                               ) from err
        self.ray, self.device, self.address, self.cpus_per_job = ray, device, address, cpus_per_job

    def run(self, jobs: Sequence[Job], run_dir: str | Path, description: str = "jobs") -> Summary:
        ray = self.ray
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        gpus = 1 if torch.cuda.is_available() and self.device != "cpu" else 0
        remote = ray.remote(num_cpus=self.cpus_per_job, num_gpus=gpus, max_retries=0)(execute)
        store, summary = ResultStore(run_dir), Summary()
        todo = pending(jobs, store, summary)
        futures = {remote.remote(job, str(run_dir), self.device): job for job in todo}
        for _ in track(range(len(futures)), description):
            ready, _ = ray.wait(list(futures), num_returns=1)
            job = futures.pop(ready[0])
            try:
                rows = ray.get(ready[0])
            except Exception:
                _store_failure(store, job, traceback.format_exc(), summary)
                continue
            _store_result(store, job, rows, summary)
        return summary


def make_executor(name: str, device: str = "auto") -> LocalExecutor | RayExecutor:
    if name == "local":
        return LocalExecutor(device)
    if name == "ray":
        return RayExecutor(device)
    raise ValueError(f"executor must be one of {EXECUTORS}, got {name!r}")
