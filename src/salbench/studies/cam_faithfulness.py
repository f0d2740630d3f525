"""Grad-CAM vs HiResCAM: faithfulness in theory and by the metrics (document 003).

VGG-19, ResNet-34 and ResNet-50 are trained in two head forms, *Conv – Flatten – Class scores*
(``to_conv_flatten_fc``, section 4.2) and *Conv – GAP – Class scores* (``to_gap_fc``, the CAM
architecture, section 2.1.1), with the document's regime (training preset ``cam``: Adam,
class-weighted cross-entropy, early stopping on validation loss and the recall of the monitored
classes, section 4.2). Table 1 (section 3) is *measured*: on test images, for each form and layer
choice, the distance between the raw Grad-CAM and HiResCAM maps and whether a raw map sums to the
class logit minus its bias (propositions 1–4). Grad-CAM and HiResCAM are then scored with AOPC at
four region sizes with uniform noise (section 4.3, table 5, fig. 14), max-sensitivity over the
radii of table 6 (section 4.4, fig. 15) and HAAS (section 4.5, table 7); table 10 sums up, and
figs. 16–18 plot balanced accuracy against each metric (section 4.6).

Data: the embedded ten-class synthetic cells by default (a multi-class problem, like CRC and
HAM10000); ``folder`` reads a user's CRC / HAM10000 / Covid-19 / BreakHis images instead.
Input range: salbench keeps images in [0, 1] and passes that range to the metrics (AOPC noise
U[0, 1], HAAS ``input_range``); max-sensitivity radii, given by the document on its [−1, 1] scale,
are multiplied by (high − low) / 2 so that a radius is the same fraction of the value range.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure as MplFigure
from pydantic import Field
from torch import Tensor, nn

from salbench.config import Config, ConfigError
from salbench.explain import cam_maps, preserved_model
from salbench.metrics import AOPC_REGION_SIZES, TABLE_6
from salbench.models import build, make_explainable, to_conv_flatten_fc, to_gap_fc
from salbench.report import Figure, Section, Table, figures
from salbench.results import read_results
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage, Study, register
from salbench.studies.common import (
    DataSpec,
    ModelSpec,
    build_model,
    checkpoint_path,
    load_dataset,
    load_model,
)

NAME = "cam-faithfulness"
COMMON = "salbench.studies.common:{}"
OWN = "salbench.studies.cam_faithfulness:{}"

DOCUMENT_SIZE = 224  # document 003, section 4.2: images resized to 224 × 224
DOCUMENT_RANGE = (-1.0, 1.0)  # document 003, section 4.2: images scaled to [−1, 1]
ARCHS = ("vgg19", "resnet34", "resnet50")  # document 003, section 4.2
FORMS = ("conv_flatten_fc", "gap_fc")
STRUCTURES = {"conv_flatten_fc": "Conv – Flatten – Class scores",
              "gap_fc": "Conv – GAP – Class scores",
              "torchvision": "Conv – GAP/Flatten – Dense – Class scores"}
FORM_SHORT = {"conv_flatten_fc": "flatten", "gap_fc": "gap", "torchvision": "dense"}
ARCH_LABELS = {"vgg16": "VGG-16", "vgg19": "VGG-19", "resnet18": "ResNet-18",
               "resnet34": "ResNet-34", "resnet50": "ResNet-50", "alexnet": "AlexNet"}
METHODS = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}
LAYER_CHOICES = ("last", "last_conv2d", "earlier")
# Document 003, table 1: (structure, gradients w.r.t. the last conv layer) -> (equivalent,
# the methods whose raw map sums to the class score). "last_conv2d" is not in the document.
DOCUMENT_TABLE_1 = {
    ("gap_fc", "last"): (True, ("Grad-CAM", "HiResCAM")),
    ("gap_fc", "earlier"): (False, ()),
    ("conv_flatten_fc", "last"): (False, ("HiResCAM",)),
    ("conv_flatten_fc", "earlier"): (False, ()),
    ("torchvision", "last"): (False, ()),
    ("torchvision", "earlier"): (False, ()),
}


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

    layer: Literal["last", "last_conv2d", "earlier"] = "last"
    relu: bool = True
    minmax: bool = True


class Table1Settings(Config):
    """The measured table 1: ``n_samples`` test images per model, the ``layers`` compared,
    untrained torchvision-head models of ``dense_archs`` for the Dense row (the identities of
    section 3 hold for any weights), and the ``tolerance`` under which a relative error counts
    as zero. The Dense-row models get biases drawn from N(0, ``dense_bias_std``²): torchvision
    initialises VGG biases at 0, and a bias-free ReLU network is positively homogeneous, so
    HiResCAM (gradient ⊙ activation) would sum to the logit at *every* layer (Euler's theorem);
    ``dense_bias_std = 0`` measures that case."""

    n_samples: int = Field(8, ge=1)
    layers: list[Literal["last", "last_conv2d", "earlier"]] = Field(
        default_factory=lambda: list(LAYER_CHOICES))
    dense_archs: list[Literal["vgg19", "resnet34", "resnet50"]] = Field(
        default_factory=lambda: ["vgg19"])
    tolerance: float = Field(1e-4, gt=0, lt=1)
    dense_bias_std: float = Field(0.1, ge=0)


class CamFaithfulnessConfig(Config):
    """The cam-faithfulness study (document 003). See the module docstring and
    ``docs/studies/cam-faithfulness.md`` for each key's source."""

    seed: int = Field(0, ge=0)
    data: DataSpec
    folder: FolderData | None = None
    normal_classes: list[str] = Field(default_factory=lambda: ["NoCell"])
    archs: list[Literal["vgg19", "resnet34", "resnet50"]] = Field(
        default_factory=lambda: list(ARCHS))
    forms: list[Literal["conv_flatten_fc", "gap_fc"]] = Field(
        default_factory=lambda: list(FORMS))
    width: float = Field(1.0, gt=0, le=1)
    train: dict[str, Any] = Field(default_factory=lambda: {"preset": "cam"})
    train_per_arch: dict[str, dict[str, Any]] = Field(default_factory=dict)
    degree: str | None = None
    input_range: tuple[float, float] = (0.0, 1.0)
    cam: CamSettings = Field(default_factory=CamSettings)
    table1: Table1Settings = Field(default_factory=Table1Settings)
    aopc_regions: list[int] = Field(default_factory=lambda: list(AOPC_REGION_SIZES))
    sensitivity: list[tuple[float, int]] = Field(default_factory=lambda: list(TABLE_6))
    n_samples: int = Field(ge=1)
    n_haas: int = Field(ge=1)
    gallery: int = Field(2, ge=0)


def _data(n: int, size: int, shard_size: int, **params) -> dict:
    return {"kind": "cells", "n": n, "size": size,
            "params": {"shard_size": shard_size, **params}}


# The tiny preset draws four cell classes (round, rectangular, eight-tailed, no cell) so width-1/16
# models trained from scratch for a few epochs get above chance; the ten-class labels are kept.
TINY_CLASSES = ["CCell", "RCell", "CCellT8", "NoCell"]

PRESETS = {
    # CPU minutes: 64 px cells (ResNet feature maps 2×2, VGG 4×4), width 1/16, four epochs
    # without augmentation; every factor of the document is kept (3 archs × 2 forms, 4 AOPC region
    # sizes, 6 radii) with few samples and iterations.
    "tiny": {"data": _data(384, 64, 8, classes=TINY_CLASSES), "width": 0.0625,
             "train": {"preset": "cam", "epochs": 4, "batch_size": 32, "lr": 3e-3,
                       "patience": 2, "augment": {}},
             "table1": {"n_samples": 4},
             "sensitivity": [(r, 2) for r, _ in TABLE_6], "n_samples": 2, "n_haas": 32,
             "gallery": 1},
    # CPU hours / GPU minutes: 128 px (ResNet 4×4, VGG 8×8), width 1/4, all ten classes,
    # table 6's iterations.
    "small": {"data": _data(2400, 128, 50), "width": 0.25,
              "train": {"preset": "cam", "epochs": 15, "batch_size": 64, "lr": 1e-3},
              "table1": {"n_samples": 16}, "n_samples": 32, "n_haas": 400, "gallery": 2},
    # Document 003: 224 px (section 4.2; ResNet 7×7, VGG 14×14), full widths, table 3's CRC
    # column (preset "cam": Adam lr 1e-4, batch 256, 22 epochs, patience 7, flips and rotations),
    # region sizes 56/28/21/16 (section 4.3), table 6, every test image (AOPC on the correctly
    # classified ones, section 2.2.1; NOTES.md). 9600 cells = 48 shards of 200 (document 001).
    "paper": {"data": _data(9600, 224, 200), "width": 1.0, "train": {"preset": "cam"},
              "table1": {"n_samples": 64}, "n_samples": 1600, "n_haas": 1600, "gallery": 4},
}


# ---------------------------------------------------------------- names and layers

def model_id(arch: str, form: str, trained: bool = True) -> str:
    return f"{arch}-{FORM_SHORT[form]}" + ("" if trained else "-untrained")


def model_label(model_id: str) -> str:
    arch, _, rest = model_id.partition("-")
    form = rest.replace("-untrained", " (untrained)")
    return f"{ARCH_LABELS.get(arch, arch)} {form.capitalize()}"


def cam_layers(model: nn.Module) -> dict[str, str]:
    """Module names of the layer choices of table 1 for a zoo VGG or ResNet.

    ``last``: the feature maps that enter the head (VGG: the last ``Conv2d`` of ``features``
    after surgery, or before the last ReLU/pooling in the torchvision form; ResNet: ``layer4``,
    the last block's output, which includes the residual sum). ``last_conv2d``: the last
    ``nn.Conv2d`` module (ResNets only: inside the last block, before the residual sum; for
    VGG it is ``last``).
    ``earlier``: the block before (VGG: the last conv layer of the previous block; ResNet:
    ``layer3``).
    """
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if hasattr(model, "features"):  # VGG: the last Conv2d is the "last" layer
        layers = list(model.features)
        conv_idx = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
        pool_idx = [i for i, m in enumerate(layers) if isinstance(m, (nn.MaxPool2d, nn.Identity))]
        last = conv_idx[-1]
        boundary = max(i for i in pool_idx if i < last)
        earlier = max(i for i in conv_idx if i < boundary)
        return {"last": f"features.{last}", "earlier": f"features.{earlier}"}
    if hasattr(model, "layer4"):
        return {"last": "layer4", "last_conv2d": convs[-1], "earlier": "layer3"}
    raise ValueError("cam_layers needs a zoo VGG or ResNet (a 'features' or 'layer4' module)")


@cache
def layer_name(arch: str, form: str, choice: str) -> str:
    """:func:`cam_layers` of ``arch`` in ``form`` (names do not depend on width or size)."""
    model = build(arch, num_classes=2, input_size=DOCUMENT_SIZE, width=0.0625)
    if form == "conv_flatten_fc":
        model = to_conv_flatten_fc(model)
    elif form == "gap_fc":
        model = to_gap_fc(model)
    layers = cam_layers(make_explainable(model))
    return layers.get(choice, layers["last"])  # VGG: the last Conv2d is the "last" layer


def scaled_region(region: int, size: int) -> int:
    """A document region size (px at 224) scaled to ``size`` px images, at least 1."""
    return max(1, round(region * size / DOCUMENT_SIZE))


def heatmap_label(region: int) -> str:
    """The document's heatmap size of a region size at 224 px (56 → 4×4, 21 → 11×11)."""
    n = math.ceil(DOCUMENT_SIZE / region)
    return f"{n}x{n}"


def applied_radius(radius: float, input_range: tuple[float, float]) -> float:
    """A radius on the document's [−1, 1] scale, scaled to ``input_range`` (same share of it)."""
    lo, hi = input_range
    return radius * (hi - lo) / (DOCUMENT_RANGE[1] - DOCUMENT_RANGE[0])


# ---------------------------------------------------------------- jobs

def data_spec(config: CamFaithfulnessConfig) -> DataSpec:
    """The run's dataset spec: the embedded data, or the user's folder (``DataSpec`` kind
    ``folder``, snapshotted into the run by ``common.data_job``)."""
    if config.folder is None:
        return config.data.model_copy(update={"seed": config.seed})
    folder = config.folder.model_dump()
    size = folder.pop("size")
    return DataSpec(kind="folder", n=1, size=size, seed=0, params=folder)


def relative_l1(a: Tensor, b: Tensor) -> Tensor:
    """‖a − b‖₁ / (‖a‖₁ + ‖b‖₁) per sample, in [0, 1]; 0 iff a = b."""
    num = (a - b).abs().flatten(1).sum(1)
    den = a.abs().flatten(1).sum(1) + b.abs().flatten(1).sum(1)
    return (num / den.clamp_min(torch.finfo(den.dtype).tiny)).double()


def contribution_error(raw: Tensor, contribution: Tensor) -> Tensor:
    """|Σ_ij raw_ij − (s^m − b^m)| / (‖raw‖₁ + |s^m − b^m|) per sample, in [0, 1]; 0 iff the map
    sums exactly to the class score minus its bias (document 003, eq. 20)."""
    total = raw.flatten(1).sum(1)
    den = raw.abs().flatten(1).sum(1) + contribution.abs()
    return ((total - contribution).abs() / den.clamp_min(torch.finfo(den.dtype).tiny)).double()


def _class_head(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer producing the class scores")
    return linears[-1]


def randomise_biases(model: nn.Module, std: float, seed: int) -> None:
    """Draw every conv, linear and batch-norm bias from N(0, std²) (in place, from ``seed``): an
    untrained zoo model has zero biases, hence is positively homogeneous (see
    :class:`Table1Settings`)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * std)


def faithfulness_errors(model: nn.Module, x: Tensor, layers: dict[str, str],
                        cam: bool = False) -> dict[tuple[str, str, str], Tensor]:
    """Table 1's measurements for images ``x`` and the predicted classes (document 003, section 3).

    Keys ``(method, layer choice, kind)``: ``("Grad-CAM", c, "distance_to_hirescam")`` the
    :func:`relative_l1` distance of the raw maps at layer ``layers[c]``, and ``(m, c,
    "contribution_error")`` each raw map's :func:`contribution_error` against s^m − b^m
    (eq. 20). ``cam``: also CAM / (D1 D2) at the GAP input (propositions 1–3), under choice
    ``last``. Values are ``[B]`` float64. The model is left as found.
    """
    out: dict[tuple[str, str, str], Tensor] = {}
    with preserved_model(model):
        with torch.no_grad():
            logits = model(x)
        target = logits.argmax(1)
        head = _class_head(model)
        bias = head.bias[target] if head.bias is not None else torch.zeros_like(logits[:, 0])
        contribution = (logits.gather(1, target[:, None])[:, 0] - bias).detach().double()
        for choice, layer in layers.items():
            raw = {kind: cam_maps(model, x, target, kind, layer=layer)[0].double()
                   for kind in METHODS}
            out["Grad-CAM", choice, "distance_to_hirescam"] = relative_l1(raw["gradcam"],
                                                                          raw["hirescam"])
            for kind, label in METHODS.items():
                out[label, choice, "contribution_error"] = contribution_error(raw[kind],
                                                                              contribution)
            out["feature_size", choice, ""] = torch.tensor(raw["hirescam"].shape[-2:])
        if cam:
            maps = cam_maps(model, x, target, "cam")[0].double()
            maps = maps / (maps.shape[-2] * maps.shape[-1])
            hires = cam_maps(model, x, target, "hirescam", layer=layers["last"])[0].double()
            out["CAM", "last", "distance_to_hirescam"] = relative_l1(maps, hires)
            out["CAM", "last", "contribution_error"] = contribution_error(maps, contribution)
    return out


def theory_job(config: dict, ctx: JobContext) -> list[dict]:
    """Table 1 measured on ``n_samples`` test images of one model (:func:`faithfulness_errors`
    at every layer choice; CAM too on GAP models). ``trained = False`` builds an untrained model
    of ``model`` with random biases (the Dense row)."""
    dataset = load_dataset(ctx.run_dir, config["data"])
    test = dataset.split("test")
    samples = test.subset(np.arange(min(config["n_samples"], len(test))))
    spec = ModelSpec.parse(config["model"])
    if config["trained"]:
        model = load_model(ctx.run_dir, config["model_id"], ctx.device)
    else:
        model = make_explainable(build_model(spec, dataset))
        randomise_biases(model, config["bias_std"], config["seed"])
        model = model.to(ctx.device).eval()
    ids = samples.meta["sample_id"].astype(str).tolist()
    layers = {c: name for c, name in cam_layers(model).items() if c in config["layers"]}
    errors = faithfulness_errors(model, samples.x.to(ctx.device), layers,
                                 cam=spec.form == "gap_fc" and "last" in layers)
    rows = []
    for (method, choice, kind), values in errors.items():
        if method == "feature_size":
            continue
        params = {"layer_choice": choice, "layer": layers[choice], "arch": spec.arch,
                  "form": spec.form, "trained": bool(config["trained"])}
        meta = {"feature_size": errors["feature_size", choice, ""].tolist()}
        rows += [{"dataset": dataset.name, "model_id": config["model_id"], "method": method,
                  "metric": f"table1/{choice}/{kind}", "sample_id": sid, "value": float(v),
                  "params": params, "meta": meta} for sid, v in zip(ids, values.tolist())]
    return rows


# ---------------------------------------------------------------- the job grid

def method_specs(config: CamFaithfulnessConfig, arch: str, form: str) -> list[dict]:
    layer = layer_name(arch, form, config.cam.layer)
    return [{"name": name, "label": label,
             "params": {"layer": layer, "relu": config.cam.relu, "minmax": config.cam.minmax}}
            for name, label in METHODS.items()]


def faithfulness_metrics(config: CamFaithfulnessConfig, size: int) -> list[dict]:
    """AOPC per region size (section 4.3) and max-sensitivity per table-6 row (section 4.4)."""
    lo, hi = config.input_range
    metrics = [{"name": "aopc", "label": f"aopc/{heatmap_label(r)}",
                "params": {"region": scaled_region(r, size), "fill": "uniform", "low": lo,
                           "high": hi, "score": "probability", "seed": config.seed}}
               for r in config.aopc_regions]
    metrics += [{"name": "max_sensitivity", "label": f"max_sensitivity/r{radius:g}",
                 "params": {"radius": applied_radius(radius, config.input_range),
                            "n_samples": iterations, "target": "predicted",
                            "seed": config.seed}}
                for radius, iterations in config.sensitivity]
    return metrics


def train_settings(config: CamFaithfulnessConfig, arch: str) -> dict[str, Any]:
    """The training preset and overrides of ``arch``: ``train`` updated by ``train_per_arch``
    (document 003, table 3 trains each model with its own settings)."""
    return {**config.train, **config.train_per_arch.get(arch, {})}


def _check(config: CamFaithfulnessConfig) -> None:
    lo, hi = config.input_range
    if not hi > lo:
        raise ConfigError(f"input_range must be (low, high) with high > low, got {(lo, hi)}")
    if not config.archs or not config.forms:
        raise ConfigError("archs and forms must each name at least one entry")
    if any(r < 1 for r in config.aopc_regions) or not config.aopc_regions:
        raise ConfigError("aopc_regions must be positive region sizes in px at 224 px, "
                          f"got {config.aopc_regions}")
    if any(r <= 0 or n < 1 for r, n in config.sensitivity) or not config.sensitivity:
        raise ConfigError("sensitivity must be (radius > 0, iterations >= 1) pairs, "
                          f"got {config.sensitivity}")
    if "preset" not in config.train:
        raise ConfigError("train must name a training preset, e.g. {preset: cam}")
    unknown = sorted(set(config.train_per_arch) - set(ARCHS))
    if unknown:
        raise ConfigError(f"train_per_arch keys must be architectures of {ARCHS}, got {unknown}")


def stages(config: CamFaithfulnessConfig) -> list[Stage]:
    """data → train (arch × form) → table 1 → explain and score (AOPC, max-sensitivity, HAAS)."""
    _check(config)
    spec = data_spec(config)
    size = spec.size
    base = {"study": NAME, "data": spec.model_dump(), "seed": config.seed}
    data = [Job(COMMON.format("data_job"), {"data": spec.model_dump(), "seed": config.seed},
                study=NAME, label="data")]
    models = [(arch, form) for arch in config.archs for form in config.forms]

    def train_jobs(run_dir: Path) -> list[Job]:
        classes = load_dataset(run_dir, spec).classes
        monitored = [i for i, c in enumerate(classes) if c not in config.normal_classes]
        jobs = []
        for arch, form in models:
            train = {**train_settings(config, arch), "monitored_classes": monitored or None}
            job = {**base, "model_id": model_id(arch, form),
                   "model": {"arch": arch, "width": config.width, "form": form}, "train": train}
            if config.degree:
                job["degree"] = config.degree
            jobs.append(Job(COMMON.format("train_job"), job, study=NAME,
                            label=f"train {model_id(arch, form)}"))
        return jobs

    theory = [Job(OWN.format("theory_job"), {
        **base, "model_id": model_id(arch, form), "trained": True,
        "model": {"arch": arch, "width": config.width, "form": form},
        "layers": list(config.table1.layers), "n_samples": config.table1.n_samples},
        study=NAME, label=f"table 1 {model_id(arch, form)}") for arch, form in models]
    theory += [Job(OWN.format("theory_job"), {
        **base, "model_id": model_id(arch, "torchvision", trained=False), "trained": False,
        "model": {"arch": arch, "width": config.width, "form": "torchvision"},
        "layers": list(config.table1.layers), "n_samples": config.table1.n_samples,
        "bias_std": config.table1.dense_bias_std},
        study=NAME, label=f"table 1 {arch} dense head") for arch in config.table1.dense_archs]

    explain = []
    for arch, form in models:
        mid = model_id(arch, form)
        methods = method_specs(config, arch, form)
        explain.append(Job(COMMON.format("explain_job"), {
            **base, "model_id": mid, "methods": methods,
            "metrics": faithfulness_metrics(config, size), "n_samples": config.n_samples,
            "correct_for": [mid], "target": "true", "gallery": config.gallery},
            study=NAME, label=f"AOPC and max-sensitivity {mid}"))
        explain.append(Job(COMMON.format("explain_job"), {
            **base, "model_id": mid, "methods": methods,
            "metrics": [{"name": "haas", "params": {"input_range": list(config.input_range)}}],
            "n_samples": config.n_haas, "target": "predicted", "gallery": 0},
            study=NAME, label=f"HAAS {mid}"))
    return [Stage("data", data), Stage("train", train_jobs), Stage("table 1", theory),
            Stage("explain and score", explain)]


# ---------------------------------------------------------------- analysis

def _verdict(equivalent: bool, contributes: list[str]) -> str:
    first = "Equivalent" if equivalent else "Not equivalent"
    if not contributes:
        return f"{first}; none contributes to the class score"
    if len(contributes) >= 2:
        return f"{first}; both contribute to the class score"
    return f"{first}; only {contributes[0]} contributes to the class score"


def table_1(results: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """The measured table 1: per model and layer choice, the median relative distance between
    raw Grad-CAM and HiResCAM, each method's median contribution error, the verdict under
    ``tolerance``, and the document's claim for that row."""
    rows = results[results.metric.str.startswith("table1/")].copy()
    if rows.empty:
        return pd.DataFrame()
    rows["choice"] = rows.metric.str.split("/").str[1]
    rows["kind"] = rows.metric.str.split("/").str[2]
    out = []
    for (mid, choice), part in rows.groupby(["model_id", "choice"], sort=False):
        params = _json(part.params.iloc[0])
        med = part.groupby(["method", "kind"]).value.median()
        distance = med.get(("Grad-CAM", "distance_to_hirescam"), np.nan)
        errors = {m: med.get((m, "contribution_error"), np.nan) for m in METHODS.values()}
        contributes = [m for m, e in errors.items() if e < tolerance]
        equivalent = bool(distance < tolerance)
        form = params["form"]
        claim = DOCUMENT_TABLE_1.get((form, choice))
        claim_text = "—" if claim is None else _verdict(claim[0], list(claim[1]))
        measured = _verdict(equivalent, contributes)
        feature = _json(part.meta.iloc[0]).get("feature_size", ["?", "?"])
        record = {"structure": STRUCTURES[form], "model": model_label(mid),
                  "layer": f"{choice} ({params['layer']}, {feature[0]}×{feature[1]})",
                  "Grad-CAM vs HiResCAM distance": distance,
                  "Grad-CAM contribution error": errors["Grad-CAM"],
                  "HiResCAM contribution error": errors["HiResCAM"]}
        if ("CAM", "contribution_error") in med.index:
            record["CAM/(D1·D2) contribution error"] = med[("CAM", "contribution_error")]
            record["CAM/(D1·D2) vs HiResCAM distance"] = med[("CAM", "distance_to_hirescam")]
        record |= {"measured": measured, "document (table 1)": claim_text,
                   "agrees": "—" if claim is None else ("yes" if measured == claim_text else "NO")}
        out.append(record)
    table = pd.DataFrame(out)
    order = {s: i for i, s in enumerate(STRUCTURES.values())}
    table["_o"] = table.structure.map(order)
    return table.sort_values(["_o", "model", "layer"], kind="stable").drop(columns="_o")


def _explanation_scores(results: pd.DataFrame) -> pd.DataFrame:
    """Per-sample Grad-CAM / HiResCAM metric rows (no table-1 rows, no curve points)."""
    return results[results.method.isin(METHODS.values())
                   & ~results.metric.str.startswith("table1/")
                   & ~results.sample_id.str.startswith("point:")]


def model_scores(results: pd.DataFrame) -> pd.DataFrame:
    """Test-set classification scores per model (document 003, table 4)."""
    rows = results[(results.method == "model") & (results.sample_id == "all")]
    if rows.empty:
        return pd.DataFrame()
    return rows.pivot_table(index="model_id", columns="metric", values="value")


def aopc_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean AOPC over the correctly classified images, per heatmap size and method × model."""
    rows = scores[scores.metric.str.startswith("aopc/")].copy()
    if rows.empty:
        return pd.DataFrame()
    rows["heatmap"] = rows.metric.str.split("/").str[1]
    table = rows.pivot_table(index=["heatmap", "method"], columns="model_id", values="value",
                             aggfunc="mean")
    order = sorted(table.index.get_level_values(0).unique(), key=lambda s: int(s.split("x")[0]))
    return table.reindex(order, level=0)


def sensitivity_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean max-sensitivity per model, method and radius (document's scale)."""
    rows = scores[scores.metric.str.startswith("max_sensitivity/")].copy()
    rows["radius"] = rows.metric.str.split("/r").str[1].astype(float)
    return rows.groupby(["model_id", "method", "radius"], as_index=False).value.mean()


def haas_table(scores: pd.DataFrame) -> pd.DataFrame:
    """HAAS = Acc(f(HA)) / Acc(f(x)) over the scored test images (eq. 10), method × model."""
    rows = scores[scores.metric.isin(["haas/correct_x", "haas/correct_ha"])]
    if rows.empty:
        return pd.DataFrame()
    acc = rows.pivot_table(index=["method", "model_id"], columns="metric", values="value",
                           aggfunc="mean")
    ratio = acc["haas/correct_ha"] / acc["haas/correct_x"].where(acc["haas/correct_x"] > 0)
    return ratio.unstack("model_id")


def summary_table(models: pd.DataFrame, aopc: pd.DataFrame, sens: pd.DataFrame,
                  haas: pd.DataFrame) -> pd.DataFrame:
    """Table 10: balanced accuracy, mean AUC, and per method the mean AOPC over heatmap sizes,
    the mean max-sensitivity over radii and HAAS."""
    out = pd.DataFrame(index=models.index)
    out["balanced accuracy"] = models.get("balanced_accuracy")
    out["mean AUC"] = models.get("mean_auc")
    for label in METHODS.values():
        if not aopc.empty:
            out[f"mean AOPC {label}"] = aopc.xs(label, level="method").mean(0)
    for label in METHODS.values():
        if not sens.empty:
            out[f"mean max-sens {label}"] = (sens[sens.method == label]
                                            .groupby("model_id").value.mean())
    for label in METHODS.values():
        if not haas.empty and label in haas.index:
            out[f"HAAS {label}"] = haas.loc[label]
    out.index = [model_label(m) for m in out.index]
    return out


def _panels(frames: dict[str, pd.DataFrame], x: str, y: str, xlabel: str, ylabel: str,
            title: str) -> MplFigure:
    """One small panel per model, a line per method."""
    n = len(frames)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = MplFigure(figsize=(3.2 * cols, 2.5 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    colors = {"Grad-CAM": "#d95f02", "HiResCAM": "#1b9e77"}
    for ax, (mid, frame) in zip(axes, frames.items()):
        for method, part in frame.groupby("method"):
            part = part.sort_values(x)
            ax.plot(part[x], part[y], marker="o", markersize=2.5, linewidth=1.2,
                    color=colors.get(method), label=method,
                    linestyle="--" if method == "Grad-CAM" else "-",
                    zorder=3 if method == "Grad-CAM" else 2)  # dashed on top: visible when equal
        ax.set_title(model_label(mid), fontsize=8)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.set_ylabel(ylabel, fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(color="#eeeeee", linewidth=0.6)
        ax.legend(fontsize=6)
    for ax in axes[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return fig


def _count_text(summary: pd.DataFrame, flatten_models: list[str]) -> str:
    """Computed counterparts of the document's conclusions (section 5.4) on the Flatten models."""
    parts = []
    rows = summary.loc[[m for m in flatten_models if m in summary.index]]
    if rows.empty:
        return ""
    n = len(rows)
    if {"mean max-sens Grad-CAM", "mean max-sens HiResCAM"} <= set(rows.columns):
        k = int((rows["mean max-sens HiResCAM"] < rows["mean max-sens Grad-CAM"]).sum())
        parts.append(f"HiResCAM has the lower mean max-sensitivity on {k} of {n} Conv–Flatten "
                     "models (document: 8 of 8)")
    if {"mean AOPC Grad-CAM", "mean AOPC HiResCAM"} <= set(rows.columns):
        k = int((rows["mean AOPC HiResCAM"] >= rows["mean AOPC Grad-CAM"]).sum())
        parts.append(f"a mean AOPC at least as high as Grad-CAM's on {k} of {n} (document: "
                     "8 of 8)")
    if {"HAAS Grad-CAM", "HAAS HiResCAM"} <= set(rows.columns):
        k = int((rows["HAAS HiResCAM"] > 1).sum())
        parts.append(f"a HAAS above 1 on {k} of {n} (document: 1 of 8)")
    return "Measured here: " + "; ".join(parts) + "." if parts else ""


def report_section(run_dir: Path) -> Section:
    """Tables 1, 3–7 and 10 and figures 14–18 of document 003, from the run's results."""
    run_dir = Path(run_dir)
    config = CamFaithfulnessConfig.from_yaml(run_dir / "config.yaml")
    results = read_results(run_dir)
    results = results[results.study == NAME]
    size = data_spec(config).size
    tables, figs = [], []

    t1 = table_1(results, config.table1.tolerance)
    if not t1.empty:
        tables.append(Table(t1, "Table 1 (measured): median over the test images of the "
                            "relative L1 distance between raw Grad-CAM and HiResCAM maps, and "
                            "of each map's contribution error |Σ map − (s − b)| / (‖map‖₁ + "
                            "|s − b|) for the predicted class; both lie in [0, 1] and count as "
                            f"0 below {config.table1.tolerance:g}. 'last' is the layer whose "
                            "feature maps enter the head (proposition 4's setting).",
                            name="cam-table1", digits=3))

    models = model_scores(results)
    if not models.empty:
        tables.append(Table(training_table(run_dir, config, list(models.index)),
                            "Table 3: training configurations (training preset and overrides "
                            "as run; stop reason from the checkpoint).", name="cam-table3"))
        tables.append(Table(models.rename(index=model_label),
                            "Table 4: test-set classification scores.", name="cam-table4"))

    scores = _explanation_scores(results)
    aopc = aopc_table(scores)
    if not aopc.empty:
        regions = ", ".join(f"{r} px → {scaled_region(r, size)} px ({heatmap_label(r)})"
                            for r in config.aopc_regions)
        tables.append(Table(aopc.rename(columns=model_label),
                            "Table 5: mean AOPC over the correctly classified test images "
                            f"(uniform noise over {tuple(config.input_range)}, class "
                            f"probability). Region sizes at 224 px scaled to {size} px: "
                            f"{regions}.", name="cam-table5"))
        curves = results[results.metric.str.endswith("/curve")
                         & results.metric.str.startswith("aopc/")
                         & results.method.isin(METHODS.values())].copy()
        label = "8x8" if (curves.metric == "aopc/8x8/curve").any() else None
        if label is None and not curves.empty:
            label = curves.metric.iloc[0].split("/")[1]
        curves = curves[curves.metric == f"aopc/{label}/curve"]
        if not curves.empty:
            curves["step"] = curves.sample_id.str.split(":").str[1].astype(int)
            frames = {m: part for m, part in curves.groupby("model_id")}
            figs.append(Figure(_panels(frames, "step", "value", "perturbation step k",
                                       "mean class probability",
                                       f"MoRF curves, {label} heatmaps"),
                               f"Figure 14: mean MoRF perturbation curves ({label} heatmaps) "
                               "of Grad-CAM and HiResCAM per model.", name="cam-fig14"))

    sens = sensitivity_frame(scores) if scores.metric.str.startswith(
        "max_sensitivity/").any() else pd.DataFrame()
    if not sens.empty:
        setting = pd.DataFrame(
            [{"radius ([−1, 1] scale)": r, "radius applied": applied_radius(r, config.input_range),
              "iterations": n} for r, n in config.sensitivity])
        tables.append(Table(setting, "Table 6: max-sensitivity configurations; radii are the "
                            f"document's on [−1, 1], applied to inputs in "
                            f"{tuple(config.input_range)}.", name="cam-table6"))
        frames = {m: part for m, part in sens.groupby("model_id")}
        figs.append(Figure(_panels(frames, "radius", "value", "radius ([−1, 1] scale)",
                                   "mean max-sensitivity", "Max-sensitivity"),
                           f"Figure 15: mean max-sensitivity (Frobenius distance of "
                           f"{size}×{size} maps) against the radius.", name="cam-fig15"))
    haas = haas_table(scores)
    if not haas.empty:
        tables.append(Table(haas.rename(columns=model_label),
                            "Table 7: HAAS = Acc(HA images) / Acc(images) over the first "
                            f"{config.n_haas} test images, maps of the predicted class.",
                            name="cam-table7"))

    text = __doc__.split("\n\n")[1].replace("\n", " ")
    if not models.empty:
        summary = summary_table(models, aopc, sens, haas)
        tables.append(Table(summary, "Table 10: summary of test and evaluation metrics "
                            "(mean AOPC over heatmap sizes, mean max-sensitivity over radii).",
                            name="cam-table10"))
        flatten = [model_label(model_id(a, "conv_flatten_fc")) for a in config.archs]
        text += "\n\n" + _count_text(summary, flatten)
        figs += accuracy_figures(models, aopc, sens, haas)
    return Section("Grad-CAM vs HiResCAM (document 003)", text.strip(), figures=figs,
                   tables=tables)


def accuracy_figures(models: pd.DataFrame, aopc: pd.DataFrame, sens: pd.DataFrame,
                     haas: pd.DataFrame) -> list[Figure]:
    """Figures 16–18: balanced accuracy against HiResCAM's AOPC (one point per heatmap size),
    max-sensitivity (one per radius) and HAAS, coloured by model."""
    acc = models["balanced_accuracy"].rename("balanced accuracy")
    out = []
    if not aopc.empty:
        frame = aopc.xs("HiResCAM", level="method").stack().rename("AOPC").reset_index()
        frame = frame.join(acc, on="model_id")
        frame["model"] = frame.model_id.map(model_label)
        out.append(Figure(figures.scatter_plot(frame, "balanced accuracy", "AOPC", hue="model",
                                               title="Balanced accuracy vs AOPC (HiResCAM)"),
                          "Figure 16: balanced accuracy against HiResCAM's AOPC, one point per "
                          "heatmap size.", name="cam-fig16"))
    if not sens.empty:
        frame = sens[sens.method == "HiResCAM"].join(acc, on="model_id")
        frame = frame.rename(columns={"value": "max-sensitivity"})
        frame["model"] = frame.model_id.map(model_label)
        out.append(Figure(figures.scatter_plot(frame, "balanced accuracy", "max-sensitivity",
                                               hue="model", title="Balanced accuracy vs "
                                               "max-sensitivity (HiResCAM)"),
                          "Figure 17: balanced accuracy against HiResCAM's max-sensitivity, one "
                          "point per radius.", name="cam-fig17"))
    if not haas.empty and "HiResCAM" in haas.index:
        frame = haas.loc["HiResCAM"].rename("HAAS").to_frame().join(acc)
        frame["model"] = [model_label(m) for m in frame.index]
        out.append(Figure(figures.scatter_plot(frame.reset_index(drop=True), "balanced accuracy",
                                               "HAAS", hue="model",
                                               title="Balanced accuracy vs HAAS (HiResCAM)"),
                          "Figure 18: balanced accuracy against HiResCAM's HAAS.",
                          name="cam-fig18"))
    return out


def training_table(run_dir: Path, config: CamFaithfulnessConfig,
                   model_ids: list[str]) -> pd.DataFrame:
    """Table 3 from the training preset as run and each checkpoint's stop reason."""
    import json

    from salbench.models.training import preset

    rows = []
    for mid in model_ids:
        arch = mid.split("-")[0]
        train = train_settings(config, arch)
        values = preset(train["preset"], arch, **{k: v for k, v in train.items()
                                                  if k != "preset"})
        meta_file = checkpoint_path(run_dir, mid).with_suffix(".json")
        meta = json.loads(meta_file.read_text())["meta"] if meta_file.is_file() else {}
        rows.append({"model": model_label(mid),
                     "trainable layers": config.degree or "all (trained from scratch)",
                     "optimizer": values.optimizer, "learning rate": values.lr,
                     "weight decay": values.weight_decay or "none",
                     "scheduler": values.scheduler, "batch size": values.batch_size,
                     "max epochs": values.epochs, "patience": values.patience,
                     "class weights": values.class_weights,
                     "epochs run": meta.get("epochs_run", "?"),
                     "stop reason": meta.get("stop_reason", "?")})
    return pd.DataFrame(rows).set_index("model")


def _json(value: Any) -> Any:
    import json

    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


STUDY = register(Study(NAME, "Grad-CAM vs HiResCAM: measured table 1, AOPC, max-sensitivity, "
                       "HAAS on Conv–Flatten and GAP heads (document 003)",
                       CamFaithfulnessConfig, PRESETS, stages, report_section))
