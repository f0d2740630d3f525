"""Executors: skip finished jobs, survive SIGKILL at any point, and agree with each other."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from salbench.results import ResultStore, read_results
from salbench.runtime import Job
from salbench.studies.executors import LocalExecutor

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
grid_jobs = importlib.import_module("grid_jobs")  # importable only after the path insert above


def comparable(run_dir: Path) -> pd.DataFrame:
    return read_results(run_dir).drop(columns="run").reset_index(drop=True)


def uninterrupted(tmp_path: Path) -> pd.DataFrame:
    run = tmp_path / "clean" / "run"
    LocalExecutor("cpu").run(grid_jobs.grid(), run)
    return comparable(run)


def run_and_kill(run_dir: Path, executor: str, after_jobs: int) -> None:
    """Start the grid in a child process group and SIGKILL it once ``after_jobs`` have finished."""
    env = dict(os.environ, GRID_SLEEP="0.3",
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen([sys.executable, str(HERE / "grid_jobs.py"), str(run_dir), executor],
                             env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store, deadline = ResultStore(run_dir), time.monotonic() + 120
    while len(store.finished()) < after_jobs and child.poll() is None:
        assert time.monotonic() < deadline, "the grid never got going"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert 0 < len(store.finished()) < grid_jobs.N_JOBS, "the kill did not land mid-study"


def test_local_executor_resumes_after_sigkill_with_identical_rows(tmp_path):
    run = tmp_path / "killed" / "run"
    run_and_kill(run, "local", after_jobs=3)
    summary = LocalExecutor("cpu").run(grid_jobs.grid(), run)
    assert len(summary.skipped) >= 3 and len(summary.done) + len(summary.skipped) == 12
    result = comparable(run)
    assert len(result) == 12 * 5
    pd.testing.assert_frame_equal(result, uninterrupted(tmp_path))


def test_rerun_of_finished_study_runs_nothing(tmp_path):
    LocalExecutor("cpu").run(grid_jobs.grid(), tmp_path)
    before = comparable(tmp_path)
    summary = LocalExecutor("cpu").run(grid_jobs.grid(), tmp_path)
    assert summary.done == [] and len(summary.skipped) == 12
    pd.testing.assert_frame_equal(comparable(tmp_path), before)


def test_failed_job_writes_no_rows_and_records_the_error(tmp_path):
    # no "samples" key: the job raises KeyError
    bad = Job("grid_jobs:score_job", {"seed": 1, "model": 0, "method": "x"}, study="toy")
    summary = LocalExecutor("cpu").run([bad, *grid_jobs.grid()[:2]], tmp_path)
    assert list(summary.failed) == [bad.key] and "samples" in summary.failed[bad.key]
    store = ResultStore(tmp_path)
    assert bad.key not in store.finished() and "KeyError" in store.failed()[bad.key]
    assert len(read_results(tmp_path)) == 2 * 5


def test_job_seed_depends_on_config_not_on_order(tmp_path):
    jobs = grid_jobs.grid()
    LocalExecutor("cpu").run(jobs, tmp_path / "a")
    LocalExecutor("cpu").run(list(reversed(jobs)), tmp_path / "b")
    pd.testing.assert_frame_equal(comparable(tmp_path / "a"), comparable(tmp_path / "b"))


def test_ray_executor_resumes_after_sigkill_and_matches_local(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    import ray

    from salbench.studies.executors import RayExecutor

    run = tmp_path / "ray" / "run"
    run_and_kill(run, "ray", after_jobs=2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(HERE)}})
    try:
        summary = RayExecutor("cpu").run(grid_jobs.grid(), run)
    finally:
        ray.shutdown()
    assert summary.failed == {} and len(summary.skipped) >= 2
    pd.testing.assert_frame_equal(comparable(run), uninterrupted(tmp_path))
