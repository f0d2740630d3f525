"""The quickstart's job grid: per dataset one data job, one training job, one explain-and-score
job (every method, every metric) and one gallery job."""

from __future__ import annotations

from salbench.runtime import Job
from salbench.studies.base import Stage
from salbench.studies.quickstart.config import QuickstartConfig

NAME = "quickstart"
JOBS = "salbench.studies.jobs:{}"


def model_id(part: str, arch: str) -> str:
    return f"{part}-{arch}"


def stages(config: QuickstartConfig) -> list[Stage]:
    data, train, explain, gallery = [], [], [], []
    for name, part in config.parts.items():
        spec = part.data.model_copy(update={"seed": config.seed}).model_dump()
        mid = model_id(name, part.model.arch)
        data.append(Job(JOBS.format("data_job"), {"data": spec}, study=NAME,
                        label=f"data {name}"))
        train.append(Job(JOBS.format("train_job"), {
            "data": spec, "seed": config.seed, "model_id": mid,
            "model": part.model.model_dump(), "train": part.train},
            study=NAME, label=f"train {mid}"))
        methods = [m.model_dump() for m in part.methods]
        explain.append(Job(JOBS.format("explain_job"), {
            "data": spec, "seed": config.seed, "model_id": mid, "methods": methods,
            "metrics": [m.model_dump() for m in part.metrics], "n_samples": config.n_samples,
            "target": "predicted"}, study=NAME, label=f"explain and score {mid}"))
        if config.gallery:
            gallery.append(Job(JOBS.format("gallery_job"), {
                "study": NAME, "data": spec, "model_id": mid, "methods": methods,
                "n": config.gallery, "target": "predicted"}, study=NAME,
                label=f"gallery {mid}"))
    return [Stage("data", data), Stage("train", train), Stage("explain and score", explain),
            Stage("gallery", gallery)]
