"""The ``gad`` study's config and presets (document 004, section 6).

One class pair of one dataset (default: CCell vs RCell of the embedded cells data, RGB);
VGG-16 and ResNet-18 trained on it; support regressions for
α = 0, 2, 4, 6, 8; five base methods (Saliency S, Deconvolution D, Gradient x Input GxI, Guided
Backprop GB, Integrated Gradients IG), each on its own (signed) map; 256 test images per class;
convex hulls of the most important half of the pixels.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from salbench.config import Config
from salbench.data import cells
from salbench.explain.gad import GAD_ALPHAS, IMPORTANCE_RULES
from salbench.models import ModelSpec
from salbench.studies.specs import DataSpec, MethodSpec, check_training

METRICS = ("complexity_ratio", "hull_sensitivity", "supplementary_sensitivity")
"""Section 5, as registered metrics with the GAD map as ``a`` and the base method's map as
``reference``: RC = A(CH_GAD) / A(CH_Orig) (eq. 1), RS(I, M_GAD, a) and RS(I, M_Orig − M_GAD, a)
(eq. 2)."""
ACCURACY_GATES = {"mri_lesions": 0.90, "cells": 0.80}
"""Issue 12's test-accuracy gates per data kind; other data (a user's folder) get
:data:`DEFAULT_GATE`. Document 004 reports no accuracy."""
DEFAULT_GATE = 0.80
# Section 6: the five base methods and the labels of tables 1-2.
PAPER_METHODS = [{"name": "saliency", "label": "S"}, {"name": "deconvolution", "label": "D"},
                 {"name": "input_x_gradient", "label": "GxI"},
                 {"name": "guided_backprop", "label": "GB"},
                 {"name": "integrated_gradients", "label": "IG"}]


ADAM = {"preset": "mri", "optimizer": "adam", "lr": 1e-3, "scheduler": "none"}
"""Classifier training (document 004 describes none): Adam, lr 1e-3, no decay, batch 32, up to 40
epochs with document 000's early stopping (patience 5): what learns from scratch here (NOTES.md;
the study page's probes)."""
CELL_PAIR = [0, 3]
"""The default class pair: CCell vs RCell, a round and a rectangular cell of the embedded cells
data (RGB, so RC ≤ 1 is not structural; see the study page), the two-class stand-in for the
document's cats vs dogs and warblers vs sparrows."""


class GADConfig(Config):
    """Config of the ``gad`` study; each field cites the document section it follows."""

    seed: int = Field(0, ge=0)
    data: DataSpec = Field(default_factory=lambda: DataSpec(
        kind="cells", n=4000, size=224, params={"classes": CELL_PAIR}))
    classes: list[int] = Field(default_factory=lambda: list(CELL_PAIR))  # 4.1: one class pair
    models: list[ModelSpec] = Field(  # section 6: VGG16 and ResNet18
        default_factory=lambda: [ModelSpec(arch="vgg16"), ModelSpec(arch="resnet18")])
    # Training of the classifiers to explain (not described in document 004): ADAM.
    train: dict = Field(default_factory=lambda: dict(ADAM))
    alphas: list[float] = Field(default_factory=lambda: list(GAD_ALPHAS))  # section 6
    # Section 6: support regressions trained 10 epochs with Adam, lr 4e-5, MSE (the training
    # preset "gad-support"); keys override fields of salbench.models.training.TrainConfig.
    support: dict = Field(default_factory=dict)
    methods: list[MethodSpec] = Field(
        default_factory=lambda: [MethodSpec.parse(m) for m in PAPER_METHODS])
    n_per_class: int = Field(256, gt=0)  # section 6: 512 images, 256 per class
    keep: float = Field(0.5, gt=0, le=1)  # section 6: hulls of the most important half
    # Section 4.3 leaves "important" open: explain.gad's default (top half of |a| features).
    importance: str = "top_fraction"
    threshold: float = Field(0.5, gt=0, le=1)
    gallery: int = Field(5, ge=0)  # section 6.4: the five least activated images per class
    # Test accuracy every model must reach before its maps count in a finding; None: the gate of
    # the data kind (ACCURACY_GATES).
    accuracy_gate: float | None = Field(None, gt=0, le=1)

    @property
    def gate_threshold(self) -> float:
        """The accuracy gate in force: ``accuracy_gate``, else the data kind's."""
        if self.accuracy_gate is not None:
            return self.accuracy_gate
        return ACCURACY_GATES.get(self.data.kind, DEFAULT_GATE)

    @field_validator("classes")
    @classmethod
    def _pair(cls, value: list[int]) -> list[int]:
        if len(value) != 2 or value[0] == value[1] or min(value) < 0:
            raise ValueError(f"must be two different class indices, got {value}")
        return value

    @field_validator("train")
    @classmethod
    def _train(cls, value: dict) -> dict:
        return check_training(value)

    @field_validator("support")
    @classmethod
    def _support(cls, value: dict) -> dict:
        check_training({"preset": "gad-support", **value})
        return value

    @field_validator("importance")
    @classmethod
    def _importance(cls, value: str) -> str:
        if value not in IMPORTANCE_RULES:
            raise ValueError(f"must be one of {list(IMPORTANCE_RULES)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _non_empty(self) -> Self:
        for name in ("models", "alphas", "methods"):
            if not getattr(self, name):
                raise ValueError(f"{name} must hold at least one entry")
        return self

    @model_validator(mode="after")
    def _pair_is_drawn(self) -> Self:
        """Cells drawn from a subset of the ten classes (``data.params.classes``) must include
        the pair."""
        drawn = self.data.params.get("classes") if self.data.kind == "cells" else None
        if drawn is not None:
            indices = {cells.CLASSES.index(c) if c in cells.CLASSES else c for c in drawn}
            if not set(self.classes) <= indices:
                raise ValueError(f"classes {self.classes} must be among the cells drawn "
                                 f"(data.params.classes = {list(drawn)})")
        return self


TINY = {
    "data": {"kind": "cells", "n": 120, "size": 32, "params": {"classes": CELL_PAIR,
                                                               "shard_size": 10}},
    "models": [{"arch": "vgg16_bn", "width": 0.0625}, {"arch": "resnet18", "width": 0.125}],
    "train": {**ADAM, "epochs": 2, "early_stopping": "none"},
    "support": {"epochs": 1},
    "methods": [m if m["name"] != "integrated_gradients"
                else {**m, "params": {"n_steps": 8}} for m in PAPER_METHODS],
    "n_per_class": 4,
    "gallery": 2,
}
SMALL = {
    "data": {"kind": "cells", "n": 1200, "size": 64, "params": {"classes": CELL_PAIR,
                                                                "shard_size": 100}},
    "models": [{"arch": "vgg16_bn", "width": 0.25}, {"arch": "resnet18", "width": 0.5}],
    "train": {**ADAM, "epochs": 8},
    "support": {"epochs": 4},
    "methods": [m if m["name"] != "integrated_gradients"
                else {**m, "params": {"n_steps": 16}} for m in PAPER_METHODS],
    "n_per_class": 64,
}
PAPER: dict = {}  # the config's defaults are document 004's settings
PRESETS = {"tiny": TINY, "small": SMALL, "paper": PAPER}
