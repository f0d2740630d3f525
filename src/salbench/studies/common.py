"""Building blocks the studies share: dataset, training and explain-and-score jobs.

Each job is a pure function of its config (see :mod:`salbench.runtime.jobs`). Artifacts go to the
run folder: datasets to ``data/<kind>-<hash>/``, checkpoints to ``models/<model_id>.safetensors``,
gallery samples to ``report/gallery/``. Scores are returned as long result rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from salbench import data as data_stage
from salbench import metrics as M
from salbench.config import Config
from salbench.data import GroundTruthDataset, cells, folders, mri_lesions
from salbench.explain import explain
from salbench.explain.postprocess import absolute
from salbench.models import build, freeze_for_degree, make_explainable
from salbench.models.checkpoints import load as load_checkpoint
from salbench.models.checkpoints import save as save_checkpoint
from salbench.models.selection import classification_scores
from salbench.models.training import fit, predict, preset
from salbench.report import save_gallery_item
from salbench.runtime import JobContext


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


class ModelSpec(Config):
    """An architecture from the zoo at a channel ``width``; ``form`` applies document 003's surgery."""

    arch: Literal["vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "alexnet"] = "vgg16"
    width: float = Field(1.0, gt=0, le=1)
    form: Literal["torchvision", "conv_flatten_fc", "gap_fc"] = "torchvision"
    weights: str | None = None  # "imagenet" or a file path (salbench.models.build)


def digest(value: Any, length: int = 10) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dataset_dir(run_dir: Path, spec: DataSpec) -> Path:
    return Path(run_dir) / "data" / f"{spec.kind}-{digest(spec.model_dump())}"


def data_job(config: dict, ctx: JobContext) -> None:
    """Write the dataset of ``config["data"]`` to the run's ``data/`` folder (resumable)."""
    spec = DataSpec.parse(config["data"])
    out = dataset_dir(ctx.run_dir, spec)
    if spec.kind == "folder":  # snapshot the folder into the run: written aside, then renamed
        dataset = folders.load_folder(size=spec.size, **spec.params)
        if not all((dataset.meta["split"] == s).any() for s in data_stage.SPLITS):
            raise ValueError(f"folder {spec.params.get('root')!r} gives an empty train, val or "
                             "test split; add images or train/val/test sub-folders")
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        data_stage.save(dataset, partial)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(partial, out)
        return
    common = dict(n=spec.n, out=out, seed=spec.seed, size=spec.size, **spec.params)
    if spec.kind == "cells":
        cells.write(**common)
    else:
        mri_lesions.write(lesion_free=spec.kind == "mri_lesion_free", **common)


def load_dataset(run_dir: Path, spec: DataSpec | dict) -> GroundTruthDataset:
    spec = spec if isinstance(spec, DataSpec) else DataSpec.parse(spec)
    return data_stage.load(dataset_dir(run_dir, spec))


def checkpoint_path(run_dir: Path, model_id: str) -> Path:
    return Path(run_dir) / "models" / f"{model_id}.safetensors"


def build_model(spec: ModelSpec | dict, dataset: GroundTruthDataset) -> nn.Module:
    """A fresh model of ``spec`` shaped for ``dataset`` (classes, channels, image size)."""
    from salbench.models import to_conv_flatten_fc, to_gap_fc

    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    _, c, h, _ = dataset.x[:1].shape
    model = build(spec.arch, num_classes=len(dataset.classes), in_channels=c, input_size=h,
                  width=spec.width, weights=spec.weights)
    if spec.form == "conv_flatten_fc":
        model = to_conv_flatten_fc(model)
    elif spec.form == "gap_fc":
        model = to_gap_fc(model)
    return model


def train_job(config: dict, ctx: JobContext) -> list[dict]:
    """Build (or start from ``init``'s checkpoint), freeze to ``degree``, ``fit`` and save.

    Config keys: ``model_id``, ``data`` (DataSpec), ``model`` (ModelSpec), ``train`` (a training
    preset name plus overrides: ``{"preset": "mri", "lr": 0.01, ...}``), optional ``init`` (the
    model_id of a checkpoint to start from; its head is replaced when the classes differ),
    ``degree`` (fine-tuning degree, with optional ``direction`` and ``slicing`` as in
    ``salbench.models.freeze_for_degree``). Rows: the test-set classification scores (method "model").
    """
    dataset = load_dataset(ctx.run_dir, config["data"])
    model = build_model(config["model"], dataset)
    if config.get("init"):
        load_trunk(model, checkpoint_path(ctx.run_dir, config["init"]))
    if config.get("degree"):
        freeze_for_degree(model, config["degree"], config.get("direction", "output"),
                          config.get("slicing", "block"))
    train = dict(config["train"])
    arch = ModelSpec.parse(config["model"]).arch
    train_config = preset(train.pop("preset"), arch, seed=ctx.seed, device=ctx.device,
                          **train)
    result = fit(model, dataset.split("train"), dataset.split("val"), train_config)
    test = dataset.split("test")
    logits, _ = predict(model, test, device=ctx.device)
    scores = classification_scores(logits, test.y)
    save_checkpoint(model, checkpoint_path(ctx.run_dir, config["model_id"]),
                    meta={"model_id": config["model_id"], "config": config,
                          "test_scores": scores, "stop_reason": result.stop_reason,
                          "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                          "classes": dataset.classes})
    correct = (logits.argmax(1) == test.y).tolist()
    rows = [model_row(config, dataset.name, name, value) for name, value in scores.items()]
    rows += [{"dataset": dataset.name, "model_id": config["model_id"], "method": "model",
              "metric": "correct", "sample_id": sid, "value": float(ok),
              "params": {}, "meta": {"true": int(t)}}
             for sid, ok, t in zip(test.meta["sample_id"].astype(str), correct, test.y.tolist())]
    return rows


def model_row(config: dict, dataset: str, metric: str, value: float) -> dict:
    return {"dataset": dataset, "model_id": config["model_id"],
            "method": "model", "metric": metric, "sample_id": "all", "value": float(value),
            "params": {k: config[k] for k in ("degree", "init") if k in config},
            "meta": {"arch": config["model"]["arch"]}}


def load_trunk(model: nn.Module, path: Path) -> None:
    """Copy every parameter of the checkpoint at ``path`` whose name and shape match ``model``."""
    source, _ = load_checkpoint(path)
    own = model.state_dict()
    matched = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(f"init checkpoint {str(path)!r} shares no parameter with the model")
    model.load_state_dict(matched, strict=False)


def load_model(run_dir: Path, model_id: str, device: str) -> nn.Module:
    """The trained model ``model_id`` of the run, explainable (no in-place or reused ReLUs)."""
    model, _ = load_checkpoint(checkpoint_path(run_dir, model_id))
    return make_explainable(model).to(device).eval()


# ---------------------------------------------------------------- explaining and scoring

class MethodSpec(Config):
    """An attribution method by registry name, its parameters and the named post-processing."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    absolute: bool = False
    label: str | None = None

    @property
    def key(self) -> str:
        return self.label or self.name


class MetricSpec(Config):
    """A metric by name (a ground-truth metric, ``soft_five_band``, ``region_perturbation``,
    ``aopc``, ``max_sensitivity``, ``avg_sensitivity``, ``haas``, ``model_randomisation``) and
    its parameters; ``label`` names the metric in the results (default: the name)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @property
    def key(self) -> str:
        return self.label or self.name


def attribution_fn(method: MethodSpec) -> Callable[[nn.Module, Tensor, Tensor], Tensor]:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        a = explain(model, x, y, method.name, **method.params)
        return absolute(a) if method.absolute else a

    return run


def attributions(model: nn.Module, x: Tensor, y: Tensor, method: MethodSpec,
                 batch_size: int = 16) -> Tensor:
    fn = attribution_fn(method)
    return torch.cat([fn(model, x[i:i + batch_size], y[i:i + batch_size])
                      for i in range(0, len(x), batch_size)])


def score(metric: MetricSpec, model: nn.Module, x: Tensor, y: Tensor, a: Tensor, m: Tensor,
          method: MethodSpec) -> dict[str, Tensor]:
    """Per-sample scores ``{result_metric_name: Tensor[B]}`` of one metric spec.

    Aggregates that have no per-sample value (ROC points, mean curves) come back under names
    ending in ``@`` with a tensor over points instead of samples; :func:`score_rows` stores them
    with ``sample_id = "point:<k>"`` for point k.
    """
    name, params, key = metric.name, dict(metric.params), metric.key
    if name in M.GROUND_TRUTH_METRICS:
        return {key: M.GROUND_TRUTH_METRICS[name](a, m, **params)}
    if name == "soft_five_band":
        r = M.soft_five_band(a, m, **params)
        out = {f"{key}/{n}": getattr(r, n) for n in
               ("accuracy_avg", "accuracy_best", "precision_avg", "precision_best",
                "recall_avg", "recall_best")}
        out[f"{key}/fpr_avg"] = r.fpr.mean(1)
        out[f"{key}/roc_fpr@"] = r.roc_fpr
        out[f"{key}/roc_recall@"] = r.roc_recall
        return out
    if name in ("region_perturbation", "aopc"):
        r = getattr(M, name)(model, x, y, a, **params)
        return {key: r.scores, f"{key}/curve@": r.curves.mean(0)}
    if name in ("max_sensitivity", "avg_sensitivity"):
        return {key: getattr(M, name)(model, x, y, attribution_fn(method), a=a, **params).scores}
    if name == "haas":
        r = M.haas(model, x, y, a, **params)
        return {f"{key}/correct_x": r.correct, f"{key}/correct_ha": r.correct_ha}
    if name == "model_randomisation":
        r = M.model_randomisation(model, x, y, attribution_fn(method), a=a, **params)
        return {f"{key}/{sim}/{i:02d}-{layer}": values[i]
                for sim, values in r.scores.items() for i, layer in enumerate(r.layers)}
    raise ValueError(f"metric {name!r} is not known to the studies; choose a ground-truth metric "
                     f"{sorted(M.GROUND_TRUTH_METRICS)} or one of soft_five_band, "
                     "region_perturbation, aopc, max_sensitivity, avg_sensitivity, haas, "
                     "model_randomisation")


def score_rows(scores: dict[str, Tensor], *, dataset: str, model_id: str, method: MethodSpec,
               sample_ids: Sequence[str], meta: Sequence[dict]) -> list[dict]:
    rows = []
    for metric, values in scores.items():
        values = values.detach().double().cpu().tolist()
        if metric.endswith("@"):
            ids, metas = [f"point:{k:03d}" for k in range(len(values))], [{}] * len(values)
            metric = metric[:-1]
        else:
            ids, metas = sample_ids, meta
        rows += [{"dataset": dataset, "model_id": model_id, "method": method.key, "metric": metric,
                  "sample_id": sid, "value": v, "params": method.params, "meta": extra}
                 for sid, v, extra in zip(ids, values, metas)]
    return rows


def select_samples(run_dir: Path, dataset: GroundTruthDataset, n: int,
                   correct_for: Sequence[str] = ()) -> GroundTruthDataset:
    """The first ``n`` test samples, restricted to those every model in ``correct_for`` classified
    correctly (document 000, section 4.2: the correctly-classified intersection)."""
    test = dataset.split("test")
    keep = np.ones(len(test), dtype=bool)
    ids = test.meta["sample_id"].astype(str).to_numpy()
    if correct_for:
        from salbench.results import query

        frame = query(run_dir, "select model_id, sample_id, value from results "
                               "where metric = 'correct' and method = 'model'")
        for model_id in correct_for:
            right = set(frame.loc[(frame.model_id == model_id) & (frame.value == 1), "sample_id"])
            keep &= np.isin(ids, list(right))
    return test.subset(np.flatnonzero(keep)[:n])


def explain_job(config: dict, ctx: JobContext) -> list[dict]:
    """Explain ``n_samples`` test samples of ``model_id`` with every method and score every metric.

    Config: ``study``, ``data``, ``model_id``, ``methods`` (MethodSpecs; the null baselines are
    registry methods too: ``random_model``, ``sobel``, ``laplace``, ``random``), ``metrics``
    (MetricSpecs), ``n_samples``, ``correct_for``, ``target`` ("true" or "predicted"),
    ``gallery`` (how many samples to save for the report).
    """
    dataset = load_dataset(ctx.run_dir, config["data"])
    samples = select_samples(ctx.run_dir, dataset, config["n_samples"],
                             config.get("correct_for", ()))
    model = load_model(ctx.run_dir, config["model_id"], ctx.device)
    x, y, m = (t.to(ctx.device) for t in (samples.x, samples.y, samples.masks))
    with torch.no_grad():
        predicted = model(x).argmax(1)
    target = predicted if config.get("target", "true") == "predicted" else y
    ids = samples.meta["sample_id"].astype(str).tolist()
    meta = [{"true": int(t), "predicted": int(p), "correct": bool(t == p)}
            for t, p in zip(y.tolist(), predicted.tolist())]
    methods = [MethodSpec.parse(s) for s in config["methods"]]
    metrics = [MetricSpec.parse(s) for s in config["metrics"]]
    rows, maps = [], {}
    for method in methods:
        a = attributions(model, x, target, method)
        maps[method.key] = a[: config.get("gallery", 0)].cpu()
        for metric in metrics:
            rows += score_rows(score(metric, model, x, target, a, m, method),
                               dataset=dataset.name, model_id=config["model_id"], method=method,
                               sample_ids=ids, meta=meta)
    for i in range(min(config.get("gallery", 0), len(ids))):
        save_gallery_item(ctx.run_dir, ids[i], x[i].cpu(), m[i].cpu(),
                          {k: v[i] for k, v in maps.items()}, meta[i], study=config["study"],
                          dataset=dataset.name, model_id=config["model_id"])
    return rows
