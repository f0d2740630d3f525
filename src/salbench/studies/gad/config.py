"""The ``gad`` study's config and presets (document 004, section 6).

One class pair of one dataset; VGG-16 and ResNet-18 trained on it; support regressions for
α = 0, 2, 4, 6, 8; five base methods (Saliency S, Deconvolution D, Gradient x Input GxI, Guided
Backprop GB, Integrated Gradients IG), each on its own (signed) map; 256 test images per class;
convex hulls of the most important half of the pixels.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from salbench.config import Config
from salbench.explain.gad import GAD_ALPHAS, IMPORTANCE_RULES
from salbench.models import ModelSpec
from salbench.studies.specs import DataSpec, MethodSpec, check_training

METRICS = ("complexity_ratio", "hull_sensitivity", "supplementary_sensitivity")
"""Section 5, as registered metrics with the GAD map as ``a`` and the base method's map as
``reference``: RC = A(CH_GAD) / A(CH_Orig) (eq. 1), RS(I, M_GAD, a) and RS(I, M_Orig − M_GAD, a)
(eq. 2)."""
# Section 6: the five base methods and the labels of tables 1-2.
PAPER_METHODS = [{"name": "saliency", "label": "S"}, {"name": "deconvolution", "label": "D"},
                 {"name": "input_x_gradient", "label": "GxI"},
                 {"name": "guided_backprop", "label": "GB"},
                 {"name": "integrated_gradients", "label": "IG"}]


class GADConfig(Config):
    """Config of the ``gad`` study; each field cites the document section it follows."""

    seed: int = Field(0, ge=0)
    data: DataSpec = Field(default_factory=lambda: DataSpec(kind="mri_lesions", n=4000, size=224))
    classes: list[int] = Field(default_factory=lambda: [0, 1])  # section 4.1: one class pair
    models: list[ModelSpec] = Field(  # section 6: VGG16 and ResNet18
        default_factory=lambda: [ModelSpec(arch="vgg16"), ModelSpec(arch="resnet18")])
    # Training of the classifiers to explain (not described in document 004; salbench uses the
    # MRI regime of document 000 on MRI data).
    train: dict = Field(default_factory=lambda: {"preset": "mri"})
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


TINY = {
    "data": {"kind": "mri_lesions", "n": 128, "size": 64, "params": {"slices_per_subject": 4}},
    "models": [{"arch": "vgg16", "width": 0.0625}, {"arch": "resnet18", "width": 0.125}],
    "train": {"preset": "mri", "epochs": 2, "early_stopping": "none"},
    "support": {"epochs": 1},
    "methods": [m if m["name"] != "integrated_gradients"
                else {**m, "params": {"n_steps": 8}} for m in PAPER_METHODS],
    "n_per_class": 4,
    "gallery": 2,
}
SMALL = {
    "data": {"kind": "mri_lesions", "n": 1200, "size": 128},
    "models": [{"arch": "vgg16", "width": 0.25}, {"arch": "resnet18", "width": 0.5}],
    "train": {"preset": "mri", "epochs": 15},
    "support": {"epochs": 5},
    "n_per_class": 64,
}
PAPER: dict = {}  # the config's defaults are document 004's settings
PRESETS = {"tiny": TINY, "small": SMALL, "paper": PAPER}
