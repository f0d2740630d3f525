"""Input validation, model-state guarding and model-structure checks shared by every method.

Every method leaves the model exactly as it found it: :func:`preserved_model` runs the model in
eval mode (so BatchNorm running statistics are read, never updated, and dropout is off) and
restores each module's train/eval flag, every parameter's ``requires_grad`` and the hook tables
afterwards, whatever happens inside.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

EXPLAINABLE_HINT = (
    "call salbench.models.make_explainable(model) first: it returns an equivalent model with one "
    "non-in-place activation module per use"
)

_HOOK_TABLES = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)


def all_finite(t: Tensor) -> bool:
    """Whether every entry of ``t`` is finite, in one reduction: a sum is finite only if every
    entry is (NaN and ±inf propagate); a sum that overflows falls back to the entry-wise test.
    About 4× ``torch.isfinite(t).all()`` on the CPU."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def weights_version(model: nn.Module) -> tuple:
    """Identity and in-place version (torch's ``_version`` counter) of every parameter and buffer:
    changes when the model is trained or edited, so what is cached or checked per weights is
    never stale."""
    return tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))


class NonFiniteAttributionError(ValueError):
    """An attribution map holds NaN or infinite values (reported, never returned)."""


def check_batch(x: object, y: object) -> tuple[Tensor, Tensor]:
    """Validate images ``x`` float ``[B, C, H, W]``, finite, and targets ``y`` (int or ``[B]``
    integers).

    Returns ``x`` detached and ``y`` as a ``long`` tensor ``[B]`` on ``x``'s device.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor [B, C, H, W], got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape [B, C, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one image, got an empty batch")
    if not all_finite(x.detach()):
        bad = torch.nonzero(~torch.isfinite(x.detach()).flatten(1).all(1)).flatten().tolist()
        raise ValueError(f"x holds NaN or infinite values in samples {bad[:10]}; an attribution "
                         "of a non-finite image means nothing")
    batch = x.shape[0]
    if isinstance(y, bool):
        raise TypeError("y must be an int or an integer tensor [B] of class indices, got a bool")
    if isinstance(y, int):
        y = torch.full((batch,), y, dtype=torch.long)
    elif isinstance(y, (list, tuple)):
        y = torch.as_tensor(y)
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be an int or an integer tensor [B], got {type(y).__name__}")
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"y must hold integer class indices, got dtype {y.dtype}")
    if y.ndim == 0:
        y = y.expand(batch)
    if y.shape != (batch,):
        raise ValueError(f"y must have shape [B] = [{batch}] to match x, got {tuple(y.shape)}")
    if bool((y < 0).any()):
        raise ValueError(f"y must hold non-negative class indices, got {y.tolist()}")
    y = y.to(device=x.device, dtype=torch.long)
    with torch.inference_mode(False):  # tensors made under inference_mode cannot enter autograd
        x = x.clone() if x.is_inference() else x
        y = y.clone() if y.is_inference() else y
    return x.detach(), y


def check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_device(model: nn.Module, x: Tensor) -> None:
    """The model's parameters and ``x`` must live on the same device."""
    param = next(model.parameters(), None)
    if param is not None and param.device != x.device:
        raise ValueError(f"x is on {x.device} but the model is on {param.device}; move one of "
                         "them (model.to(x.device))")


def check_finite(attribution: Tensor, method: str) -> Tensor:
    """Raise :class:`NonFiniteAttributionError` if ``attribution`` has NaN or infinite entries."""
    if not all_finite(attribution):
        finite = torch.isfinite(attribution)
        bad = (~finite).flatten(1).any(1).nonzero().flatten().tolist()
        count = int((~finite).sum())
        hint = (" (LRP: choose the 'zennit' or 'tutorial' stabiliser, document 002 section 2.1.5)"
                if method.startswith("lrp") else "")
        raise NonFiniteAttributionError(
            f"method {method!r} produced {count} NaN/infinite attribution values in samples "
            f"{bad}{hint}")
    return attribution


@contextmanager
def preserved_model(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode with gradients enabled (also inside ``torch.no_grad`` or
    ``torch.inference_mode``); restore modes, flags and hooks on exit.

    Hooks a method leaves behind (even after an exception inside a library) are removed; hooks
    that were there before are kept.
    """
    saved = []
    for module in model.modules():
        tables = module.__dict__
        hooks = {t: tuple(tables[t]) for t in _HOOK_TABLES if tables.get(t)}
        saved.append((module, module.training, hooks))
        tables["training"] = False  # what nn.Module.eval() sets, without its per-call overhead
    requires = [(p, p.requires_grad) for p in model.parameters()]
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield model
    finally:
        for module, flag, hooks in saved:
            tables = module.__dict__
            tables["training"] = flag
            for table in _HOOK_TABLES:
                current = tables.get(table)
                if current:
                    keep = hooks.get(table, ())
                    for key in [k for k in current if k not in keep]:
                        del current[key]
        for param, flag in requires:
            param.requires_grad_(flag)


def target_range_hook(y: Tensor):
    """A forward hook for the root module that rejects targets outside the output's classes."""
    top = int(y.max())

    def hook(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, Tensor) and output.ndim == 2 and top >= output.shape[1]:
            raise ValueError(f"y holds class {top}, but the model has {output.shape[1]} outputs "
                             f"(classes 0..{output.shape[1] - 1})")

    return hook


# ---- structure checks for methods that rewrite the backward pass of activations ----

_REUSE_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, list[str]]] = (
    weakref.WeakKeyDictionary())


def inplace_activations(model: nn.Module) -> list[str]:
    """Names of activation modules that work in place (``inplace=True``)."""
    return [name for name, m in model.named_modules()
            if type(m).__module__ == "torch.nn.modules.activation" and getattr(m, "inplace", False)]


def reused_modules(model: nn.Module, x: Tensor) -> list[str]:
    """Names of leaf modules called more than once in one forward pass of one sample of ``x``.

    The answer is cached per model and module structure, so the probe forward runs once.
    """
    signature = tuple((name, id(m)) for name, m in model.named_modules())
    cached = _REUSE_CACHE.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    counts: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            def count(mod, inp, out, name=name):
                counts[name] = counts.get(name, 0) + 1
            handles.append(module.register_forward_hook(count))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    reused = sorted(name for name, n in counts.items() if n > 1)
    _REUSE_CACHE[model] = (signature, reused)
    return reused


def require_explainable(model: nn.Module, x: Tensor, method: str, *,
                        allow_inplace: bool = False) -> None:
    """Raise a ValueError naming the offending modules if ``method`` cannot handle ``model``.

    Guided Backprop, Deconvolution and DeepLIFT replace the backward pass of activation modules
    (Captum), LRP attaches one rule per module call (Zennit): an in-place activation breaks the
    first, a module used twice in one forward (torchvision ResNet's shared ReLU) breaks both.
    """
    problems = []
    if not allow_inplace:
        inplace = inplace_activations(model)
        if inplace:
            problems.append(f"in-place activations {_short(inplace)}")
    reused = reused_modules(model, x)
    if reused:
        problems.append(f"modules used more than once per forward {_short(reused)}")
    if problems:
        raise ValueError(f"method {method!r} cannot handle this model: it has "
                         f"{' and '.join(problems)}; {EXPLAINABLE_HINT}")


def _short(names: list[str]) -> str:
    shown = ", ".join(names[:4])
    return f"[{shown}{', ...' if len(names) > 4 else ''}]"
