"""The cells study's job grid: data → base models (continuous mode) → branches (regular
evaluation) → one explain-and-score job per branch → the gallery of figures 5–6.

Every model's rows carry its factors: ``architecture`` (the config's model name; ``"alexnet"``
for the variants), ``mode`` (``"continuous"`` for a base model, ``"regular"`` for a branch),
``branch`` (0 … branches − 1, branches only) and ``added_conv_layers`` (0 for the table-1
models, k for AlexNet + k, section 4.1). The AlexNet + k variants are trained like one branch:
a base model in continuous mode, then one regular-evaluation run from it.
"""

from __future__ import annotations

from typing import Any

from salbench.models import ModelSpec
from salbench.runtime import Job
from salbench.studies.base import Stage
from salbench.studies.cells.config import (
    CONTINUOUS,
    REGULAR,
    CellsConfig,
    CellsModel,
    initial_weights,
)
from salbench.studies.specs import DataSpec

NAME = "cells"
JOBS = "salbench.studies.jobs:{}"
VARIANT = "alexnet"  # the architecture section 4.1 adds layers to


def data_spec(config: CellsConfig, size: int) -> DataSpec:
    return DataSpec(kind="cells", n=config.n, size=size, seed=config.seed,
                    params={"shard_size": config.shard_size})


def base_id(name: str) -> str:
    return f"{name}-base"


def branch_id(name: str, branch: int) -> str:
    return f"{name}-b{branch}"


def variant_id(added: int) -> str:
    return f"{VARIANT}+{added}"


def _train(config: CellsConfig, data: dict, model: dict, model_id: str, mode: str,
           overrides: dict, factors: dict[str, Any], init: str | None = None) -> Job:
    job = {"data": data, "seed": config.seed, "model_id": model_id, "model": model,
           "train": {"preset": CONTINUOUS if mode == "continuous" else REGULAR, **overrides},
           "factors": {**factors, "mode": mode}}
    if init:
        job["init"] = init
    return Job(JOBS.format("train_job"), job, study=NAME, label=f"train {model_id}")


def _explain(config: CellsConfig, data: dict, model_id: str, factors: dict[str, Any]) -> Job:
    return Job(JOBS.format("explain_job"), {
        "data": data, "seed": config.seed, "model_id": model_id,
        "methods": [m.model_dump() for m in config.methods],
        "metrics": [m.model_dump() for m in config.metrics],
        "n_samples": config.n_samples, "target": "predicted",
        "factors": {**factors, "mode": "regular"}}, study=NAME, label=f"explain {model_id}")


def _model_spec(model: CellsModel) -> dict:
    return ModelSpec(arch=model.arch, width=model.width,
                     weights=initial_weights(model)).model_dump()


def stages(config: CellsConfig) -> list[Stage]:
    sizes = sorted({m.size for m in config.models.values()}
                   | ({config.variant_size} if config.alexnet_added_layers else set()))
    specs = {s: data_spec(config, s).model_dump() for s in sizes}
    data = [Job(JOBS.format("data_job"), {"data": specs[s]}, study=NAME,
                label=f"cells data {s}px") for s in sizes]
    base, branches, explain, gallery = [], [], [], []
    methods = [m.model_dump() for m in config.methods]
    for name, model in config.models.items():
        spec, data_of = _model_spec(model), specs[model.size]
        factors = {"architecture": name, "added_conv_layers": 0}
        base.append(_train(config, data_of, spec, base_id(name), "continuous", model.continuous,
                           factors))
        for b in range(config.branches):
            model_id, own = branch_id(name, b), {**factors, "branch": b}
            branches.append(_train(config, data_of, spec, model_id, "regular", model.regular,
                                   own, init=base_id(name)))
            explain.append(_explain(config, data_of, model_id, own))
        if config.gallery:
            gallery.append(Job(JOBS.format("gallery_job"), {
                "study": NAME, "data": data_of, "model_id": branch_id(name, 0),
                "methods": methods, "n": config.gallery, "target": "predicted"},
                study=NAME, label=f"gallery {branch_id(name, 0)}"))
    for added in config.alexnet_added_layers:
        spec = ModelSpec(arch=VARIANT, width=config.variant_width,
                         added_conv_layers=added).model_dump()
        data_of, model_id = specs[config.variant_size], variant_id(added)
        factors = {"architecture": VARIANT, "added_conv_layers": added}
        base.append(_train(config, data_of, spec, base_id(model_id), "continuous",
                           config.variant_continuous, factors))
        branches.append(_train(config, data_of, spec, model_id, "regular",
                               config.variant_regular, {**factors, "branch": 0},
                               init=base_id(model_id)))
        explain.append(_explain(config, data_of, model_id, {**factors, "branch": 0}))
    return [Stage("data", data), Stage("base models (continuous mode)", base),
            Stage("branches (regular evaluation)", branches),
            Stage("explain and score", explain), Stage("gallery", gallery)]
