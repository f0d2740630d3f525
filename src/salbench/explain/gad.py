"""GAD, Gradient Artificial Distancing (document 004, section 4): a meta-method over a gradient
method that keeps only the features every "support" model also finds important.

1. Classes of interest (4.1): a pair (a, b). For images of class a the pre-softmax output of b is
   lowered by α, for images of class b the output of a is lowered by α.
2. Regressions (4.2): for each α (default 0, 2, 4, 6, 8, section 6) a support model, initialised
   from the original weights, is trained with MSE on those shifted outputs (linear output, Adam,
   learning rate 4e-5, 10 epochs; section 6) by ``salbench.models.fit`` (preset "gad-support").
   Supports can be cached as safetensors checkpoints.
3. Important features (4.3): the base method is applied to the original model and to every
   support model; a feature (an element of the ``[C, H, W]`` map) is kept when it is important in
   all of them, and the GAD map is the original map on the kept features, 0 elsewhere.

"Important" is not defined numerically in section 4. Default: the top half of the features by
absolute attribution (``importance="top_fraction", threshold=0.5``, the 50 % section 6 keeps for
its convex hulls); ``importance="of_max"`` keeps |a| >= threshold · max|a| (figure 4 uses 0.1).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from salbench.explain.registry import explain, register
from salbench.models.training import TrainConfig, fit, preset
from salbench.runtime import track

GAD_ALPHAS = (0.0, 2.0, 4.0, 6.0, 8.0)
"""Distances α of document 004, section 6."""
IMPORTANCE_RULES = ("top_fraction", "of_max")


@dataclass
class GADSupport:
    """Support regression models of one class pair, one per α (output of :func:`fit_gad`)."""

    classes: tuple[int, int]
    alphas: tuple[float, ...]
    models: list[nn.Module]


def distanced_targets(logits: Tensor, labels: Tensor, classes: tuple[int, int],
                      alpha: float) -> Tensor:
    """Pre-softmax outputs with class b's output lowered by α on class-a images and class a's
    output lowered by α on class-b images (document 004, section 4.1); other rows unchanged."""
    a, b = classes
    target = logits.detach().clone()
    target[labels == a, b] -= alpha
    target[labels == b, a] -= alpha
    return target


def _pair_samples(data: tuple[Tensor, ...] | Iterable, classes: tuple[int, int]
                  ) -> tuple[Tensor, Tensor]:
    """All images and labels of the two classes: from ``(x, y[, ...])`` tensors or an iterable
    of such batches (e.g. a DataLoader)."""
    if isinstance(data, tuple) and len(data) >= 2 and isinstance(data[0], Tensor):
        batches: Iterable = [data]
    else:
        batches = data
    xs, ys = [], []
    for batch in batches:
        xb, yb = batch[0], torch.as_tensor(batch[1])
        keep = (yb == classes[0]) | (yb == classes[1])
        xs.append(xb[keep])
        ys.append(yb[keep])
    if not xs or sum(len(v) for v in ys) == 0:
        raise ValueError(f"data holds no samples of the classes {list(classes)}")
    return torch.cat(xs), torch.cat(ys)


def _outputs(model: nn.Module, x: Tensor, batch_size: int = 256) -> Tensor:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([model(x[i:i + batch_size].to(device)).float().cpu()
                              for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)


def support_config(model: nn.Module, **overrides: Any) -> TrainConfig:
    """Document 004's regression training (``salbench.models`` preset "gad-support": MSE, Adam,
    lr 4e-5, 10 epochs, batch 32) on the model's device; ``overrides`` change any field."""
    device = next(model.parameters()).device
    return preset("gad-support", **{"device": str(device), **overrides})


def train_support(model: nn.Module, x: Tensor, labels: Tensor, classes: tuple[int, int],
                  alpha: float, config: TrainConfig) -> nn.Module:
    """One support model: a copy of ``model`` trained by ``salbench.models.fit`` (MSE regression)
    onto :func:`distanced_targets` of the original's outputs. The original is not changed."""
    targets = distanced_targets(_outputs(model, x), labels, classes, alpha)
    support = copy.deepcopy(model)
    for param in support.parameters():
        param.requires_grad_(True)
    fit(support, (x, targets), None, config)
    support.eval()
    for param in support.parameters():
        param.requires_grad_(False)
    return support


def _cache_key(model: nn.Module, classes: tuple[int, int], alpha: float, config: TrainConfig,
               x: Tensor, labels: Tensor) -> str:
    digest = hashlib.sha256()
    for name, tensor in list(model.state_dict().items()) + [("x", x), ("y", labels)]:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps({"classes": list(classes), "alpha": alpha,
                              "config": config.model_dump(mode="json")},
                             sort_keys=True).encode())
    return digest.hexdigest()[:16]


def fit_gad(model: nn.Module, data: tuple[Tensor, ...] | Iterable, classes: Sequence[int],
            alphas: Sequence[float] = GAD_ALPHAS, config: TrainConfig | None = None,
            cache_dir: str | Path | None = None) -> GADSupport:
    """Train (or load from ``cache_dir``) one support model per α for the class pair ``classes``.

    ``data``: ``(x, y)`` tensors or an iterable of ``(x, y[, ...])`` batches; only samples of the
    two classes are used. ``config``: a ``salbench.models.TrainConfig`` (default
    :func:`support_config`). Checkpoints (safetensors) are named by a hash of the original
    weights, the data, the class pair, α and the training config, so any change retrains.
    """
    pair = tuple(int(c) for c in classes)
    if len(pair) != 2 or pair[0] == pair[1]:
        raise ValueError(f"classes must be two different class indices, got {list(classes)}")
    if not alphas:
        raise ValueError("alphas must hold at least one distance")
    config = support_config(model) if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError("config must be a salbench.models TrainConfig, "
                        f"got {type(config).__name__}")
    x, labels = _pair_samples(data, pair)
    models = []
    for alpha in track(alphas, "GAD support models"):
        path = None
        if cache_dir is not None:
            key = _cache_key(model, pair, float(alpha), config, x, labels)
            path = Path(cache_dir) / (f"gad_{pair[0]}_{pair[1]}_alpha{float(alpha):g}_"
                                      f"{key}.safetensors")
        if path is not None and path.is_file():
            support = copy.deepcopy(model)
            load_model(support, str(path))
            support.eval()
            for param in support.parameters():
                param.requires_grad_(False)
        else:
            support = train_support(model, x, labels, pair, float(alpha), config)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_model(support, str(path))
        models.append(support)
    return GADSupport(pair, tuple(float(a) for a in alphas), models)


def importance_mask(a: Tensor, importance: str = "top_fraction", threshold: float = 0.5) -> Tensor:
    """Boolean ``[B, ...]``: features whose |a| is in the top ``threshold`` fraction of the sample
    ("top_fraction") or at least ``threshold`` · max|a| ("of_max")."""
    if importance not in IMPORTANCE_RULES:
        raise ValueError(f"importance must be one of {IMPORTANCE_RULES}, got {importance!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    magnitude = a.detach().abs().flatten(1)
    if importance == "of_max":
        cut = threshold * magnitude.amax(1, keepdim=True)
    else:
        n = magnitude.shape[1]
        k = max(1, round(threshold * n))  # keep the k largest: cut at the (n - k + 1)-th smallest
        cut = magnitude.kthvalue(n - k + 1, dim=1, keepdim=True).values
    return (magnitude >= cut).view_as(a)


@register("gad", "salbench", "GAD: a gradient method filtered by support regressions (doc 004)")
def gad(model: nn.Module, x: Tensor, y: Tensor, support: GADSupport | None = None,
        base: str = "integrated_gradients", base_params: dict | None = None,
        importance: str = "top_fraction", threshold: float = 0.5) -> Tensor:
    """The base map of ``model`` kept where it and every support model's map are important."""
    if not isinstance(support, GADSupport):
        raise TypeError("gad needs support=fit_gad(model, data, classes) (a GADSupport), got "
                         f"{type(support).__name__}")
    if base == "gad":
        raise ValueError("gad cannot use itself as its base method")
    original = explain(model, x, y, base, **(base_params or {}))
    return gad_map(original, (explain(m, x, y, base, **(base_params or {}))
                              for m in support.models), importance, threshold)


def gad_map(original: Tensor, support_maps: Iterable[Tensor], importance: str = "top_fraction",
            threshold: float = 0.5) -> Tensor:
    """Section 4.3 on maps already computed: ``original`` kept where it and every support map
    are important (:func:`importance_mask`), 0 elsewhere; what :func:`gad` returns."""
    keep = importance_mask(original, importance, threshold)
    for a in support_maps:
        keep &= importance_mask(a, importance, threshold)
    return original * keep
