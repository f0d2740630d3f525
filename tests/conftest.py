"""Suite-wide settings: one intra-op thread per test process.

Several tests start subprocesses or Ray workers next to the pytest process; with torch's default
of one thread per core they oversubscribe the CPU and OpenMP's spin-waiting slows tiny models by
orders of magnitude. One thread keeps every test's cost proportional to its work.
"""

import torch

torch.set_num_threads(1)
