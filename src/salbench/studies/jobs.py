"""The jobs every study shares: write a dataset, train a model, explain and score, store a gallery.

Each job is a pure function of its config (:mod:`salbench.runtime.jobs`), and each config holds
only that job's inputs, so changing anything else (a gallery size, a report setting) reruns
nothing. Artifacts go to the run folder: datasets to ``data/<kind>-<hash>/``, checkpoints to
``models/<model_id>.safetensors``, gallery samples to ``report/gallery/``; rows go to the result
tables (:mod:`salbench.results.tables`).
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from salbench import data as data_stage
from salbench.data import GroundTruthDataset, cells, folders, mri_lesions
from salbench.explain import absolute, explain
from salbench.metrics import get_metric, score
from salbench.models import ModelSpec, build_spec, freeze_for_degree, make_explainable
from salbench.models.checkpoints import load as load_checkpoint
from salbench.models.checkpoints import save as save_checkpoint
from salbench.models.training import fit, preset
from salbench.report import save_gallery_item
from salbench.results import concat, merge_factors, metric_rows, query
from salbench.runtime import JobContext
from salbench.studies.specs import DataSpec, MethodSpec, MetricSpec, digest

EXPLAIN_BATCH = 16  # samples per explain() call


# ---------------------------------------------------------------- data

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
    """The run's dataset of ``spec``, opened once per process and manifest (a study's many jobs
    on one dataset each opened all its shards' metadata: lrp-grid small, 10 s in 216 jobs)."""
    spec = spec if isinstance(spec, DataSpec) else DataSpec.parse(spec)
    path = dataset_dir(run_dir, spec)
    return _open_dataset(path, file_stamp(path / "manifest.json"))


def file_stamp(path: Path) -> tuple[int, int] | None:
    """Modification time (ns) and size of ``path``: a rewritten file is another cache key."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _open_dataset(path: Path, stamp: tuple[int, int] | None) -> GroundTruthDataset:
    return data_stage.load(path)


# ---------------------------------------------------------------- models

def checkpoint_path(run_dir: Path, model_id: str) -> Path:
    return Path(run_dir) / "models" / f"{model_id}.safetensors"


def build_model(spec: ModelSpec | dict, dataset: GroundTruthDataset) -> nn.Module:
    """A fresh model of ``spec`` shaped for ``dataset`` (classes, channels, image size)."""
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    _, c, h, _ = dataset.x[:1].shape
    return build_spec(spec.for_data(len(dataset.classes), int(c), int(h)))


def load_trunk(model: nn.Module, path: Path) -> None:
    """Copy every parameter of the checkpoint at ``path`` whose name and shape match ``model``."""
    source, _ = load_checkpoint(path)
    own = model.state_dict()
    matched = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(f"init checkpoint {str(path)!r} shares no parameter with the model")
    model.load_state_dict(matched, strict=False)


def load_model(run_dir: Path, model_id: str, device: str) -> nn.Module:
    """The trained model ``model_id`` of the run on ``device``, explainable (no in-place or
    reused ReLUs): a copy of the checkpoint read once per process, file version and device
    (lrp-grid small's 216 jobs read it in 12 s), so no job sees another's changes to its model.
    The copy is made on the device itself: on a GPU a device-to-device copy per job instead of
    sending the weights from host memory again (VGG-16's 512 MB: 0.12 s per job to copy on
    the host, measured)."""
    path = checkpoint_path(run_dir, model_id)
    return copy.deepcopy(_read_model(path, file_stamp(path), device)).eval()


@functools.lru_cache(maxsize=2)
def _read_model(path: Path, stamp: tuple[int, int] | None, device: str) -> nn.Module:
    model, _ = load_checkpoint(path)
    return make_explainable(model).to(device).eval()


def model_rows(model: nn.Module, dataset: GroundTruthDataset, *, model_id: str, device: str,
               factors: dict[str, Any] | None = None) -> dict[str, list[dict]]:
    """The model's test-set scores: ``summaries`` (accuracy, balanced accuracy, … of the
    ``classification`` metric) and one ``predictions`` row per test sample."""
    test = dataset.split("test")
    model = model.to(device).eval()
    result = score("classification", model=model, x=test.x.to(device), y=test.y.to(device))
    ids = test.meta["sample_id"].astype(str).tolist()
    factors = dict(factors or {})
    rows = metric_rows(result, dataset=dataset.name, model_id=model_id, method="",
                       sample_ids=ids, factors=factors)
    predicted = result.values["predicted"].long().tolist()
    rows["predictions"] = [{"dataset": dataset.name, "model_id": model_id, "split": "test",
                            "sample_id": sid, "true": t, "predicted": p, "correct": t == p,
                            **factors}
                           for sid, t, p in zip(ids, test.y.tolist(), predicted)]
    return {"summaries": rows["summaries"], "predictions": rows["predictions"]}


def train_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """Build (or start from ``init``'s checkpoint), freeze to ``degree``, ``fit`` and save.

    Config keys: ``model_id``, ``data`` (DataSpec), ``model`` (ModelSpec), ``train`` (a training
    preset name plus overrides: ``{"preset": "mri", "lr": 0.01, ...}``), optional ``init`` (the
    model_id of a checkpoint to start from; its head is replaced when the classes differ),
    ``degree`` (fine-tuning degree, with optional ``direction`` and ``slicing`` as in
    ``salbench.models.freeze_for_degree``), ``factors`` (columns for the rows). Rows: the model's
    test-set scores (:func:`model_rows`).
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
    train_config = preset(train.pop("preset"), arch, seed=ctx.seed, device=ctx.device, **train)
    result = fit(model, dataset.split("train"), dataset.split("val"), train_config)
    rows = model_rows(model, dataset, model_id=config["model_id"], device=ctx.device,
                      factors=config.get("factors"))
    scores = {r["output"]: r["value"] for r in rows["summaries"]}
    save_checkpoint(model, checkpoint_path(ctx.run_dir, config["model_id"]),
                    meta={"model_id": config["model_id"], "config": config,
                          "test_scores": scores, "stop_reason": result.stop_reason,
                          "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                          "classes": dataset.classes})
    return rows


# ---------------------------------------------------------------- explaining and scoring

def attribution_fn(method: MethodSpec) -> Callable[[nn.Module, Tensor, Tensor], Tensor]:
    """``explain_fn(model, x, y)`` of a method spec, batched, with its post-processing."""
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        maps = [explain(model, x[i:i + EXPLAIN_BATCH], y[i:i + EXPLAIN_BATCH], method.name,
                        **method.params) for i in range(0, len(x), EXPLAIN_BATCH)]
        a = torch.cat(maps)
        return absolute(a) if method.absolute else a

    return run


def correctly_classified(run_dir: Path, model_ids: Sequence[str]) -> set[str]:
    """Test sample ids every model in ``model_ids`` classified correctly (from ``predictions``)."""
    if not model_ids:
        return set()
    ids = ", ".join(f"'{m}'" for m in model_ids)
    frame = query(run_dir, "select sample_id from predictions where correct and model_id in "
                           f"({ids}) group by sample_id having count(distinct model_id) = "
                           f"{len(set(model_ids))}")
    return set(frame.sample_id)


def select_samples(run_dir: Path, dataset: GroundTruthDataset, n: int,
                   correct_for: Sequence[str] = ()) -> GroundTruthDataset:
    """The first ``n`` test samples, restricted to those every model in ``correct_for`` classified
    correctly (document 000, section 4.2: the correctly-classified intersection)."""
    test = dataset.split("test")
    keep = np.ones(len(test), dtype=bool)
    if correct_for:
        ids = test.meta["sample_id"].astype(str).to_numpy()
        keep = np.isin(ids, list(correctly_classified(run_dir, correct_for)))
    return test.subset(np.flatnonzero(keep)[:n])


def score_map(metric: MetricSpec, method: MethodSpec, a: Tensor, *, model: nn.Module, x: Tensor,
              target: Tensor, y: Tensor, m: Tensor):
    """One metric on one method's maps ``a`` (of the classes ``target``), with the inputs the
    metric's kind needs; ``y`` (true classes) goes to metrics that count correct predictions."""
    spec = get_metric(metric.name)
    inputs = {"a": a, "m": m, "model": model, "x": x,
              "y": y if spec.labels == "true" else target, "explain_fn": attribution_fn(method)}
    needed = spec.inputs
    return score(metric.name, **{k: inputs[k] for k in needed},
                 **({"a": a} if "explain_fn" in needed else {}), **metric.params)


def explain_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """Explain ``n_samples`` test samples of one model with every method and score every metric.

    Config: ``study``, ``data``, ``model_id``, ``methods`` (MethodSpecs; the null baselines are
    registry methods too: ``random_model``, ``sobel``, ``laplace``, ``random``), ``metrics``
    (MetricSpecs), ``n_samples``, ``correct_for``, ``target`` ("true" or "predicted"),
    ``factors`` (the model's columns, e.g. corpus and degree). The data, the model and its
    forward pass are loaded once for all methods and metrics.
    """
    dataset = load_dataset(ctx.run_dir, config["data"])
    samples = select_samples(ctx.run_dir, dataset, config["n_samples"],
                             config.get("correct_for", ()))
    if len(samples) == 0:
        raise ValueError(f"no test sample to explain for {config['model_id']!r} (correct_for "
                         f"{list(config.get('correct_for', ()))} selected none)")
    model = load_model(ctx.run_dir, config["model_id"], ctx.device)
    x, y, m = (t.to(ctx.device) for t in (samples.x, samples.y, samples.masks))
    with torch.inference_mode():
        predicted = model(x).argmax(1)
    target = predicted if config.get("target", "true") == "predicted" else y
    ids = samples.meta["sample_id"].astype(str).tolist()
    meta = [{"true": int(t), "predicted": int(p), "correct": bool(t == p)}
            for t, p in zip(y.tolist(), predicted.tolist())]
    model_factors = config.get("factors", {})
    parts = []
    for method in (MethodSpec.parse(s) for s in config["methods"]):
        a = attribution_fn(method)(model, x, target)
        for metric in (MetricSpec.parse(s) for s in config["metrics"]):
            if not metric.applies_to(method):
                continue
            result = score_map(metric, method, a, model=model, x=x, target=target, y=y, m=m)
            parts.append(metric_rows(
                result, dataset=dataset.name, model_id=config["model_id"], method=method.key,
                sample_ids=ids, method_params=method.params, meta=meta,
                factors=merge_factors(model_factors, method.factors, metric.row_factors())))
    return concat(parts)


def gallery_job(config: dict, ctx: JobContext) -> None:
    """Store the maps of every method for the first ``n`` samples of ``explain_job``'s selection
    (same keys: ``data``, ``model_id``, ``methods``, ``correct_for``, ``target``) in the report
    gallery; its own job, so a changed gallery size reruns no scoring."""
    dataset = load_dataset(ctx.run_dir, config["data"])
    samples = select_samples(ctx.run_dir, dataset, config["n"], config.get("correct_for", ()))
    model = load_model(ctx.run_dir, config["model_id"], ctx.device)
    x, y, m = (t.to(ctx.device) for t in (samples.x, samples.y, samples.masks))
    with torch.inference_mode():
        predicted = model(x).argmax(1)
    target = predicted if config.get("target", "true") == "predicted" else y
    methods = [MethodSpec.parse(s) for s in config["methods"]]
    maps = {method.key: attribution_fn(method)(model, x, target).cpu() for method in methods}
    ids = samples.meta["sample_id"].astype(str).tolist()
    for i, sid in enumerate(ids):
        meta = {"true": int(y[i]), "predicted": int(predicted[i]),
                "correct": bool(y[i] == predicted[i])}
        save_gallery_item(ctx.run_dir, sid, x[i].cpu(), m[i].cpu(),
                          {k: v[i] for k, v in maps.items()}, meta, study=config["study"],
                          dataset=dataset.name, model_id=config["model_id"])
