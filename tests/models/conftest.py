import pytest
import torch

from salbench.runtime import set_quiet


@pytest.fixture(autouse=True)
def _quiet_single_thread():
    """Quiet progress bars; one torch thread (with 2 cores shared by several test runs, two
    OpenMP threads per process made tiny training steps ~100x slower by spin-waiting)."""
    threads = torch.get_num_threads()
    set_quiet(True)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    set_quiet(False)
