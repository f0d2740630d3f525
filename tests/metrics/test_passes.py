"""The metrics' forward passes: the measured chunk size (cached, equal curves, fallbacks), the
fused copy (equal to the eager model, rebuilt when weights change) and opt-in bf16."""

from __future__ import annotations

import gc
import threading
import warnings
import weakref

import numpy as np
import pytest
import torch
from tests.metrics.conftest import tiny_cnn
from torch import nn

from salbench.metrics import passes as ps
from salbench.metrics import perturbation as pt
from salbench.models import build


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x, a = torch.rand(3, 3, 12, 12, generator=g), torch.randn(3, 3, 12, 12, generator=g)
    return x, torch.tensor([0, 2, 1]), a


# ---------------------------------------------------------------- chunk size


def test_chunk_timer_grows_while_faster_and_settles_on_the_fastest():
    timer = ps.ChunkTimer(limit=64)
    # not convex (small convolutions: 2 images slower than 1); fastest at 8; 32 and 64 slower
    per_image = {1: 1.0, 2: 1.4, 4: 0.9, 8: 0.5, 16: 0.51, 32: 0.6, 64: 0.7, 128: 0.1}
    sizes = []
    while timer.chosen is None:
        size = timer.next_size()
        sizes.append(size)
        timer.record(size, per_image[size] * size)
    # each size: WARMUP_CALLS untimed calls, then one timed (each over MEASURE_SECONDS); 16 is
    # within SLOWER of 8, 32 and 64 are not: the search ends there
    calls = ps.WARMUP_CALLS + 1
    assert sizes == [s for s in (1, 2, 4, 8, 16, 32, 64) for _ in range(calls)]
    assert timer.chosen == 8 and timer.next_size() == 8
    timer.record(8, 100.0)  # later calls do not move the choice
    assert timer.chosen == 8
    short = ps.ChunkTimer(limit=4)  # calls too short to time alone are summed
    for _ in range(ps.WARMUP_CALLS + 2):
        short.record(1, ps.MEASURE_SECONDS / 2.5)
    assert 1 not in short.per_image
    short.record(1, ps.MEASURE_SECONDS / 2.5)
    assert short.per_image[1] == pytest.approx(ps.MEASURE_SECONDS / 2.5)


def test_chunk_timer_stops_at_its_limit_and_below_a_size_out_of_memory():
    calls = ps.WARMUP_CALLS + 1
    timer = ps.ChunkTimer(limit=3)
    for size in [s for s in (1, 2, 3) for _ in range(calls)]:
        assert timer.next_size() == size
        timer.record(size, 1.0)  # ever faster per image
    assert timer.chosen == 3
    timer = ps.ChunkTimer(limit=64)
    for size in [s for s in (1, 2) for _ in range(calls)]:
        timer.record(size, size * 1.0)
    timer.out_of_memory(4)
    assert timer.limit == 2 and timer.chosen in (1, 2)


def test_calibrated_chunk_is_cached_and_gives_the_curves_of_a_small_chunk(data, monkeypatch):
    x, y, a = data
    model = tiny_cnn(seed=11)  # weights of its own: equal models share a fused copy and timer
    monkeypatch.setattr(ps, "MAX_CHUNK", 64)  # a short search
    params = {"patch": 1, "steps": "linear:1", "fill": "uniform"}  # 3 x 145 passes per call
    forced = pt.region_perturbation(model, x, y, a, memory_budget=x[0].numel() * 4, **params)
    fused = ps.fused_copy(model, x)  # the timer is kept with the (shared) fused copy
    timer = ps.chunk_timer(model, x, "fp32-fused", owner=fused)
    runs = []
    while timer.chosen is None and len(runs) < 100:
        runs.append(pt.region_perturbation(model, x, y, a, **params))
    assert timer.chosen is not None and timer.chosen > 1  # measured; 1 image per call is slowest
    assert ps.chunk_timer(model, x, "fp32-fused", owner=fused) is timer  # cached per shape
    assert ps.chunk_timer(model, x[:, :, :6, :6], "fp32-fused", owner=fused) is not timer
    for run in runs:
        np.testing.assert_allclose(run.curves.numpy(), forced.curves.numpy(), atol=1e-6)
    again = pt.region_perturbation(model, x, y, a, **params)
    assert torch.equal(again.curves, runs[-1].curves)  # settled: identical calls, identical bits
    ref = weakref.ref(model)
    del model, timer, fused
    gc.collect()
    assert ref() is None  # the caches hold no strong reference to the model


class Unhashable:
    """A model callable that cannot be weakly referenced (slots, no __weakref__)."""

    __slots__ = ("net",)

    def __init__(self, net):
        self.net = net

    def __call__(self, x):
        return self.net(x)


def test_models_that_cannot_be_cached_or_run_out_of_memory_fall_back(data, monkeypatch):
    x, y, a = data
    monkeypatch.setattr(ps, "MEASURE_SECONDS", 0.0)  # one timed call per size: a short search
    net = tiny_cnn()
    params = {"patch": 4, "steps": "linear:1", "fill": "gray"}
    reference = pt.region_perturbation(net, x, y, a, memory_budget=x[0].numel() * 4, **params)
    model = Unhashable(net)
    out = pt.region_perturbation(model, x, y, a, **params)  # measured afresh, uncached
    np.testing.assert_allclose(out.curves.numpy(), reference.curves.numpy(), atol=1e-6)
    assert ps.chunk_timer(model, x, "fp32") is not ps.chunk_timer(model, x, "fp32")

    class SmallMemory(nn.Module):
        """Raises out-of-memory for more than 2 images per call, as a full device would."""

        def __init__(self):
            super().__init__()
            self.net = tiny_cnn()

        def forward(self, x):
            if x.shape[0] > 2:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return self.net(x)

    small = SmallMemory().eval()
    assert ps.fused_copy(small, x) is small  # a shape-dependent branch does not trace cleanly
    for _ in range(3):
        out = pt.region_perturbation(small, x, y, a, **params)
        np.testing.assert_allclose(out.curves.numpy(), reference.curves.numpy(), atol=1e-6)
    timer = ps.chunk_timer(small, x, "fp32")
    assert timer.limit == 2 and timer.chosen in (1, 2)


def test_bad_precision_is_rejected_before_work(data):
    x, y, a = data
    with pytest.raises(ValueError, match="precision must be one of"):
        pt.region_perturbation(tiny_cnn(), x, y, a, precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        pt.aopc(tiny_cnn(), x, y, a, region=4, precision="half")


# ---------------------------------------------------------------- fused copy


def test_equal_models_share_one_fused_copy_and_unequal_ones_do_not(monkeypatch):
    """TorchScript keeps every traced copy for the life of the process (pytorch#35600), so a
    model loaded again (other object, same architecture and weights) reuses the copy, and one
    with other weights gets its own, even when their fingerprints collide (checked on a
    sample before reuse)."""
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    first = ps.fused_copy(tiny_cnn(seed=21), x)
    shared = len(ps._SHARED)
    assert ps.fused_copy(tiny_cnn(seed=21), x) is first and len(ps._SHARED) == shared
    assert ps.fused_copy(tiny_cnn(seed=22), x) is not first  # other weights: another copy
    monkeypatch.setattr(ps, "_fingerprint", lambda model: repr(model))  # architecture only
    ps.fused_copy(tiny_cnn(seed=21), x)
    colliding = tiny_cnn(seed=25)
    own = ps.fused_copy(colliding, x)
    assert isinstance(own, ps.FusedModel) and own is not ps.fused_copy(tiny_cnn(seed=21), x)
    with torch.inference_mode():
        np.testing.assert_allclose(own(x).numpy(), colliding(x).numpy(), rtol=0, atol=1e-6)


def test_past_the_trace_budget_models_run_as_given(monkeypatch):
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(ps, "TRACE_BUDGET_SHARE", 0.0)
    monkeypatch.setattr(ps, "_RETAINED", {"bytes": 0, "warned": False})
    model = tiny_cnn(seed=23)
    with pytest.warns(UserWarning, match="TRACE_BUDGET_SHARE"):
        assert ps.fused_copy(model, x) is model
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per process
        assert ps.fused_copy(tiny_cnn(seed=24), x, "bf16") is not None
    out = pt.region_perturbation(model, x, torch.tensor([0, 1]), x, patch=4, steps="linear:4")
    ref = pt.region_perturbation(model, x, torch.tensor([0, 1]), x, patch=4, steps="linear:4",
                                 memory_budget=1 << 20)
    np.testing.assert_allclose(out.curves.numpy(), ref.curves.numpy(), atol=1e-6)


def test_fused_copy_equals_the_eager_model_and_follows_its_weights():
    model = build("resnet18", 5, 3, 32, 0.25).eval()
    with torch.no_grad():  # batch norm with non-trivial statistics, folded by the freeze
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g)
    fused = ps.fused_copy(model, x)
    assert isinstance(fused, ps.FusedModel) and fused.memory_format == torch.channels_last
    assert ps.fused_copy(model, x) is fused  # cached
    other = torch.rand(6, 3, 32, 32, generator=g)  # other inputs and batch size than the trace
    with torch.inference_mode():
        eager = model(other)
        np.testing.assert_allclose(fused(other).numpy(), eager.numpy(), rtol=0,
                                   atol=1e-5 * float(eager.abs().max()))
    with torch.no_grad():
        model.fc.weight.mul_(2.0)  # changed in place: a new copy follows the new weights
    refreshed = ps.fused_copy(model, x)
    assert refreshed is not fused
    with torch.inference_mode():
        np.testing.assert_allclose(refreshed(other).numpy(), model(other).numpy(), rtol=0,
                                   atol=1e-5 * float(model(other).abs().max()))
    model.train()
    assert ps.fused_copy(model, x) is model  # training mode: run as given


def test_onednn_fused_calls_equal_the_eager_model_at_changing_batch_sizes():
    """The oneDNN Graph partitions exist only after the executor's profiling runs and are
    specialised to shapes; calls at new batch sizes (a chunk search, a last partial chunk) must
    still equal the eager model, and the caller's fusion setting comes back unchanged."""
    model = build("resnet18", 5, 3, 32, 0.25).eval()
    g = torch.Generator().manual_seed(1)
    fused = ps.fused_copy(model, torch.rand(2, 3, 32, 32, generator=g))
    assert isinstance(fused, ps.FusedModel) and fused.onednn
    assert not torch.jit.onednn_fusion_enabled()
    caller = [("STATIC", 1), ("DYNAMIC", 3)]
    default = torch.jit.set_fusion_strategy(caller)
    try:
        with torch.inference_mode():
            for size in (1, 6, 6, 6, 3, 6, 1):
                x = torch.rand(size, 3, 32, 32, generator=g)
                eager = model(x)
                np.testing.assert_allclose(fused(x).numpy(), eager.numpy(), rtol=0,
                                           atol=ps.FUSED_RTOL * float(eager.abs().max()))
                assert not torch.jit.onednn_fusion_enabled()
                assert torch.jit.set_fusion_strategy(caller) == caller
    finally:
        torch.jit.set_fusion_strategy(default)


def test_fused_calls_restore_the_fusion_settings_across_threads_and_warn_nothing():
    """The settings are process-wide: two threads calling fused copies at once must leave the
    caller's values behind, and a call must not warn (under ``-W error`` a warning would raise
    between setting and restoring them)."""
    model = build("resnet18", 5, 3, 32, 0.25).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    fused = ps.fused_copy(model, x)
    default = torch.jit.set_fusion_strategy([("STATIC", 2), ("DYNAMIC", 10)])
    torch.jit.set_fusion_strategy(default)

    def calls():
        with torch.inference_mode():
            for _ in range(15):
                fused(x)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calls()
    threads = [threading.Thread(target=calls) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not torch.jit.onednn_fusion_enabled()
    assert torch.jit.set_fusion_strategy(default) == default


class Viewing(nn.Module):
    """Flattens with ``view``, which a channels-last tensor does not allow."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 10 * 10, 3)

    def forward(self, x):
        z = self.conv(x)
        return self.fc(z.view(z.shape[0], -1))


def test_a_model_that_cannot_take_channels_last_is_fused_contiguous(data):
    x, y, a = data
    model = Viewing().eval()
    fused = ps.fused_copy(model, x)
    assert isinstance(fused, ps.FusedModel) and fused.memory_format == torch.contiguous_format
    with torch.inference_mode():
        np.testing.assert_allclose(fused(x).numpy(), model(x).numpy(), rtol=0, atol=1e-6)


class Branchy(nn.Module):
    """Data-dependent control flow: a trace would freeze one branch."""

    def __init__(self):
        super().__init__()
        self.net = tiny_cnn()

    def forward(self, x):
        out = self.net(x)
        return out if float(x.mean()) > 0.5 else -out


def test_models_that_do_not_trace_cleanly_run_as_given(data):
    x, y, a = data
    branchy = Branchy().eval()
    assert ps.fused_copy(branchy, x) is branchy
    assert ps.fused_copy(lambda t: t.flatten(1), x) is not None  # a plain callable: as given
    scripted = torch.jit.script(tiny_cnn())
    assert ps.fused_copy(scripted, x) is scripted
    out = pt.region_perturbation(branchy, x, y, a, patch=4, steps="linear:2")
    ref = pt.region_perturbation(branchy, x, y, a, patch=4, steps="linear:2",
                                 memory_budget=x[0].numel() * 4)
    np.testing.assert_allclose(out.curves.numpy(), ref.curves.numpy(), atol=1e-6)


# ---------------------------------------------------------------- bf16


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_bf16_curves_stay_within_the_stated_tolerance(arch):
    model = build(arch, 10, 3, 32, 0.25).eval()
    g = torch.Generator().manual_seed(0)
    x, a = torch.rand(4, 3, 32, 32, generator=g), torch.randn(4, 3, 32, 32, generator=g)
    y = torch.arange(4)
    params = {"patch": 4, "steps": "square", "fill": "gray"}
    fp32 = pt.region_perturbation(model, x, y, a, **params).curves
    bf16 = pt.region_perturbation(model, x, y, a, precision="bf16", **params).curves
    scale = float(fp32.abs().max())
    error = float((bf16 - fp32).abs().max())
    assert 0 < error <= ps.BF16_TOLERANCE * scale  # bf16 ran, and within its tolerance
    low = ps.fused_copy(model, x, "bf16")  # bf16 weights in a frozen channels-last copy
    assert isinstance(low, ps.FusedModel) and low.dtype == torch.bfloat16
    assert not low.onednn and ps.fused_copy(model, x).onednn  # oneDNN Graph only in fp32
    assert low is not ps.fused_copy(model, x)  # one copy per precision, both cached
    assert ps.fused_copy(model, x, "bf16") is low
    probs = pt.aopc(model, x * 2 - 1, y, a, region=8).curves
    probs16 = pt.aopc(model, x * 2 - 1, y, a, region=8, precision="bf16").curves
    assert float((probs16 - probs).abs().max()) <= ps.BF16_TOLERANCE * float(probs.abs().max())
