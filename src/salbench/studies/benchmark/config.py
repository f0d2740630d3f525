"""The benchmark of a user's own model on their own images: what to load and what to compute.

``preset`` chooses the methods and the costly parameters of the methods and metrics: ``fast``
(twelve methods, one or two per family; few integration steps and noisy copies, the square
flipping schedule on patches, five sensitivity perturbations) or ``full`` (every registered
method; the documents' settings: 50 integration steps, pixel flipping per pixel, table 6's
sensitivity iterations).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from salbench.config import Config
from salbench.studies.specs import MethodSpec, MetricSpec

PRESETS = ("fast", "full")
IMAGENET_NORMALISATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class ModelSource(Config):
    """The user's model: ``path`` (a salbench checkpoint, a torch.save'd module or state dict, a
    TorchScript file, or ``package.module:factory``), ``arch`` and ``num_classes`` for a state
    dict, ``normalize``: what the model expects of images in [0, 1] (``imagenet``: torchvision's
    mean/std, prepended as a layer so maps and perturbations stay in pixel space), and
    ``fingerprint``: size and modification time of the file, so a changed model reruns."""

    path: str
    arch: str | None = None
    num_classes: int | None = Field(None, ge=1)
    normalize: Literal["none", "imagenet"] = "none"
    fingerprint: str = ""


class DataSource(Config):
    """The user's images: ``path`` (a salbench dataset folder, an image folder
    ``root/<class>/<image>``, or an .npz with x, y, masks), an optional parallel ``masks`` folder,
    the ``size`` images are resized to (image folders; None keeps them) and ``channels``."""

    path: str
    masks: str | None = None
    size: int | None = Field(None, ge=8)
    channels: Literal[1, 3] = 3
    fingerprint: str = ""


class BenchmarkConfig(Config):
    """``methods`` / ``metrics``: ``None`` means every registered one that applies (the plan says
    which were skipped and why). ``n_samples``: explain at most that many images (default all).
    ``target``: explain the ``true`` class (the one the masks mark) or the ``predicted`` one."""

    seed: int = Field(0, ge=0)
    model: ModelSource
    data: DataSource
    preset: Literal["fast", "full"] = "fast"
    methods: list[MethodSpec] | None = None
    metrics: list[MetricSpec] | None = None
    n_samples: int | None = Field(None, ge=1)
    target: Literal["true", "predicted"] = "true"
    gallery: int = Field(4, ge=0)
