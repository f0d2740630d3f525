"""Runtime: jobs, seeding, devices and progress bars, shared by every stage (no stage imports)."""

from salbench.runtime.devices import resolve_device
from salbench.runtime.jobs import Job, JobContext, execute
from salbench.runtime.progress import is_quiet, set_quiet, track
from salbench.runtime.seeding import derive_seed, seed_everything, torch_seeded

__all__ = ["Job", "JobContext", "derive_seed", "execute", "is_quiet", "resolve_device",
           "seed_everything", "set_quiet", "torch_seeded", "track"]
