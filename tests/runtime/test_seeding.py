"""One seed drives Python, NumPy and torch; derived job seeds depend only on their inputs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from salbench.runtime import derive_seed, resolve_device, seed_everything


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
