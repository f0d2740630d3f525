"""``salbench train``: train one model from a YAML config and write its checkpoint to a run folder.

The config (``TrainRunConfig``) has three sections::

    model:    {arch: resnet18, width: 0.25, pretraining: none, head: classifier, degree: all}
    data:     {source: mri-lesions, n: 400, size: 64, seed: 0}  # or {path: data/mri}
    preset: mri                                                 # optional, see PRESETS
    training: {epochs: 10, lr: 0.01}                            # TrainConfig keys (override preset)

The run folder receives ``model.safetensors`` (+ ``model.json``: spec, classes, training config,
validation and test scores, seed, data hash, pre-training source), ``history.csv`` and
``config.yaml`` (the resolved config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pandas as pd
import typer
import yaml
from pydantic import Field, model_validator
from rich.console import Console

from salbench.cli.common import fail
from salbench.config import Config, ConfigError
from salbench.models.blocks import freeze_for_degree
from salbench.models.checkpoints import data_hash, save
from salbench.models.corpora import CORPORA, natural_image_corpus, pretrained_model
from salbench.models.surgery import to_conv_flatten_fc, to_gap_fc
from salbench.models.training import (
    PRESETS,
    TrainConfig,
    TrainingDivergedError,
    evaluate,
    fit,
)
from salbench.models.zoo import ARCHITECTURES, build
from salbench.runtime import seed_everything, set_quiet

console = Console()


class ModelSection(Config):
    """Which model to train: architecture, width, starting weights, head and fine-tuning degree."""

    arch: Literal[ARCHITECTURES] = "resnet18"  # type: ignore[valid-type]
    width: float = Field(1.0, gt=0, le=4)
    weights: str | None = None
    pretraining: Literal[CORPORA] = "none"  # type: ignore[valid-type]
    pretraining_n: int = Field(512, ge=8)
    head: Literal["classifier", "conv_flatten_fc", "gap_fc"] = "classifier"
    degree: str | int = "all"
    direction: Literal["output", "input"] = "output"
    slicing: Literal["block", "public-code"] = "block"

    @model_validator(mode="after")
    def _one_start(self) -> ModelSection:
        if self.weights is not None and self.pretraining != "none":
            raise ValueError("give either model.weights or model.pretraining, not both")
        return self


class DataSection(Config):
    """Training data: ``path`` (a dataset folder written by ``salbench data``, an image folder or
    an .npz: ``salbench.data.sources``) or a generator with n/size/seed."""

    source: Literal["mri-lesions", "cells", "natural"] = "mri-lesions"
    path: str | None = None
    n: int = Field(400, ge=4)
    size: int = Field(64, ge=16)
    seed: int = Field(0, ge=0)
    params: dict = Field(default_factory=dict)


class TrainRunConfig(Config):
    """``salbench train``'s config: model, data, an optional preset and TrainConfig overrides."""

    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    preset: str | None = None
    training: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_training(self) -> TrainRunConfig:
        self.train_config()
        return self

    def train_config(self) -> TrainConfig:
        if self.preset is None:
            return TrainConfig.parse(self.training)
        if self.preset not in PRESETS or ":" in self.preset:
            names = sorted(n for n in PRESETS if ":" not in n)
            raise ValueError(f"preset must be one of {names}, got {self.preset!r}")
        values = dict(PRESETS[self.preset]) | PRESETS.get(f"{self.preset}:{self.model.arch}", {})
        return TrainConfig.parse(values | self.training)


def load_data(section: DataSection):
    """The ``GroundTruthDataset`` a data section describes."""
    if section.path is not None:
        from salbench.data.sources import load_source

        return load_source(section.path)
    if section.source == "mri-lesions":
        from salbench.data import mri_lesions

        return mri_lesions.generate(section.n, seed=section.seed, size=section.size,
                                    **section.params)
    if section.source == "cells":
        from salbench.data import cells

        return cells.generate(section.n, seed=section.seed, size=section.size, **section.params)
    return natural_image_corpus(section.n, seed=section.seed, size=section.size, **section.params)


def run_training(config: TrainRunConfig, out: Path) -> dict:
    """Train as ``config`` says and write the run folder ``out``; return the checkpoint metadata."""
    train_cfg = config.train_config()
    data = load_data(config.data)
    splits = {name: data.split(name) for name in ("train", "val", "test")}
    for name in ("train", "val"):
        if len(splits[name]) == 0:
            raise ValueError(f"the dataset has no {name!r} samples; adjust data.n or "
                             "data.params.split_fractions")
    c, h, w = data.x.shape[1:]
    if h != w:
        raise ValueError(f"images must be square, got {h}x{w}")
    m = config.model
    seed_everything(train_cfg.seed)
    info = {"source": "random" if m.weights is None else str(m.weights)}
    if m.pretraining != "none":
        model, info = pretrained_model(m.arch, m.pretraining, len(data.classes), c, h, m.width,
                                       n=m.pretraining_n, seed=train_cfg.seed)
    else:
        model = build(m.arch, len(data.classes), c, h, m.width, m.weights)
    if m.head == "conv_flatten_fc":
        model = to_conv_flatten_fc(model)
    elif m.head == "gap_fc":
        model = to_gap_fc(model)
    freeze_for_degree(model, m.degree, m.direction, m.slicing)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config.to_yaml())
    meta = {"classes": data.classes, "normalisation": "none (inputs as the dataset gives them)",
            "dataset": data.name, "dataset_params": _jsonable(data.params),
            "data_hash": data_hash(splits["train"]), "seed": train_cfg.seed,
            "training": train_cfg.model_dump(mode="json"), "pretraining": _jsonable(info),
            "degree": m.degree}
    try:
        result = fit(model, splits["train"], splits["val"], train_cfg)
    except TrainingDivergedError as err:
        meta |= {"stop_reason": "diverged", "error": str(err)}
        pd.DataFrame(err.result.history).to_csv(out / "history.csv", index=False)
        save(model, out / "model", meta)
        raise
    test_scores = evaluate(model, splits["test"]) if len(splits["test"]) else {}
    meta |= {"stop_reason": result.stop_reason, "epochs_run": result.epochs_run,
             "val_scores": result.val_scores, "test_scores": test_scores,
             "images_per_second": result.images_per_second}
    pd.DataFrame(result.history).to_csv(out / "history.csv", index=False)
    save(model, out / "model", meta)
    return meta


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def train(
    config: Path | None = typer.Option(None, "--config",
                                       help="YAML file (model, data, preset, training)."),
    out: Path | None = typer.Option(None, "--out",
                                    help="Run folder for model.safetensors and history."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: --set training.lr=0.01"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    print_config: bool = typer.Option(False, "--print-config",
                                      help="Print the full config (defaults, or --config with "
                                           "--set applied, the preset's training values "
                                           "filled in) as YAML and exit."),
) -> None:
    """Train one model as a YAML config says and write its checkpoint into a run folder.

    Example: salbench train --config train.yaml --out runs/mri-resnet --set training.epochs=5

    with train.yaml:  model: {arch: resnet18, width: 0.25, degree: all}
                      data: {source: mri-lesions, n: 400, size: 64}
                      preset: mri
    """
    set_quiet(quiet)
    try:
        overrides = [*set_, *([f"training.device={device}"] if device != "auto" else [])]
        base = TrainRunConfig.from_yaml(config) if config else TrainRunConfig()
        cfg = base.with_overrides(overrides)
    except ConfigError as err:
        fail(str(err))
    if print_config:
        full = cfg.model_dump(mode="json")
        full["training"] = cfg.train_config().model_dump(mode="json")
        typer.echo(yaml.safe_dump(full, sort_keys=False), nl=False)
        return
    if config is None or out is None:
        fail("give --config FILE and --out DIR (or --print-config to see a full config)")
    try:
        meta = run_training(cfg, out)
    except (ValueError, FileNotFoundError, TrainingDivergedError) as err:
        fail(str(err))
    scores = meta["test_scores"] or meta["val_scores"]
    which = "test" if meta["test_scores"] else "validation"
    console.print(f"stopped: {meta['stop_reason']} after {meta['epochs_run']} epochs; {which} "
                  f"accuracy {scores.get('accuracy', float('nan')):.3f}; wrote "
                  f"{out / 'model.safetensors'}")
