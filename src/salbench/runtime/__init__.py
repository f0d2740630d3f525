"""Runtime: seeding, devices, progress bars and the executors that run a study's jobs."""

from salbench.runtime.devices import resolve_device
from salbench.runtime.executors import EXECUTORS, LocalExecutor, RayExecutor, Summary, make_executor
from salbench.runtime.jobs import Job, JobContext
from salbench.runtime.progress import is_quiet, set_quiet, track
from salbench.runtime.seeding import derive_seed, seed_everything

__all__ = ["EXECUTORS", "Job", "JobContext", "LocalExecutor", "RayExecutor", "Summary",
           "derive_seed", "is_quiet", "make_executor", "resolve_device", "seed_everything",
           "set_quiet", "track"]
