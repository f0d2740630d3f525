"""Benchmark your own model on your own images: which saliency method can you trust for it?

``salbench benchmark --model model.pt --data images/ --masks masks/`` (or
:func:`run_benchmark`) loads the model (``salbench.models.loading``) and the images
(``salbench.data.sources``), plans every method and metric that applies and what it costs
(:mod:`~salbench.studies.benchmark.plan`), runs one resumable job per method into a run folder,
writes the report and returns the ``results`` table; the summary ranks the methods per score and
recommends one (:mod:`~salbench.studies.benchmark.analysis`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from salbench.data.sources import load_source
from salbench.results import read_results
from salbench.runtime import resolve_device, seed_everything
from salbench.studies.base import Study, register, run_study
from salbench.studies.benchmark import plan as planning
from salbench.studies.benchmark.config import BenchmarkConfig
from salbench.studies.benchmark.grid import NAME, stages, user_model
from salbench.studies.benchmark.report import PLAN_FILE, report_section
from salbench.studies.specs import MethodSpec, MetricSpec

PROBE = 2  # images each method is tried on before the run


def fingerprint(path: str) -> str:
    """Size and modification time of a file or of a folder's files ("" for a factory)."""
    p = Path(path)
    if p.is_file():
        return f"{p.stat().st_size}-{p.stat().st_mtime_ns}"
    if p.is_dir():
        stats = [f.stat() for f in p.rglob("*") if f.is_file()]
        latest = max((s.st_mtime_ns for s in stats), default=0)
        return f"{len(stats)}-{sum(s.st_size for s in stats)}-{latest}"
    return ""


def make_plan(config: BenchmarkConfig, device: str = "cpu") -> planning.Plan:
    """Load the data and the model, check that they fit, and settle the methods and metrics
    (:mod:`~salbench.studies.benchmark.plan`): every failure is a one-line ``ValueError``."""
    dataset = load_source(config.data.path, config.data.masks, config.data.size,
                          config.data.channels)
    loaded = user_model(config.model, device)
    x = dataset.x[:PROBE].to(device)
    try:
        with torch.inference_mode():
            out = loaded.model(x)
    except RuntimeError as err:
        raise ValueError(f"--data images are {tuple(x.shape[1:])} (C, H, W) but the model fails "
                         f"on them: {str(err).strip().splitlines()[0][:160]}") from None
    if out.ndim != 2:
        raise ValueError(f"--model must return class scores [N, K], got shape {tuple(out.shape)}")
    if int(dataset.y.max()) >= out.shape[1]:
        raise ValueError(f"--data holds class {int(dataset.y.max())} but the model has "
                         f"{out.shape[1]} outputs (classes 0..{out.shape[1] - 1})")
    y = dataset.y[:PROBE].to(device)
    target = out.argmax(1) if config.target == "predicted" else y
    size = int(dataset.x.shape[-1])
    methods = config.methods or planning.method_specs(config.preset, size)
    skipped_methods = {}
    if not loaded.hooks:
        for m in methods:
            if planning.requires(m) != "none":
                skipped_methods[m.key] = ("needs hooks on the model's modules, which a "
                                          "TorchScript model does not allow")
        methods = [m for m in methods if m.key not in skipped_methods]
    methods, failed, seconds = planning.probe(loaded.model, x, target, methods)
    skipped_methods |= failed
    if not methods:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(skipped_methods.items())[:3])
        raise ValueError(f"no method can run on this model ({reasons})")
    masks = planning.mask_kind(dataset)
    metrics, skipped_metrics = planning.metric_specs(config.preset, size, masks,
                                                     scripted=not loaded.hooks)
    if loaded.hooks:
        metrics.append(planning.randomisation_spec(loaded.model, config.preset))
    if config.metrics is not None:
        metrics = config.metrics
    n = min(config.n_samples or len(dataset), len(dataset))
    cost = planning.estimate(methods, metrics, seconds,
                             planning.forward_seconds(loaded.model, x), n,
                             tuple(dataset.x.shape[1:]), loaded.model)
    return planning.Plan(methods, metrics, skipped_methods, skipped_metrics, cost, n)


def run_benchmark(model: str | Path, data: str | Path, *, masks: str | Path | None = None,
                  arch: str | None = None, num_classes: int | None = None,
                  normalize: str = "none", size: int | None = None, channels: int = 3,
                  preset: str = "fast", methods: list[str] | None = None,
                  metrics: list[str] | None = None, n_samples: int | None = None,
                  target: str = "true", out: str | Path | None = None, device: str = "auto",
                  gallery: int = 4, dry_run: bool = False,
                  plan: planning.Plan | None = None) -> pd.DataFrame | planning.Plan:
    """Benchmark every applicable saliency method on ``model`` with the images ``data`` (and
    ``masks``): see ``salbench benchmark --help`` for each argument. Returns the ``results``
    table of the run (``out``, default ``runs/benchmark-<model file>``), or the
    :class:`~salbench.studies.benchmark.plan.Plan` without running anything when ``dry_run``
    (pass it back as ``plan`` to run it without planning again)."""
    dev = str(resolve_device(device))
    seed_everything(0)
    config = BenchmarkConfig.parse({
        "model": {"path": str(model), "arch": arch, "num_classes": num_classes,
                  "normalize": normalize, "fingerprint": fingerprint(str(model))},
        "data": {"path": str(data), "masks": None if masks is None else str(masks),
                 "size": size, "channels": channels,
                 "fingerprint": fingerprint(str(data)) + fingerprint(str(masks or ""))},
        "preset": preset, "n_samples": n_samples, "target": target, "gallery": gallery,
        "methods": None if methods is None else [{"name": m} for m in methods],
        "metrics": None if metrics is None else [{"name": m} for m in metrics]})
    found = plan if plan is not None else make_plan(config, dev)
    if dry_run:
        return found
    config = config.model_copy(update={
        "methods": [MethodSpec.parse(m.model_dump()) for m in found.methods],
        "metrics": [MetricSpec.parse(m.model_dump()) for m in found.metrics]})
    run_dir = Path(out) if out is not None else Path("runs") / f"benchmark-{Path(model).stem}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / PLAN_FILE).write_text(json.dumps({
        "skipped_methods": found.skipped_methods, "skipped_metrics": found.skipped_metrics,
        "estimated_seconds": found.seconds, "n_samples": found.n_samples}, indent=1) + "\n")
    summaries = run_study(STUDY, config, run_dir, device=dev, scale=preset)
    failed = {k: v for s in summaries.values() for k, v in s.failed.items()}
    if failed:
        key, message = next(iter(failed.items()))
        raise RuntimeError(f"{len(failed)} benchmark job(s) failed, e.g. {key}: {message} "
                           f"(details in {run_dir / 'logs' / 'salbench.log'})")
    return read_results(run_dir)


STUDY = register(Study(NAME, "benchmark your own model on your own images (salbench benchmark)",
                       BenchmarkConfig, {}, stages, report_section))
