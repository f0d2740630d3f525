"""The cam-faithfulness config and presets (document 003)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from salbench.config import Config
from salbench.metrics import AOPC_REGION_SIZES, TABLE_6
from salbench.models.zoo import imagenet_weights_path
from salbench.studies.specs import DataSpec

DOCUMENT_SIZE = 224  # document 003, section 4.2: images resized to 224 × 224
DOCUMENT_RANGE = (-1.0, 1.0)  # document 003, section 4.2: images scaled to [−1, 1]
ARCHS = ("vgg19", "resnet34", "resnet50")  # document 003, section 4.2
HEADS = ("conv_flatten_fc", "gap_fc")  # section 4.2 and the CAM architecture (section 2.1.1)
LAYER_CHOICES = ("last", "last_conv2d", "earlier")

Arch = Literal["vgg19", "vgg19_bn", "resnet34", "resnet50"]
LayerChoice = Literal["last", "last_conv2d", "earlier"]


class FolderData(Config):
    """A user's images, ``root/<class>/<image>`` (optionally ``root/{train,val,test}/...``), read by
    :func:`salbench.data.folders.load_folder`, resized to ``size`` px (CRC, HAM10000, Covid-19
    radiography, BreakHis as the document used them; section 4.1)."""

    root: str
    masks: str | None = None
    size: int = Field(DOCUMENT_SIZE, ge=32)
    channels: Literal[1, 3] = 3
    split_seed: int = Field(0, ge=0)


class CamSettings(Config):
    """How Grad-CAM / HiResCAM maps are made for the metrics. ``layer``: ``last`` = the feature
    maps entering the head (VGG: the last conv layer; ResNet: the last block's output), the
    setting of proposition 4. ``relu`` and ``minmax`` (per-sample scaling to [0, 1]) are
    pytorch-grad-cam's post-processing, which the document's public code used (its
    max-sensitivity values of 20–100 on 224 × 224 maps imply maps in [0, 1])."""

    layer: LayerChoice = "last"
    relu: bool = True
    minmax: bool = True


class Table1Settings(Config):
    """The measured table 1: ``n_samples`` test images per model, the ``layers`` compared,
    untrained models with torchvision's classifier head of ``dense_archs`` for the Dense row (the
    identities of section 3 hold for any weights), and the ``tolerance`` under which a relative
    error counts as zero. The Dense-row models get biases drawn from N(0, ``dense_bias_std``²):
    torchvision initialises VGG biases at 0, and a bias-free ReLU network is positively
    homogeneous, so HiResCAM (gradient ⊙ activation) would sum to the logit at *every* layer
    (Euler's theorem); ``dense_bias_std = 0`` measures that case."""

    n_samples: int = Field(8, ge=1)
    layers: list[LayerChoice] = Field(default_factory=lambda: list(LAYER_CHOICES))
    dense_archs: list[Arch] = Field(default_factory=lambda: ["vgg19"])
    tolerance: float = Field(1e-4, gt=0, lt=1)
    dense_bias_std: float = Field(0.1, ge=0)


class CamFaithfulnessConfig(Config):
    """The cam-faithfulness study (document 003); ``docs/studies/cam-faithfulness.md`` gives each
    key's source. ``heads``: the ModelSpec heads trained (``conv_flatten_fc``, ``gap_fc``).
    ``weights``: a state-dict file every model starts from; ``imagenet_init``: torchvision's
    ImageNet weights when the model is full width and the file is in the local torch cache
    (section 4.2 fine-tunes ImageNet models), else random initialisation (:func:`initial_weights`).
    ``memory_budget``: bytes per model call of AOPC and max-sensitivity (None: the metrics'
    default). ``aopc_noise``: AOPC's uniform noise drawn afresh at every step (``per-step``,
    section 4.3) or once per image (``per-image``, the public code; ``salbench.metrics.aopc``).
    ``accuracy_gate``: the test balanced accuracy every trained model must reach before its AOPC,
    max-sensitivity and HAAS count (issue 12: 0.80); ``metric_tolerance``: the relative
    Grad-CAM–HiResCAM difference of a metric value counted as none on GAP heads; ``haas_margin``:
    the HAAS difference under which HAAS "favours neither" method (findings.py)."""

    seed: int = Field(0, ge=0)
    data: DataSpec
    folder: FolderData | None = None
    normal_classes: list[str] = Field(default_factory=lambda: ["NoCell"])
    archs: list[Arch] = Field(default_factory=lambda: list(ARCHS))
    heads: list[Literal["conv_flatten_fc", "gap_fc"]] = Field(default_factory=lambda: list(HEADS))
    width: float = Field(1.0, gt=0, le=1)
    weights: str | None = None
    imagenet_init: bool = False
    train: dict[str, Any] = Field(default_factory=lambda: {"preset": "cam"})
    train_per_arch: dict[str, dict[str, Any]] = Field(default_factory=dict)
    degree: str | None = None
    input_range: tuple[float, float] = (0.0, 1.0)
    cam: CamSettings = Field(default_factory=CamSettings)
    table1: Table1Settings = Field(default_factory=Table1Settings)
    aopc_regions: list[int] = Field(default_factory=lambda: list(AOPC_REGION_SIZES))
    aopc_noise: Literal["per-step", "per-image"] = "per-step"
    sensitivity: list[tuple[float, int]] = Field(default_factory=lambda: list(TABLE_6))
    n_samples: int = Field(ge=1)
    n_haas: int = Field(ge=1)
    gallery: int = Field(2, ge=0)
    memory_budget: int | None = Field(None, gt=0)
    accuracy_gate: float = Field(0.8, gt=0, le=1)
    metric_tolerance: float = Field(1e-3, gt=0, lt=1)
    haas_margin: float = Field(0.05, gt=0, lt=1)


def initial_weights(config: CamFaithfulnessConfig, arch: str) -> str | None:
    """The weights a model starts from: ``weights`` when set, else ``"imagenet"`` when
    ``imagenet_init`` asks for it, the model is full width and torchvision's file is in the local
    cache (document 003, section 4.2), else ``None`` (random initialisation)."""
    if config.weights is not None:
        return config.weights
    if config.imagenet_init and config.width == 1 and imagenet_weights_path(arch).is_file():
        return "imagenet"
    return None


def _data(n: int, size: int, shard_size: int, **params) -> dict:
    return {"kind": "cells", "n": n, "size": size,
            "params": {"shard_size": shard_size, **params}}


# The tiny and small presets draw four cell classes (round, rectangular, eight-tailed, no cell):
# models trained from scratch on CPU learn them (small: balanced accuracy 0.96-0.99 measured in
# probes), not the ten (ResNet-34 0.78 after 20 epochs on 3600 images); four classes like the
# Covid-19 radiography data. The ten-class labels are kept.
STAND_IN_CLASSES = ["CCell", "RCell", "CCellT8", "NoCell"]
SMALL_MEMORY_BUDGET = 256 * 2**20  # AOPC and max-sensitivity: 4x faster than the default on CPU

PRESETS = {
    # CPU minutes: 64 px cells (ResNet feature maps 2×2, VGG 4×4), width 1/16, four epochs
    # without augmentation; every factor of the document is kept (3 archs × 2 heads, 4 AOPC region
    # sizes, 6 radii) with few samples and iterations.
    "tiny": {"data": _data(384, 64, 8, classes=STAND_IN_CLASSES), "width": 0.0625,
             "train": {"preset": "cam", "epochs": 4, "batch_size": 32, "lr": 3e-3,
                       "patience": 2, "augment": {}},
             "table1": {"n_samples": 4},
             "sensitivity": [(r, 2) for r, _ in TABLE_6], "n_samples": 2, "n_haas": 32,
             "gallery": 1},
    # 2 CPU cores, about 30 minutes; models that pass the 0.80 balanced-accuracy gate: 128 px
    # (ResNet feature maps 4×4, VGG 8×8), width 1/4, four classes, 1200 cells (800 train,
    # 200 test), VGG-19 with batch norm for VGG-19 (without it VGG does not learn from scratch),
    # Adam 1e-3 with a step schedule (the cam preset's 1e-4 is for fine-tuning ImageNet weights),
    # epochs per architecture (ResNet-50 learns slowest, VGG-19-BN fastest); every factor of the
    # document: 4 heatmap sizes, table 6's radii and iterations; 20 images per model for AOPC and
    # max-sensitivity, every test image for HAAS.
    "small": {"data": _data(1200, 128, 50, classes=STAND_IN_CLASSES), "width": 0.25,
              "archs": ["vgg19_bn", "resnet34", "resnet50"],
              "train": {"preset": "cam", "epochs": 15, "batch_size": 64, "lr": 1e-3,
                        "scheduler": "step", "step_size": 7, "gamma": 0.3},
              "train_per_arch": {"resnet50": {"epochs": 20, "step_size": 10},
                                 "vgg19_bn": {"epochs": 10, "step_size": 5}},
              "table1": {"n_samples": 16}, "n_samples": 20, "n_haas": 200, "gallery": 2,
              "memory_budget": SMALL_MEMORY_BUDGET},
    # Document 003: 224 px (section 4.2; ResNet 7×7, VGG 14×14), full widths, table 3's CRC
    # column (preset "cam": Adam lr 1e-4, batch 256, 22 epochs, patience 7, flips and rotations),
    # region sizes 56/28/21/16 (section 4.3), table 6, every test image (AOPC on the correctly
    # classified ones, section 2.2.1; NOTES.md). 9600 cells = 48 shards of 200 (document 001).
    # ImageNet initialisation where the user has torchvision's files (section 4.2); AOPC noise
    # drawn afresh at every step (section 4.3).
    "paper": {"data": _data(9600, 224, 200), "width": 1.0, "train": {"preset": "cam"},
              "imagenet_init": True, "aopc_noise": "per-step",
              "table1": {"n_samples": 64}, "n_samples": 1600, "n_haas": 1600, "gallery": 4},
}
