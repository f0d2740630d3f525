"""The benchmark's jobs: import the user's data into the run, score the model's predictions,
explain and score with one job per method (so a long run resumes method by method), and store a
gallery. Every job loads the user's model from its source (keyed by the file's fingerprint)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from salbench import data as data_stage
from salbench.data.sources import load_source
from salbench.models.loading import LoadedModel, load_model, with_normalisation
from salbench.report import save_gallery_item
from salbench.results import concat, merge_factors, metric_rows
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage
from salbench.studies.benchmark.config import (
    IMAGENET_NORMALISATION,
    BenchmarkConfig,
    DataSource,
    ModelSource,
)
from salbench.studies.jobs import attribution_fn, model_rows, score_map
from salbench.studies.specs import MethodSpec, MetricSpec, digest

NAME = "benchmark"
OWN = "salbench.studies.benchmark.grid:{}"
MODEL_ID = "model"


def dataset_dir(run_dir: Path, source: DataSource) -> Path:
    return Path(run_dir) / "data" / f"user-{digest(source.model_dump())}"


def user_model(source: ModelSource, device: str) -> LoadedModel:
    """The user's model (``salbench.models.loading``), behind its input normalisation."""
    loaded = load_model(source.path, arch=source.arch, num_classes=source.num_classes,
                        device=device)
    if source.normalize == "imagenet":
        mean, std = IMAGENET_NORMALISATION
        model = with_normalisation(loaded.model, mean, std).to(device).eval()
        loaded = LoadedModel(model, loaded.source, loaded.hooks, loaded.description)
    return loaded


def import_job(config: dict, ctx: JobContext) -> None:
    """Snapshot the user's images (and masks) into the run as a salbench dataset, every sample
    in the ``test`` split (they are the images to explain); written aside, then renamed."""
    source = DataSource.parse(config["data"])
    dataset = load_source(source.path, source.masks, source.size, source.channels)
    dataset.meta["split"] = "test"
    out = dataset_dir(ctx.run_dir, source)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    data_stage.save(dataset, partial)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)


def samples(run_dir: Path, source: DataSource, n: int | None):
    dataset = data_stage.load(dataset_dir(run_dir, source))
    return dataset, dataset.subset(range(min(n or len(dataset), len(dataset))))


def predictions_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """How well the model classifies the images (accuracy, …) and its prediction per image."""
    dataset, _ = samples(ctx.run_dir, DataSource.parse(config["data"]), None)
    model = user_model(ModelSource.parse(config["model"]), ctx.device).model
    return model_rows(model, dataset, model_id=MODEL_ID, device=ctx.device)


def method_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """One method's maps of the images and every metric on them (``metrics``), for the true or
    the predicted class (``target``); HAAS counts correct predictions against the true class."""
    dataset, chosen = samples(ctx.run_dir, DataSource.parse(config["data"]), config["n_samples"])
    model = user_model(ModelSource.parse(config["model"]), ctx.device).model
    x, y, m = (t.to(ctx.device) for t in (chosen.x, chosen.y, chosen.masks))
    with torch.inference_mode():
        predicted = model(x).argmax(1)
    target = predicted if config["target"] == "predicted" else y
    method = MethodSpec.parse(config["method"])
    a = attribution_fn(method)(model, x, target)
    ids = chosen.meta["sample_id"].astype(str).tolist()
    meta = [{"true": int(t), "predicted": int(p), "correct": bool(t == p)}
            for t, p in zip(y.tolist(), predicted.tolist())]
    parts = []
    for metric in (MetricSpec.parse(s) for s in config["metrics"]):
        result = score_map(metric, method, a, model=model, x=x, target=target, y=y, m=m)
        parts.append(metric_rows(result, dataset=dataset.name, model_id=MODEL_ID,
                                 method=method.key, sample_ids=ids, method_params=method.params,
                                 meta=meta, factors=merge_factors(metric.row_factors())))
    return concat(parts)


def gallery_job(config: dict, ctx: JobContext) -> None:
    """The first ``n`` images with every method's map, for the report's gallery."""
    dataset, chosen = samples(ctx.run_dir, DataSource.parse(config["data"]), config["n"])
    model = user_model(ModelSource.parse(config["model"]), ctx.device).model
    x, y = chosen.x.to(ctx.device), chosen.y.to(ctx.device)
    with torch.inference_mode():
        predicted = model(x).argmax(1)
    target = predicted if config["target"] == "predicted" else y
    maps = {}
    for spec in config["methods"]:
        method = MethodSpec.parse(spec)
        maps[method.key] = attribution_fn(method)(model, x, target).cpu()
    for i, sid in enumerate(chosen.meta["sample_id"].astype(str)):
        save_gallery_item(ctx.run_dir, sid, x[i].cpu(), chosen.masks[i],
                          {k: v[i] for k, v in maps.items()},
                          {"true": int(y[i]), "predicted": int(predicted[i])}, study=NAME,
                          dataset=dataset.name, model_id=MODEL_ID)


def stages(config: BenchmarkConfig) -> list[Stage]:
    """import → predictions → one explain-and-score job per method → gallery. ``methods`` and
    ``metrics`` must be settled (:func:`salbench.studies.benchmark.plan.plan`)."""
    if config.methods is None or config.metrics is None:
        raise ValueError("the benchmark's methods and metrics must be planned first "
                         "(salbench.studies.benchmark.run_benchmark does it)")
    base = {"data": config.data.model_dump(), "model": config.model.model_dump()}
    jobs = [Job(OWN.format("method_job"), {
        **base, "method": method.model_dump(), "n_samples": config.n_samples,
        "target": config.target, "seed": config.seed,
        "metrics": [m.model_dump() for m in config.metrics if m.applies_to(method)]},
        study=NAME, label=f"{method.key}") for method in config.methods]
    gallery = [Job(OWN.format("gallery_job"), {
        **base, "methods": [m.model_dump() for m in config.methods], "n": config.gallery,
        "target": config.target}, study=NAME, label="gallery")] if config.gallery else []
    return [Stage("import data", [Job(OWN.format("import_job"), {"data": base["data"]},
                                      study=NAME, label="import data")]),
            Stage("model predictions", [Job(OWN.format("predictions_job"), base, study=NAME,
                                            label="predictions")]),
            Stage("explain and score", jobs), Stage("gallery", gallery)]
