"""Training: ``fit(model, train, val, config)`` with the source documents' regimes.

- Optimisers: SGD with momentum and step decay (document 000, section 2.2: lr 0.02, momentum 0.5,
  "reduced by 10 % every 5 epochs", batch 32) and Adam with weight decay (documents 001, 003, 004).
- Losses: cross-entropy, optionally class-weighted (document 003, section 4.2), or mean squared
  error on float targets ``[B, K]`` for the GAD support regression models (document 004, 4.2).
- Augmentation: random horizontal/vertical flips and rotations, per sample, on the batch's device
  (document 003, section 4.2).
- Early stopping: ``"loss_recall"`` (document 003, 4.2: stop after ``patience`` epochs in which
  neither the validation loss decreased nor the mean validation recall of the monitored classes
  increased) and ``"regular_evaluation"`` (document 001, 3.2: validate every 4 iterations on a
  random validation shard; stop when a shard's accuracy exceeds the target and the full validation
  set confirms it; otherwise the counter n_early grows by one without improvement and is multiplied
  by the refresh fraction r_f on improvement; stop when it reaches the limit n_l).
- On CUDA: bf16 autocast and the channels-last memory format, where the model takes it (a
  ``view`` of a channels-last activation fails: such a model trains contiguous). Both stay off on
  the CPU: channels-last made one VGG-16-BN step (width 1/8, 128², batch 32) 1.31× faster there
  but the cells ``small`` run only 1.09× (its base VGG), and it made the weights depend on the
  thread count (ResNet-18 width 1/8, 2 epochs of Adam on 72 images of 32²: largest weight
  difference between 1 and 2 threads 0.24, contiguous 6e-5).
- A non-finite loss stops training with ``TrainingDivergedError``; the model keeps its last good
  weights (those at the end of the last finished epoch).

The model is trained in place and left on the training device, in eval mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from salbench.config import Config
from salbench.models.selection import classification_scores, per_class_recall
from salbench.runtime import derive_seed, resolve_device, seed_everything, track

# Document 001, section 3.2: target accuracy and validation every 4 iterations.
CELLS_TARGET_ACCURACY = 0.96
CELLS_EVAL_EVERY = 4


class AugmentConfig(Config):
    """Per-sample random augmentation: flips with probability 0.5 and a rotation by an angle drawn
    uniformly from ``[-rotation_degrees, rotation_degrees]`` (bilinear, zero padding)."""

    hflip: bool = False
    vflip: bool = False
    rotation_degrees: float = Field(0.0, ge=0, le=180)

    @property
    def active(self) -> bool:
        return self.hflip or self.vflip or self.rotation_degrees > 0


class TrainConfig(Config):
    """How ``fit`` trains. Defaults are document 000's (section 2.2); see ``PRESETS`` for the
    others.

    ``early_stop_limit`` is n_l and ``refresh_fraction`` r_f of document 001, table 1;
    ``monitored_classes`` are the classes whose mean recall document 003's early stopping
    watches (``None``: all). ``restore_best``: after ``loss_recall`` stopping, return the weights of
    the last epoch that improved (the document does not say; salbench's choice).
    """

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.5, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["none", "step"] = "step"
    step_size: int = Field(5, ge=1)
    gamma: float = Field(0.9, gt=0, le=1)
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(32, ge=1)
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    class_weights: Literal["none", "balanced"] | list[float] = "none"
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    early_stopping: Literal["none", "loss_recall", "regular_evaluation"] = "none"
    patience: int = Field(5, ge=1)
    monitored_classes: list[int] | None = None
    restore_best: bool = True
    eval_every: int = Field(CELLS_EVAL_EVERY, ge=1)
    target_accuracy: float = Field(CELLS_TARGET_ACCURACY, gt=0, le=1)
    early_stop_limit: float = Field(24, gt=0)
    refresh_fraction: float = Field(0.4, ge=0, lt=1)
    val_shards: int = Field(8, ge=1)
    seed: int = Field(0, ge=0)
    device: str = "auto"
    bf16: bool = True
    channels_last: bool = True
    num_workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.loss == "mse" and self.early_stopping == "regular_evaluation":
            raise ValueError("early_stopping='regular_evaluation' needs class targets, "
                             "not loss='mse'")
        if self.loss == "mse" and self.class_weights != "none":
            raise ValueError("class_weights apply to loss='cross_entropy' only")
        return self


# The documents' regimes. Per-architecture values are keyed "preset:arch" where they differ.
PRESETS: dict[str, dict] = {
    # Document 000, section 2.2/2.3 (pre-training and fine-tuning). Early stopping is not in the
    # text; the public code stops early, salbench uses patience 5 on validation loss.
    "mri": {"optimizer": "sgd", "lr": 0.02, "momentum": 0.5, "scheduler": "step",
            "step_size": 5, "gamma": 0.9, "batch_size": 32, "epochs": 40,
            "early_stopping": "loss_recall", "patience": 5},
    # NOTES.md: the public code's schedule, StepLR(step 7, x0.1).
    "mri-public-code": {"optimizer": "sgd", "lr": 0.02, "momentum": 0.5, "scheduler": "step",
                        "step_size": 7, "gamma": 0.1, "batch_size": 32, "epochs": 40,
                        "early_stopping": "loss_recall", "patience": 5},
    # Document 001, section 3.2 and table 1: continuous (TC) and regular-evaluation (TR) modes.
    "cells-continuous": {"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-5,
                         "scheduler": "none", "batch_size": 16, "epochs": 4},
    "cells-continuous:resnet34": {"lr": 1e-3, "batch_size": 4, "epochs": 2},
    "cells-continuous:alexnet": {"epochs": 16},
    "cells-regular": {"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-5, "scheduler": "none",
                      "batch_size": 16, "epochs": 4, "early_stopping": "regular_evaluation",
                      "eval_every": 4, "target_accuracy": 0.96, "early_stop_limit": 48,
                      "refresh_fraction": 0.3, "val_shards": 8},
    "cells-regular:resnet34": {"lr": 1e-3, "batch_size": 4, "epochs": 4, "early_stop_limit": 24,
                               "refresh_fraction": 0.4},
    "cells-regular:alexnet": {"epochs": 16},
    # Document 003, section 4.2, table 3 (CRC column): Adam, weighted CE, flips and rotations,
    # patience 7. The rotation range is not given; salbench uses 15 degrees.
    "cam": {"optimizer": "adam", "lr": 1e-4, "scheduler": "none", "batch_size": 256,
            "epochs": 22, "class_weights": "balanced", "early_stopping": "loss_recall",
            "patience": 7, "augment": {"hflip": True, "vflip": True, "rotation_degrees": 15}},
    # Document 004, section 6: support regression models, Adam lr 4e-5, 10 epochs, MSE.
    "gad-support": {"optimizer": "adam", "lr": 4e-5, "scheduler": "none", "epochs": 10,
                    "loss": "mse", "batch_size": 32},
}


def preset(name: str, arch: str | None = None, **overrides) -> TrainConfig:
    """The ``TrainConfig`` of a named regime (``PRESETS``), with per-architecture values applied."""
    if name not in PRESETS or ":" in name:
        names = sorted(n for n in PRESETS if ":" not in n)
        raise ValueError(f"preset must be one of {names}, got {name!r}")
    values = dict(PRESETS[name])
    if arch is not None:
        values |= PRESETS.get(f"{name}:{arch}", {})
    values |= overrides
    return TrainConfig.parse(values)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; ``result`` holds the history up to the last good epoch."""

    def __init__(self, message: str, result: FitResult) -> None:
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class FitResult:
    """What ``fit`` did. ``history``: one dict per validation (epoch end, or every ``eval_every``
    steps in regular-evaluation mode); ``stop_reason``: ``"epochs"``, ``"patience"``,
    ``"target_accuracy"``, ``"early_stop_limit"`` or ``"diverged"``; ``val_scores``: scores of the
    returned model on the full validation set (``classification_scores``, or ``{"mse": …}``)."""

    history: list[dict]
    stop_reason: str
    epochs_run: int
    steps: int
    best_epoch: int | None
    train_seconds: float
    images_seen: int
    val_scores: dict[str, float]
    config: dict

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.train_seconds if self.train_seconds > 0 else float("nan")


# ---------------------------------------------------------------------------- early stopping


class LossRecallStopping:
    """Document 003, section 4.2: an epoch improves when the validation loss decreased below its
    best or the monitored classes' mean recall rose above its best; training stops after
    ``patience`` epochs in a row without improvement. ``recall=None`` watches the loss only."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_loss = math.inf
        self.best_recall = -math.inf
        self.counter = 0
        self.improved = False

    def update(self, val_loss: float, recall: float | None = None) -> bool:
        """Record one epoch; return ``True`` when training should stop."""
        better_loss = val_loss < self.best_loss
        better_recall = recall is not None and recall > self.best_recall
        self.best_loss = min(self.best_loss, val_loss)
        if recall is not None:
            self.best_recall = max(self.best_recall, recall)
        self.improved = better_loss or better_recall
        self.counter = 0 if self.improved else self.counter + 1
        return self.counter >= self.patience


class RegularEvaluationStopping:
    """Document 001, section 3.2. Per validation on one shard with accuracy ``a``:

    - ``a > target`` and the full validation accuracy (``full_accuracy()``) ``>= target``: stop
      (``"target_accuracy"``); if the full set does not confirm, the rules below apply;
    - ``a`` improves on the best shard accuracy so far: ``n_early <- n_early * r_f``;
    - otherwise ``n_early <- n_early + 1``; stop (``"early_stop_limit"``) when ``n_early >= n_l``.
    """

    def __init__(self, target_accuracy: float, limit: float, refresh_fraction: float) -> None:
        self.target = target_accuracy
        self.limit = limit
        self.refresh_fraction = refresh_fraction
        self.n_early = 0.0
        self.best = -math.inf
        self.confirmed_accuracy: float | None = None

    def update(self, shard_accuracy: float, full_accuracy: Callable[[], float]) -> str:
        """Record one shard validation; return ``"continue"`` or the stop reason."""
        if shard_accuracy > self.target:
            self.confirmed_accuracy = full_accuracy()
            if self.confirmed_accuracy >= self.target:
                return "target_accuracy"
        if shard_accuracy > self.best:
            self.best = shard_accuracy
            self.n_early *= self.refresh_fraction
        else:
            self.n_early += 1
        return "early_stop_limit" if self.n_early >= self.limit else "continue"


# ---------------------------------------------------------------------------- data


class _Batches:
    """Batches ``(x, y)`` on ``device`` from tensors (indexed directly) or any Dataset (DataLoader).

    Dataset items may be ``(x, y)`` or ``(x, y, mask, ...)``; extra elements are ignored.
    """

    def __init__(self, data, batch_size: int, device: torch.device, num_workers: int = 0) -> None:
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers
        tensors = _tensors_of(data)
        if tensors is not None:
            x, y = tensors
            if device.type == "cuda" and x.numel() * x.element_size() < 2**32:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            self.x, self.y, self.dataset = x, y, None
        else:
            self.x = self.y = None
            self.dataset = data
        self.n = len(self.x) if self.x is not None else len(data)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def labels(self) -> torch.Tensor:
        if self.y is not None:
            return self.y
        return torch.stack([torch.as_tensor(self.dataset[i][1]) for i in range(self.n)])

    def iterate(self, shuffle: bool = False, generator: torch.Generator | None = None,
                indices: np.ndarray | None = None):
        order = torch.arange(self.n) if indices is None else torch.as_tensor(indices)
        if shuffle:
            order = order[torch.randperm(len(order), generator=generator)]
        if self.x is not None:
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                if self.x.device.type == "cpu" and indices is None and not shuffle:
                    xb, yb = self.x[start:start + len(idx)], self.y[start:start + len(idx)]
                else:
                    idx = idx.to(self.x.device)
                    xb, yb = self.x[idx], self.y[idx]
                yield (xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True))
            return
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=order.tolist(),
                            num_workers=self.num_workers, pin_memory=self.device.type == "cuda")
        for batch in loader:
            yield (batch[0].to(self.device, non_blocking=True),
                   batch[1].to(self.device, non_blocking=True))


def _tensors_of(data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(x, y)`` tensors when ``data`` holds them in memory (tuple, TensorDataset,
    ``.x``/``.y``)."""
    if isinstance(data, (tuple, list)):
        if len(data) < 2 or not all(isinstance(t, torch.Tensor) for t in data[:2]):
            raise ValueError("data given as a tuple must be (x, y) or (x, y, masks) tensors")
        x, y = data[0], data[1]
    elif isinstance(data, TensorDataset):
        x, y = data.tensors[0], data.tensors[1]
    elif isinstance(getattr(data, "x", None), torch.Tensor) and isinstance(
            getattr(data, "y", None), torch.Tensor):
        x, y = data.x, data.y
    elif isinstance(data, Dataset):
        return None
    else:
        raise TypeError("data must be a torch Dataset yielding (x, y[, mask]) or a tuple of "
                        f"tensors (x, y[, masks]), got {type(data).__name__}")
    if x.ndim != 4 or len(y) != len(x):
        raise ValueError(f"data x must be [N, C, H, W] and y have N rows; got x "
                         f"{tuple(x.shape)}, y {tuple(y.shape)}")
    return x, y


# ---------------------------------------------------------------------------- augmentation


def augment_batch(x: torch.Tensor, config: AugmentConfig,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random flips (probability 0.5 each) and rotations of each image of ``x [B, C, H, W]``."""
    b = x.shape[0]
    if config.hflip:
        flip = torch.rand(b, device=x.device, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if config.vflip:
        flip = torch.rand(b, device=x.device, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-2), x)
    if config.rotation_degrees > 0:
        u = torch.rand(b, device=x.device, generator=generator)
        angle = (2 * u - 1) * math.radians(config.rotation_degrees)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1),
                             torch.stack([sin, cos, zero], 1)], 1).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x


# ---------------------------------------------------------------------------- evaluation


def _autocast(device: torch.device, bf16: bool):
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last:  # only for image batches (_probe)
        return x.contiguous(memory_format=torch.channels_last)
    return x


def predict(model: nn.Module, data, batch_size: int = 64,
            device: str | torch.device | None = None, bf16: bool = False,
            indices: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Model outputs ``[N, K]`` (float32, CPU) and targets for ``data`` in eval mode.

    ``data`` as for ``fit``; ``indices`` restricts to those samples; ``device``: where the batches
    go (default: the model's device). The model's mode is restored. bf16 autocast only on CUDA
    and only when asked (scores are reported in full precision).
    """
    if device is None:
        device = next(model.parameters()).device
    device = resolve_device(device)
    batches = data if isinstance(data, _Batches) else _Batches(data, batch_size, device)
    was_training = model.training
    model.eval()
    outs, targets = [], []
    try:
        with torch.inference_mode(), _autocast(device, bf16):
            for xb, yb in batches.iterate(indices=indices):
                outs.append(model(xb).float().cpu())
                targets.append(yb.cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs), torch.cat(targets)


def evaluate(model: nn.Module, data, batch_size: int = 64,
             device: str | torch.device | None = None) -> dict[str, float]:
    """``classification_scores`` of ``model`` on ``data`` (accuracy, balanced accuracy, …)."""
    outputs, targets = predict(model, data, batch_size, device)
    return classification_scores(outputs, targets)


# ---------------------------------------------------------------------------- fit


def _loss_function(config: TrainConfig, labels: torch.Tensor, num_outputs: int,
                   device: torch.device) -> nn.Module:
    if config.loss == "mse":
        if not labels.dtype.is_floating_point:
            raise ValueError("loss='mse' needs float regression targets y [N, K]; got integer "
                             "class labels")
        return nn.MSELoss()
    if labels.dtype.is_floating_point or labels.ndim != 1:
        raise ValueError(f"loss='cross_entropy' needs integer class labels y [N]; got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= num_outputs:
        raise ValueError(f"class labels must lie in [0, {num_outputs}) for a model with "
                         f"{num_outputs} outputs; got {int(labels.min())}..{int(labels.max())}")
    weight = None
    if config.class_weights == "balanced":  # w_k = N / (K * N_k)
        counts = torch.bincount(labels.cpu(), minlength=num_outputs).double()
        weight = (len(labels) / (num_outputs * counts.clamp(min=1))).float()
    elif isinstance(config.class_weights, list):
        if len(config.class_weights) != num_outputs:
            raise ValueError(f"class_weights has {len(config.class_weights)} values; the model "
                             f"has {num_outputs} classes")
        weight = torch.tensor(config.class_weights, dtype=torch.float32)
    return nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device))


def _freeze_frozen_batchnorm(model: nn.Module) -> None:
    """Batch norms whose parameters are all frozen keep their running statistics (eval mode)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                m.eval()


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _probe(model: nn.Module, batches: _Batches, channels_last: bool) -> tuple[int, bool]:
    """The model's number of outputs, from one sample in eval mode, and whether it trains in the
    channels-last layout: asked for, an image batch, and a forward pass in it that works (the
    model is left in the layout it trains in)."""
    for xb, _ in batches.iterate():
        was_training = model.training
        model.eval()
        channels_last = channels_last and xb.dim() == 4
        with torch.no_grad():
            if channels_last:
                model.to(memory_format=torch.channels_last)
                try:
                    out = model(_to_input(xb[:1], True))
                except RuntimeError:
                    channels_last = False
                    model.to(memory_format=torch.contiguous_format)
            if not channels_last:
                out = model(xb[:1])
        model.train(was_training)
        return out.shape[1], channels_last
    raise ValueError("train data is empty")


def _validate(model, batches, loss_fn, config, device, indices=None) -> dict[str, float]:
    outputs, targets = predict(model, batches, device=device, indices=indices)
    loss = float(loss_fn(outputs.to(device), targets.to(device)))
    if config.loss == "mse":
        return {"val_loss": loss}
    pred = outputs.argmax(1)
    recall = per_class_recall(pred, targets, outputs.shape[1])
    monitored = recall if config.monitored_classes is None else recall[config.monitored_classes]
    monitored = monitored[~monitored.isnan()]
    return {"val_loss": loss, "val_accuracy": float((pred == targets).double().mean()),
            "monitored_recall": float(monitored.mean()) if len(monitored) else float("nan")}


def fit(model: nn.Module, train, val=None, config: TrainConfig | None = None) -> FitResult:
    """Train ``model`` in place on ``train``, validating on ``val``; return a ``FitResult``.

    ``train``/``val``: a torch Dataset yielding ``(x, y)`` or ``(x, y, mask)`` (the data stage's
    ``GroundTruthDataset``), or a tuple of tensors ``(x [N,C,H,W], y [N] or [N,K][, masks])``.
    ``val`` may be ``None`` only without early stopping. Only parameters with ``requires_grad``
    are optimised (see ``freeze_for_degree``); frozen batch norms keep their statistics. The global
    RNGs are seeded with ``config.seed`` first (``seed_everything``). In regular-evaluation mode the
    validation set is cut into ``val_shards`` contiguous shards (the cells data's own shards when it
    is stored shard by shard). The model ends on the training device, in eval mode, with
    contiguous (not channels-last) parameters.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if val is None and config.early_stopping != "none":
        raise ValueError(f"early_stopping={config.early_stopping!r} needs validation data (val)")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (all requires_grad=False)")
    device = resolve_device(config.device)
    seed_everything(config.seed)
    train_batches = _Batches(train, config.batch_size, device, config.num_workers)
    val_batches = None if val is None else _Batches(val, config.batch_size, device,
                                                    config.num_workers)
    if train_batches.n == 0:
        raise ValueError("train data is empty")
    model.to(device)
    num_outputs, channels_last = _probe(model, train_batches,
                                        config.channels_last and device.type == "cuda")
    loss_fn = _loss_function(config, train_batches.labels(), num_outputs, device)

    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
                 if config.scheduler == "step" else None)
    shuffle_gen = torch.Generator().manual_seed(derive_seed(config.seed, "shuffle"))
    aug_gen = torch.Generator(device=device).manual_seed(derive_seed(config.seed, "augment"))
    shard_gen = np.random.default_rng(derive_seed(config.seed, "val-shards"))

    loss_recall = LossRecallStopping(config.patience)
    regular = RegularEvaluationStopping(config.target_accuracy, config.early_stop_limit,
                                        config.refresh_fraction)
    shards = (None if val_batches is None else
              np.array_split(np.arange(val_batches.n), min(config.val_shards, val_batches.n)))
    history: list[dict] = []
    last_good = _snapshot(model)
    best_state, best_epoch = None, None
    stop_reason, steps, seen, train_seconds, epoch = "epochs", 0, 0, 0.0, 0
    check_every_step = device.type == "cpu"

    def result(reason: str, val_scores: dict) -> FitResult:
        return FitResult(history, reason, epoch, steps, best_epoch, train_seconds, seen,
                         val_scores, config.model_dump(mode="json"))

    def diverged(where: str) -> TrainingDivergedError:
        model.load_state_dict(last_good)
        model.eval()
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
        return TrainingDivergedError(
            f"loss became NaN or infinite at {where} (lr={optimizer.param_groups[0]['lr']:g}); "
            f"training stopped and the model was restored to its last good weights (end of "
            f"epoch {epoch - 1}); try a lower learning rate", result("diverged", {}))

    for epoch in range(1, config.epochs + 1):
        model.train()
        _freeze_frozen_batchnorm(model)
        running = torch.zeros((), device=device)
        count = 0
        start = time.perf_counter()
        stop = None
        batches = train_batches.iterate(shuffle=True, generator=shuffle_gen)
        for xb, yb in track(batches, f"epoch {epoch}/{config.epochs}", total=len(train_batches)):
            if config.augment.active:
                xb = augment_batch(xb, config.augment, aug_gen)
            xb = _to_input(xb, channels_last)
            with _autocast(device, config.bf16):
                out = model(xb)
            loss = loss_fn(out.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if check_every_step and not torch.isfinite(loss):
                raise diverged(f"epoch {epoch}, step {steps + 1}")
            optimizer.step()
            steps += 1
            running += loss.detach() * len(xb)
            count += len(xb)
            if config.early_stopping == "regular_evaluation" and steps % config.eval_every == 0:
                train_seconds += time.perf_counter() - start
                shard = shards[int(shard_gen.integers(len(shards)))]
                row = _validate(model, val_batches, loss_fn, config, device, indices=shard)

                def full_accuracy(row: dict = row) -> float:
                    full = _validate(model, val_batches, loss_fn, config, device)
                    row["full_val_accuracy"] = full["val_accuracy"]
                    return full["val_accuracy"]

                decision = regular.update(row["val_accuracy"], full_accuracy)
                history.append({"epoch": epoch, "step": steps, **row, "n_early": regular.n_early})
                model.train()
                _freeze_frozen_batchnorm(model)
                start = time.perf_counter()
                if decision != "continue":
                    stop = decision
                    break
        train_seconds += time.perf_counter() - start
        seen += count
        train_loss = float(running) / max(count, 1)
        if not math.isfinite(train_loss):
            raise diverged(f"epoch {epoch}")
        if stop is not None:
            stop_reason = stop
            break
        if config.early_stopping != "regular_evaluation":
            row = {"epoch": epoch, "step": steps, "train_loss": train_loss,
                   "lr": optimizer.param_groups[0]["lr"]}
            if val_batches is not None:
                row |= _validate(model, val_batches, loss_fn, config, device)
            history.append(row)
            if config.early_stopping == "loss_recall":
                recall = row.get("monitored_recall")
                stop_now = loss_recall.update(row["val_loss"],
                                              None if recall is None else recall)
                if loss_recall.improved:
                    best_epoch = epoch
                    if config.restore_best:
                        best_state = _snapshot(model)
                if stop_now:
                    stop_reason = "patience"
                    break
        last_good = _snapshot(model)
        if scheduler is not None:
            scheduler.step()

    if best_state is not None and stop_reason == "patience":
        model.load_state_dict(best_state)
    model.eval()
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    val_scores = {}
    if val_batches is not None:
        if config.loss == "mse":
            val_scores = {"mse": _validate(model, val_batches, loss_fn, config, device)["val_loss"]}
        else:
            outputs, targets = predict(model, val_batches, device=device)
            val_scores = classification_scores(outputs, targets)
    return result(stop_reason, val_scores)
