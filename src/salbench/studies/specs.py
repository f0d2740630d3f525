"""What a study config names: datasets, training regimes, methods and metrics.

Models are :class:`salbench.models.ModelSpec` (``arch``, ``width``, ``head``, ``weights``; the
data fill in classes, channels and size).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from salbench.config import Config
from salbench.explain import get_method
from salbench.metrics import get_metric
from salbench.models.training import preset


class DataSpec(Config):
    """A dataset of the run: generated (``mri_lesions``, ``mri_lesion_free``, ``cells``: ``n``
    samples of ``size`` px from ``seed``, generator ``params``) or a user's image ``folder``
    (``params``: ``root`` and the other arguments of ``salbench.data.folders.load_folder``; ``n``
    is then ignored and ``size`` is the side images are resized to)."""

    kind: Literal["mri_lesions", "mri_lesion_free", "cells", "folder"]
    n: int = Field(gt=0)
    size: int = Field(gt=0)
    seed: int = Field(0, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)


def check_training(value: dict[str, Any]) -> dict[str, Any]:
    """A training entry is ``{"preset": NAME, **TrainConfig overrides}``; a ValueError naming the
    problem if not (used as a pydantic field validator by the study configs)."""
    if not isinstance(value, dict) or "preset" not in value:
        raise ValueError("must name a training preset, e.g. {preset: mri, epochs: 10}")
    overrides = {k: v for k, v in value.items() if k != "preset"}
    try:
        preset(value["preset"], **overrides)
    except Exception as err:
        raise ValueError(str(err).splitlines()[0]) from None
    return value


class MethodSpec(Config):
    """An attribution method by registry name, its parameters, the named post-processing
    (``absolute``), the ``label`` it is stored under (default: the name) and the ``factors`` it
    adds to every result row (a study's varied method settings, e.g. the CAM layer choice)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    absolute: bool = False
    label: str | None = None
    factors: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        get_method(name)  # ValueError naming the registered methods
        return name

    @property
    def key(self) -> str:
        return self.label or self.name


class MetricSpec(Config):
    """A registered metric (``salbench metrics`` lists them) and its parameters. ``factors``: the
    columns its rows get; by default every scalar parameter set here (so ``region=14`` of AOPC
    or ``order="lrf"`` of region perturbation can be queried as columns). ``methods``: the method
    keys it scores (default: all; e.g. the costly randomisation test on a few)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    factors: dict[str, Any] | None = None
    methods: list[str] | None = None

    def applies_to(self, method: MethodSpec) -> bool:
        return self.methods is None or method.key in self.methods

    @model_validator(mode="after")
    def _registered(self) -> Self:
        get_metric(self.name).resolve(self.params)  # unknown metric or parameter: an error
        return self

    def row_factors(self) -> dict[str, Any]:
        if self.factors is not None:
            return dict(self.factors)
        return {k: v for k, v in self.params.items() if isinstance(v, (bool, int, float, str))}


def digest(value: Any, length: int = 10) -> str:
    """A short stable hash of a JSON-able value (folder names of datasets)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
