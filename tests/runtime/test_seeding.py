"""One seed drives Python, NumPy and torch; derived job seeds depend only on their inputs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from salbench.runtime import derive_seed, resolve_device, seed_everything, torch_seeded


def draw() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_same_seed_same_draws_other_seed_other_draws():
    seed_everything(3)
    first = draw()
    seed_everything(3)
    assert draw() == first
    seed_everything(4)
    assert all(a != b for a, b in zip(draw(), first))


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "job") == derive_seed(0, "job")
    assert len({derive_seed(s, k) for s in range(5) for k in "abcde"}) == 25
    assert 0 <= derive_seed(123, "x") < 2**31


def test_bad_seed_and_device_are_named():
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        seed_everything(-1)
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_torch_seeded_draws_as_manual_seed_restores_the_caller_and_queues_no_cuda_seed():
    """On the CPU the block draws what ``torch.manual_seed`` would give; the caller's stream
    goes on as if the block had not run; unlike ``manual_seed``, no seeding of the CUDA devices
    is queued (with its recorded stack trace) when CUDA is not initialised."""
    torch.manual_seed(7)
    expected = torch.rand(5)
    torch.manual_seed(1)
    caller = torch.rand(3)
    torch.manual_seed(1)
    torch.rand(1)
    tracker = torch.cuda._lazy_seed_tracker
    queued = tracker.get_calls()
    with torch_seeded(7, torch.device("cpu")):
        inside = torch.rand(5)
    assert torch.equal(inside, expected)
    assert torch.equal(torch.rand(2), caller[1:])
    if not torch.cuda.is_initialized():
        assert tracker.get_calls() == queued
