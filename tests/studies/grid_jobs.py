"""A small study-like job grid for the executor tests (importable by Ray workers via PYTHONPATH).

Run as a script: ``python grid_jobs.py RUN_DIR EXECUTOR`` runs the grid into RUN_DIR; the
environment variable GRID_SLEEP (seconds per job, default 0) slows it down so a test can kill it
mid-study without changing any job's config.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

from salbench.runtime import Job
from salbench.studies.executors import make_executor

N_JOBS = 12


def score_job(config: dict, ctx) -> list[dict]:
    """Rows that depend on the job's seed through torch and numpy, so seeding is checked too."""
    time.sleep(float(os.environ.get("GRID_SLEEP", "0")))
    values = torch.rand(config["samples"]).tolist()
    noise = np.random.standard_normal(config["samples"])
    return [{"dataset": "toy", "model_id": f"m{config['model']}", "method": config["method"],
             "metric": "score", "output": "score", "sample_id": str(i), "value": v + float(n),
             "direction": "higher", "model": config["model"], "meta": {"seed": ctx.seed}}
            for i, (v, n) in enumerate(zip(values, noise))]


def grid() -> list[Job]:
    return [Job("grid_jobs:score_job", {"seed": 7, "model": i // 3, "method": f"m{i % 3}",
                                        "samples": 5}, study="toy")
            for i in range(N_JOBS)]


if __name__ == "__main__":
    make_executor(sys.argv[2], device="cpu").run(grid(), sys.argv[1])
