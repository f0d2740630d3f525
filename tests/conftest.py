"""Suite-wide settings.

One intra-op thread per test process: several tests start subprocesses or Ray workers next to the
pytest process; with torch's default of one thread per core they oversubscribe the CPU and
OpenMP's spin-waiting slows tiny models by orders of magnitude.

Under CI (``CI`` set), hypothesis draws the same examples every run, so a submission's result
does not depend on luck; locally it explores new examples each run.
"""

import os

import torch
from hypothesis import settings

torch.set_num_threads(1)
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
