"""Input checks, the explicit channel reductions and the ranking and chunking helpers shared by
every metric.

Every check raises one ``ValueError`` / ``TypeError`` naming the argument and the expected form,
before any work starts (DESIGN.md, "Errors").
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from salbench.explain import postprocess
from salbench.explain.checks import all_finite

REDUCTIONS = (*postprocess.REDUCTIONS, "none")


def check_tensor(t: object, name: str, ndim: tuple[int, ...], floating: bool = True) -> Tensor:
    """``t`` is a tensor with one of the given numbers of dimensions, finite if floating."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim not in ndim:
        forms = " or ".join(f"{d}-D" for d in ndim)
        raise ValueError(f"{name} must be {forms}, got shape {tuple(t.shape)}")
    if floating:
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        if not all_finite(t):
            bad = ~torch.isfinite(t)
            samples = torch.nonzero(bad.flatten(1).any(1)).flatten().tolist()
            raise ValueError(f"{name} contains NaN or infinite values (samples {samples[:10]})")
    return t


def check_attributions(a: object, name: str = "a") -> Tensor:
    """Attributions ``[B, C, H, W]`` (or an already reduced ``[B, H, W]``), finite."""
    return check_tensor(a, name, (3, 4))


def check_images(x: object, name: str = "x") -> Tensor:
    return check_tensor(x, name, (4,))


def check_targets(y: object, batch: int, name: str = "y") -> Tensor:
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.ndim != 1 or y.shape[0] != batch or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of shape [{batch}], got "
                         f"{y.dtype} {tuple(y.shape)}")
    return y


def check_mask(m: object, shape: tuple[int, ...], name: str = "m", binary: bool = True) -> Tensor:
    """Mask ``[B, H, W]`` matching ``shape``; binary (0/1) and non-empty per sample if asked."""
    m = check_tensor(m, name, (3,), floating=False)
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ([B, H, W] of the attributions), "
                         f"got {tuple(m.shape)}")
    if binary:
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError(f"{name} must be binary (values 0 and 1 only)")
        empty = (m.flatten(1) == 0).all(1)
        if bool(empty.any()):
            samples = torch.nonzero(empty).flatten().tolist()
            raise ValueError(f"{name} is empty (all zero) for samples {samples[:10]}; "
                             "a ground-truth metric needs at least one mask pixel")
    return m


def reduce_channels(a: Tensor, reduce: str) -> Tensor:
    """``[B, C, H, W]`` -> ``[B, H, W]`` by ``sum``, ``abs-sum``, ``max-abs``, ``l2`` (the
    definitions of :func:`salbench.explain.postprocess.reduce_channels`) or ``none`` (needs C = 1);
    3-D input is taken as already reduced and returned unchanged."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if a.ndim == 3:
        return a
    if reduce != "none":
        return postprocess.reduce_channels(a, reduce)
    if a.shape[1] != 1:
        raise ValueError(f"reduce='none' needs single-channel attributions, got C={a.shape[1]}")
    return a[:, 0]


def check_choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_spatial(name: str, a: Tensor, x: Tensor) -> None:
    """Attributions ``a`` match images ``x``: same batch and H, W; channels 1 or C."""
    if a.shape[0] != x.shape[0] or tuple(a.shape[-2:]) != tuple(x.shape[-2:]):
        raise ValueError(f"{name} must match x in batch size and H, W: {name} "
                         f"{tuple(a.shape)} vs x {tuple(x.shape)}")
    if a.ndim == 4 and a.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"{name} must have 1 or {x.shape[1]} channels, got {a.shape[1]}")


def check_model_inputs(model, x: Tensor, y: Tensor, a: Tensor) -> None:
    """The inputs of a metric that runs the model: a module or callable, images ``x``, one
    target per image ``y``, attributions ``a`` on ``x``'s grid."""
    if not isinstance(model, torch.nn.Module) and not callable(model):
        raise TypeError(f"model must be a torch.nn.Module or callable, got {type(model).__name__}")
    check_images(x)
    check_targets(y, x.shape[0])
    check_attributions(a)
    check_spatial("a", a, x)


def sort_rows(s: Tensor, descending: bool = False) -> tuple[Tensor, Tensor]:
    """``torch.sort(s, dim=1)``'s values and indices, where equal values may come in any order.
    On the CPU NumPy's vectorised ``argsort`` (about 2× ``torch.sort`` on rows of 128² floats)."""
    if s.device.type == "cpu" and s.dtype in (torch.float32, torch.float64):
        values = s.detach().numpy()
        order = torch.from_numpy(np.argsort(-values if descending else values, axis=1))
        return s.gather(1, order), order
    return torch.sort(s, dim=1, descending=descending)


def average_ranks(s: Tensor) -> Tensor:
    """1-based ranks (float64) of each row ascending, ties get the mean of their ranks (as scipy).

    One sort (:func:`sort_rows`: ties share one rank, so their order does not matter); a run of
    equal values at sorted positions first … last gets (first + last) / 2 + 1, found by a
    running max of run starts and a reversed running min of run ends (linear after the sort)."""
    sorted_s, order = sort_rows(s)
    n = s.shape[1]
    position = torch.arange(n, device=s.device).expand_as(sorted_s)
    differs = sorted_s[:, 1:] != sorted_s[:, :-1]
    edge = torch.ones(s.shape[0], 1, dtype=torch.bool, device=s.device)
    first = torch.where(torch.cat([edge, differs], 1), position, 0).cummax(1).values
    last = torch.where(torch.cat([differs, edge], 1), position, n).flip(1).cummin(1).values.flip(1)
    ranks_sorted = (first + last).to(torch.float64) / 2 + 1
    return torch.empty_like(ranks_sorted).scatter_(1, order, ranks_sorted)


def check_classes(out: Tensor, y: Tensor, name: str = "y") -> None:
    """The model's outputs ``[N, K]`` have a class for every target in ``y``."""
    if out.ndim != 2:
        raise ValueError(f"the model must return class scores [N, K], got shape "
                         f"{tuple(out.shape)}")
    if len(y) and (int(y.max()) >= out.shape[1] or int(y.min()) < 0):
        raise ValueError(f"{name} holds classes {int(y.min())}..{int(y.max())}, but the model has "
                         f"{out.shape[1]} outputs (classes 0..{out.shape[1] - 1})")


ScoreFn = Callable[[Tensor, Tensor], Tensor]
SCORES = ("logit", "probability")


def target_score(score: str | ScoreFn) -> ScoreFn:
    """The scorer: what is read from the model's output ``[N, K]`` for targets ``[N]``:
    ``logit`` (raw output), ``probability`` (softmax) or a callable ``(outputs, y) -> [N]``."""
    if callable(score):
        return score
    check_choice(score, "score", SCORES)

    def read(out: Tensor, y: Tensor) -> Tensor:
        check_classes(out, y)
        if score == "probability":
            out = out.softmax(-1)
        return out.gather(1, y[:, None])[:, 0]

    return read


# Bytes of inputs + activations per model call when memory_budget is None: cache-sized on the
# CPU (CPU convolutions ran up to 2-3x faster per image in batches of ~16 small images than in
# batches of hundreds, measured for benchmarks/metrics.py), and large on a GPU, where big batches
# fill the device.
CPU_MEMORY_BUDGET = 16 * 2**20
GPU_MEMORY_BUDGET = 2 * 2**30


def default_memory_budget(device: torch.device) -> int:
    return GPU_MEMORY_BUDGET if device.type == "cuda" else CPU_MEMORY_BUDGET


SCRIPTED_ACTIVATIONS = 100  # activation bytes per input byte assumed for TorchScript models
_BYTES: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, int]] = (
    weakref.WeakKeyDictionary())


def bytes_per_sample(model: object, x: Tensor, activation_factor: float = 1.0) -> int:
    """Memory one input costs in a forward pass: its own bytes plus the outputs of every leaf
    module (a safe upper bound on the live activations; ``activation_factor`` scales them, e.g.
    2 for a backward pass). Measured with forward hooks on one sample, once per model and input
    shape (cached); a plain callable that is not an ``nn.Module`` counts its input only, a
    TorchScript module (no hooks) :data:`SCRIPTED_ACTIVATIONS` times its input."""
    own = x[0].numel() * x.element_size()
    if not isinstance(model, torch.nn.Module):
        return own
    if isinstance(model, torch.jit.ScriptModule):  # no hooks: assume activations of 100 inputs
        return own * SCRIPTED_ACTIVATIONS
    key = (tuple(x.shape[1:]), x.dtype, x.device)
    cached = _BYTES.setdefault(model, {})
    if key not in cached:
        total = 0

        def hook(module, inputs, output):
            nonlocal total
            if isinstance(output, Tensor):
                total += output.numel() * output.element_size()

        handles = [m.register_forward_hook(hook) for m in model.modules()
                   if next(m.children(), None) is None]
        try:
            with torch.no_grad():
                model(x[:1])
        finally:
            for h in handles:
                h.remove()
        cached[key] = total
    return own + int(activation_factor * cached[key])


def chunk_size(model: object, x: Tensor, memory_budget: int | None,
               activation_factor: float = 1.0) -> int:
    """Samples per model call so that inputs + activations stay within ``memory_budget`` bytes
    (``None``: :func:`default_memory_budget` of ``x``'s device)."""
    if memory_budget is None:
        memory_budget = default_memory_budget(x.device)
    if not isinstance(memory_budget, int) or isinstance(memory_budget, bool) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    return max(1, memory_budget // bytes_per_sample(model, x, activation_factor))


def forward_chunks(model: object, x: Tensor, memory_budget: int | None = None) -> Tensor:
    """``model(x)`` computed in chunks bounded by ``memory_budget`` (see :func:`chunk_size`)."""
    c = chunk_size(model, x, memory_budget)
    return torch.cat([model(x[i:i + c]) for i in range(0, len(x), c)])
