"""Forward passes of the perturbation metrics: how many images go into one model call, measured
on the model itself, and cheaper passes where the results allow.

**Chunk size, measured.** The cost of a batched forward pass per image depends on the model, the
input shape and the device (cache sizes on a CPU, occupancy on a GPU), so no fixed byte budget
fits every model (NOTES.md, "Chunk size": a 16 MiB budget made ResNet-18 at 128² 2.1× slower than
Quantus). With ``memory_budget=None`` a :class:`ChunkTimer` times the metric's own model calls at
the candidate sizes 1, 2, 4, … (the first calls at a size pay one-time costs, the next are
timed), keeps doubling until two sizes in a row are slower per image than the best, and settles
on the fastest size. The
largest candidate is bounded by memory (:data:`CALIBRATION_BUDGET` bytes of inputs plus leaf
activations, :func:`~salbench.metrics._checks.bytes_per_sample`). The timings are cached per
model, input shape, dtype, device and kind of pass, so the measuring happens once; it costs no
extra passes, only the first calls running at the smaller sizes. A model that cannot be cached
(no weak reference) is measured afresh in every call; a size that runs out of memory becomes the
bound. An explicit ``memory_budget`` fixes the chunk from the bytes instead (the old behaviour).

**Cheaper passes.** Every pass runs under ``torch.inference_mode`` on a traced, frozen copy of
the model (``torch.jit.freeze``: batch norm folded into the convolutions, convolution + ReLU fused
by oneDNN on the CPU) in the channels-last layout where the model takes it, built once per model,
input shape, precision and weights (:class:`FusedModel`), and shared by every model of the same
architecture and weights (a study loads one checkpoint in many jobs). TorchScript keeps every
copy it traced until the process ends (pytorch/pytorch#35600), so a process leaves at most
:data:`TRACE_BUDGET_SHARE` of the device's memory to them and runs further models as given
(warned once).
``precision="fp32"`` (the default) keeps the weights in float32 and, on the CPU, runs with oneDNN
Graph fusion (:class:`FusedModel`);
the copy is checked against the eager model on one sample after the executor's profiling runs
(relative difference at most :data:`FUSED_RTOL`). ``precision="bf16"`` (opt-in) casts the copy's
weights to bfloat16 (its check: :data:`BF16_TOLERANCE`); where that copy cannot be built it runs
the model under bf16 autocast. bf16 is faster where the CPU has bf16 instructions (AMX,
AVX512-BF16) or on a GPU. Its curves are not those of fp32: ``benchmarks/metrics.py`` (random
weights, 224²) measured region perturbation 1.0e-2 to 4.5e-2 (VGG-16, over several draws of the
weights) and 3.9e-3 to 9.1e-2 (ResNet-50; the largest with calibrated batch-norm statistics) of
the fp32 curves' largest value from them, so not always inside :data:`BF16_TOLERANCE`, and AOPC's
softmax curves on noise-filled inputs (ResNet-50, calibrated) 1.4e-1 to 2.0e-1; compare with fp32
on your model before trusting bf16. Per image at 224², batch 8, 1 thread, on an AMD EPYC with
AVX512-BF16: ResNet-50 eager 114 ms, frozen channels-last 91 ms, with oneDNN Graph 77 ms, bf16
43 ms; VGG-16 392, 304, 291–296 ms. A model that does not trace cleanly (data-dependent control
flow, non-tensor outputs), is in training mode or is no ``nn.Module`` runs as given.
"""

from __future__ import annotations

import copy
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from salbench.metrics._checks import (
    SCRIPTED_ACTIVATIONS,
    ScoreFn,
    bytes_per_sample,
    check_choice,
    chunk_size,
)

PRECISIONS = ("fp32", "bf16")
SLOWER = 1.03  # a size this much slower per image than the best so far counts as slower
PATIENCE = 2  # the search ends after this many slower sizes in a row (costs need not be convex)
# calls at a new input shape before it is timed or checked: TorchScript's profiling executor
# profiles and optimises on these and runs the fused graph from the 4th call on (measured)
WARMUP_CALLS = 3
MEASURE_SECONDS = 0.02  # timed seconds at each candidate size (over as many calls as it takes)
MAX_CHUNK = 1024  # largest candidate chunk (images per call)
CALIBRATION_BUDGET = {"cpu": 1 << 30, "cuda": 4 << 30}  # bytes bounding the largest candidate
# one optimised (fused) graph per input shape, for up to 32 shapes: the chunk search and a last
# partial chunk call several batch sizes, and torch's default (2 static, then dynamic shapes)
# left ResNet-18 at 128² unfused at the chosen size (15.5 instead of 10.5 ms per image)
FUSION_STRATEGY = [("STATIC", 32)]
FUSED_RTOL = 1e-4  # a fused copy must match the eager model this closely, relative to max |out|
# TorchScript never frees what it traced (pytorch/pytorch#35600, #96726: the graphs keep their
# frozen weights as constants; oneDNN Graph adds its compiled kernels): measured on VGG-16-BN
# (32 MiB of parameters), each traced copy kept 49 MiB after it was deleted, 170 MiB with oneDNN
# Graph. So copies are shared by every model with the same architecture and weights (a study
# loads one checkpoint in many jobs), and a process leaves at most this share of the device's
# memory (RAM for the CPU) to traced copies before it runs further models as given.
RETAINED_PER_WEIGHT_BYTE = {True: 5.5, False: 1.6}  # oneDNN Graph on / off (measured, above)
TRACE_BUDGET_SHARE = 0.25
# bf16 curves differ from fp32 by at most this share of the fp32 curve's largest |value| on the
# small random VGG-style and ResNet-style models of tests/metrics/test_passes.py (not a bound for
# every model: see the module docstring)
BF16_TOLERANCE = 0.03


# ---------------------------------------------------------------- chunk size


@dataclass
class ChunkTimer:
    """Seconds per image of one model on one input shape at the candidate chunk sizes
    1, 2, 4, … ``limit``, measured on real calls: at each size :data:`WARMUP_CALLS` calls pay the
    one-time costs (memory, kernel selection, a JIT's profiling runs), then calls are timed until
    they add up to :data:`MEASURE_SECONDS`. ``chosen`` is the fastest size once the search ends
    (after :data:`PATIENCE` sizes in a row slower per image than the best so far by
    :data:`SLOWER`, or at the limit; small convolutions can be slower at 2 images than at 1 and
    much faster at 8)."""

    limit: int
    per_image: dict[int, float] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    spent: dict[int, float] = field(default_factory=dict)
    chosen: int | None = None

    def next_size(self) -> int:
        if self.chosen is not None:
            return self.chosen
        size = 1
        while size in self.per_image and size < self.limit:
            size *= 2
        return min(size, self.limit)

    def record(self, size: int, seconds: float) -> None:
        """One call of ``size`` images that took ``seconds``."""
        if self.chosen is not None or size != self.next_size():
            return
        self.calls[size] = self.calls.get(size, 0) + 1
        if self.calls[size] <= WARMUP_CALLS:
            return
        self.spent[size] = self.spent.get(size, 0.0) + seconds
        if self.spent[size] < MEASURE_SECONDS:
            return
        self.per_image[size] = self.spent[size] / ((self.calls[size] - WARMUP_CALLS) * size)
        best = min(self.per_image, key=self.per_image.__getitem__)
        slower = sorted(s for s in self.per_image if s > best)
        if size >= self.limit or len(slower) >= PATIENCE and all(
                self.per_image[s] > SLOWER * self.per_image[best] for s in slower[-PATIENCE:]):
            self.chosen = best

    def out_of_memory(self, size: int) -> None:
        """``size`` images did not fit: the limit falls below it, the search ends there."""
        self.limit = max(1, size // 2)
        fitting = {s: t for s, t in self.per_image.items() if s <= self.limit}
        self.chosen = min(fitting, key=fitting.__getitem__) if fitting else self.limit


_TIMERS: weakref.WeakKeyDictionary[object, dict[tuple, ChunkTimer]] = weakref.WeakKeyDictionary()


def candidate_limit(model: object, x: Tensor) -> int:
    """The largest candidate chunk: :data:`CALIBRATION_BUDGET` over the bytes of one input plus its
    activations (for a plain callable, :data:`SCRIPTED_ACTIVATIONS` times the input)."""
    per_sample = bytes_per_sample(model, x)
    if not isinstance(model, nn.Module):
        per_sample *= SCRIPTED_ACTIVATIONS
    budget = CALIBRATION_BUDGET.get(x.device.type, CALIBRATION_BUDGET["cuda"])
    return max(1, min(MAX_CHUNK, budget // per_sample))


def chunk_timer(model: object, x: Tensor, kind: str, owner: object = None) -> ChunkTimer:
    """The cached timer of ``model`` on inputs shaped like ``x`` for passes of ``kind``, kept
    with ``owner`` (default ``model``; a shared fused copy keeps one timer for every model that
    uses it); a fresh, uncached one when the owner cannot be weakly referenced."""
    key = (tuple(x.shape[1:]), x.dtype, str(x.device), kind)
    try:
        timers = _TIMERS.setdefault(model if owner is None else owner, {})
    except TypeError:
        return ChunkTimer(candidate_limit(model, x))
    if key not in timers:
        timers[key] = ChunkTimer(candidate_limit(model, x))
    return timers[key]


def _is_out_of_memory(error: RuntimeError) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in str(error)


# ---------------------------------------------------------------- cheaper passes


def _weights_key(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place (``_version`` is
    torch's in-place modification counter) or a module changes mode."""
    tensors = (*model.parameters(), *model.buffers())
    return (tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors),
            tuple(m.training for m in model.modules()))


_FUSED: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[tuple, object]]] = (
    weakref.WeakKeyDictionary())
_SHARED: dict[tuple, FusedModel] = {}  # fingerprint -> the copy every equal model uses
_RETAINED = {"bytes": 0, "warned": False}  # estimated bytes TorchScript keeps in this process


def _fingerprint(model: nn.Module) -> tuple:
    """Architecture (class and ``repr``) and weights (per tensor: name, shape, dtype, the sum of
    all entries and of every 7th, in its own dtype: 32 ms for VGG-16, 0.8 s accumulated in
    float64) of a model: equal for two loads of one checkpoint. Not a proof of equality: a copy
    found by it is used only after it matches the model on one sample."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    with torch.no_grad():
        sums = torch.stack([torch.stack([t.sum(), t.flatten()[::7].sum()]).double()
                            for _, t in tensors]).tolist() if tensors else []
    return (type(model).__qualname__, repr(model),
            tuple((n, tuple(t.shape), t.dtype, *m) for (n, t), m in zip(tensors, sums)))


def _uses_onednn(x: Tensor, precision: str) -> bool:
    """Whether a fused copy for inputs like ``x`` runs with oneDNN Graph: float32 on the CPU."""
    return x.device.type == "cpu" and precision == "fp32" and x.dtype == torch.float32


def _retained_bytes(model: nn.Module, precision: str, onednn: bool) -> int:
    """Estimated bytes TorchScript keeps of a traced copy: its weights (2 bytes per floating
    entry in bf16) times :data:`RETAINED_PER_WEIGHT_BYTE`."""
    weights = sum(t.numel() * (2 if precision == "bf16" and t.is_floating_point()
                               else t.element_size())
                  for t in (*model.parameters(), *model.buffers()))
    return int(weights * RETAINED_PER_WEIGHT_BYTE[onednn])


def trace_budget(device: torch.device) -> int:
    """Bytes a process may leave to TorchScript's traced copies on ``device``:
    :data:`TRACE_BUDGET_SHARE` of its memory (6 GiB of this project's 24 GiB CPU machines)."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(TRACE_BUDGET_SHARE * total)


_FUSION_SETTINGS = threading.Lock()


class FusedModel(nn.Module):
    """A traced, frozen copy of a model with the input layout and dtype it was traced for:
    inputs are converted (``memory_format``, ``dtype``), outputs come back as float32. In float32
    on the CPU its calls run with TorchScript's oneDNN Graph fusion on
    (``torch.jit.enable_onednn_fusion`` and :data:`FUSION_STRATEGY`: process-wide settings, set
    for the duration of each call under a lock and then restored; a TorchScript model another
    thread optimises meanwhile sees them too): the executor's profiled graph is
    partitioned into fused oneDNN kernels (1 thread, 224², batch 8: ResNet-50 91 → 77 ms per
    image, VGG-16 304–311 → 291–296 ms). Not in bf16: there it was no faster (ResNet-50 region
    perturbation 2.58 s against 2.51–2.79 s) and its curves moved to 3.3e-2 of max from fp32's
    (3.9e-3 to 7.2e-3 without it), over :data:`BF16_TOLERANCE`."""

    def __init__(self, frozen: torch.jit.ScriptModule, dtype: torch.dtype,
                 memory_format: torch.memory_format, onednn: bool) -> None:
        super().__init__()
        self.frozen, self.dtype, self.memory_format = frozen, dtype, memory_format
        self.onednn = onednn

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self.dtype).contiguous(memory_format=self.memory_format)
        if not self.onednn:
            return self.frozen(x).float()
        with _FUSION_SETTINGS:  # one fused call at a time sets and restores them
            fusion = torch.jit.onednn_fusion_enabled()
            # torch.jit.set_fusion_strategy's own body, without its DeprecationWarning per call
            strategy = torch._C._jit_set_fusion_strategy(FUSION_STRATEGY)
            try:
                torch.jit.enable_onednn_fusion(True)
                return self.frozen(x).float()
            finally:
                torch.jit.enable_onednn_fusion(fusion)
                torch._C._jit_set_fusion_strategy(strategy)


def _memory_formats(x: Tensor) -> tuple[torch.memory_format, ...]:
    """Channels-last first for images (oneDNN's and cuDNN's fast layout: VGG-16 at 224² runs
    1.6× faster per image on the CPU than in the contiguous layout); contiguous when a model
    cannot take it (a ``view`` of a channels-last tensor fails)."""
    if x.dim() == 4:
        return (torch.channels_last, torch.contiguous_format)
    return (torch.contiguous_format,)


def _trace(model: nn.Module, x: Tensor, precision: str,
           memory_format: torch.memory_format) -> FusedModel | None:
    """The frozen copy in one layout, or ``None`` where it does not trace cleanly or does not
    match the eager model (:func:`_matches`)."""
    dtype = torch.bfloat16 if precision == "bf16" else x.dtype
    try:
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            duplicate = copy.deepcopy(model).to(dtype=dtype, memory_format=memory_format)
            sample = x[:1].to(dtype).contiguous(memory_format=memory_format)
            frozen = torch.jit.freeze(torch.jit.trace(duplicate, sample, check_trace=False))
            fused = FusedModel(frozen, dtype, memory_format,
                               onednn=_uses_onednn(x, precision))
    except (RuntimeError, TypeError, ValueError, copy.Error):
        return None
    clean = not any(issubclass(w.category, torch.jit.TracerWarning) for w in caught)
    return fused if clean and _matches(fused, model, x, precision) else None


def _matches(fused: FusedModel, model: nn.Module, x: Tensor, precision: str) -> bool:
    """Whether ``fused`` gives ``model``'s output on the last sample of ``x`` within the
    precision's tolerance (:data:`FUSED_RTOL`, :data:`BF16_TOLERANCE`, relative to max |output|),
    after the executor's profiling runs (:data:`WARMUP_CALLS`)."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            for _ in range(WARMUP_CALLS):
                fused(x[-1:])
            eager, out = model(x[-1:]), fused(x[-1:])
    except (RuntimeError, TypeError, ValueError):
        return False
    tolerance = BF16_TOLERANCE if precision == "bf16" else FUSED_RTOL
    return (isinstance(out, Tensor) and isinstance(eager, Tensor) and out.shape == eager.shape
            and torch.allclose(out, eager.float(), rtol=0,
                               atol=tolerance * float(eager.abs().max())))


def fused_copy(model: object, x: Tensor, precision: str = "fp32") -> object:
    """A traced, frozen copy of ``model`` for inputs shaped like ``x``, channels-last where the
    model takes it, its weights in ``precision`` (cached per model, shape, precision and weights,
    and shared by models of equal architecture and weights), or ``model`` itself where that is not
    possible, not equal, or the process has left :func:`trace_budget` bytes to TorchScript
    (module docstring)."""
    if (not isinstance(model, nn.Module) or isinstance(model, torch.jit.ScriptModule)
            or any(m.training for m in model.modules())):
        return model
    key = (tuple(x.shape[1:]), x.dtype, str(x.device), _weights_key(model))
    cached = _FUSED.setdefault(model, {}).get(precision)
    if cached is not None and cached[0] == key:
        return cached[1]
    shared_key = (precision, *key[:3], _fingerprint(model))
    fused = _SHARED.get(shared_key)
    if fused is None or not _matches(fused, model, x, precision):
        fused = _trace_within_budget(model, x, precision)
        if fused is not model:
            _SHARED[shared_key] = fused
    _FUSED[model][precision] = (key, fused)
    return fused


def _trace_within_budget(model: nn.Module, x: Tensor, precision: str) -> object:
    """A new frozen copy (:func:`_trace`, channels-last first), or ``model`` once this process's
    traced copies would keep more than :func:`trace_budget` bytes (warned once)."""
    cost = _retained_bytes(model, precision, _uses_onednn(x, precision))
    budget = trace_budget(x.device)
    if _RETAINED["bytes"] + cost > budget:
        if not _RETAINED["warned"]:
            _RETAINED["warned"] = True
            warnings.warn(f"salbench's perturbation metrics now run further models as given (not "
                          f"as fused TorchScript copies): TorchScript keeps every traced copy "
                          f"until the process ends (pytorch#35600) and this one has traced "
                          f"{_RETAINED['bytes'] / 2**30:.1f} GiB (budget {budget / 2**30:.1f} "
                          "GiB, salbench.metrics.passes.TRACE_BUDGET_SHARE of the device's "
                          "memory)", stacklevel=3)
        return model
    fused = next((f for fmt in _memory_formats(x) if (f := _trace(model, x, precision, fmt))),
                 None)
    if fused is None:
        return model
    _RETAINED["bytes"] += cost
    return fused


class ModelPasses:
    """The forward passes of one metric call: ``model`` on inputs shaped like ``x``, in chunks
    (measured, or from an explicit ``memory_budget``), in ``precision`` (module docstring).
    Calling it with images ``[N, C, H, W]`` and targets ``[N]`` returns ``scorer(outputs, y)``
    ``[N]``."""

    def __init__(self, model: object, x: Tensor, scorer: ScoreFn,
                 memory_budget: int | None = None, precision: str = "fp32") -> None:
        check_choice(precision, "precision", PRECISIONS)
        self.scorer = scorer
        self.precision = precision
        self.model = model
        self.forward = fused_copy(model, x, precision)
        self.fixed = None if memory_budget is None else chunk_size(model, x, memory_budget)
        fused = self.forward is not model
        kind = f"{precision}-fused" if fused else precision
        self.timer = None if self.fixed is not None else chunk_timer(
            model, x, kind, owner=self.forward if fused else None)
        self.device = x.device

    @property
    def largest_chunk(self) -> int:
        """The most images one call may take (the buffer size the caller needs)."""
        return self.fixed if self.fixed is not None else self.timer.limit

    def _call(self, xs: Tensor, ys: Tensor) -> Tensor:
        if self.precision == "bf16" and self.forward is self.model:
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return self.scorer(self.forward(xs).float(), ys)
        return self.scorer(self.forward(xs), ys)

    def __call__(self, xs: Tensor, ys: Tensor) -> Tensor:
        out = []
        with torch.inference_mode():
            start = 0
            while start < len(xs):
                size = min(self.fixed or self.timer.next_size(), len(xs) - start)
                part, yp = xs[start:start + size], ys[start:start + size]
                if self.timer is None or self.timer.chosen is not None:
                    out.append(self._call(part, yp))
                else:
                    try:
                        out.append(self._timed(part, yp))
                    except RuntimeError as error:
                        if not _is_out_of_memory(error) or size == 1:
                            raise
                        self.timer.out_of_memory(size)
                        continue
                start += size
        return torch.cat(out)

    def _timed(self, xs: Tensor, ys: Tensor) -> Tensor:
        cuda = self.device.type == "cuda"
        clock: Callable[[], float] = time.perf_counter if cuda else time.process_time
        if cuda:
            torch.cuda.synchronize(self.device)
        start = clock()
        scores = self._call(xs, ys)
        if cuda:
            torch.cuda.synchronize(self.device)
        self.timer.record(len(xs), clock() - start)
        return scores
