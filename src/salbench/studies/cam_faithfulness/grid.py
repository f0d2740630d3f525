"""The cam-faithfulness job grid: data → train (arch × head) → table 1 → explain and score →
gallery, and the study's own job (table 1's measurements).

Row factors: every row of a model carries ``arch``, ``head`` and ``trained``; table-1 rows add
``layer_choice`` and ``layer``; AOPC rows ``region`` (px as applied) and ``heatmap`` (the
document's heatmap size, "8x8"); max-sensitivity rows ``radius`` (as applied) and
``document_radius`` (on the document's [−1, 1] scale).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any, get_args

import torch

from salbench.config import ConfigError
from salbench.explain import cam_layers
from salbench.metrics import score
from salbench.models import ModelSpec, build_spec, make_explainable, randomise_biases
from salbench.results import concat, merge_factors, metric_rows
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage
from salbench.studies.cam_faithfulness.config import (
    DOCUMENT_RANGE,
    DOCUMENT_SIZE,
    Arch,
    CamFaithfulnessConfig,
    initial_weights,
)
from salbench.studies.jobs import (
    build_model,
    load_dataset,
    load_model,
    select_samples,
)
from salbench.studies.specs import DataSpec, MethodSpec

NAME = "cam-faithfulness"
JOBS = "salbench.studies.jobs:{}"
OWN = "salbench.studies.cam_faithfulness.grid:{}"

METHODS = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}
CAM = "CAM"  # the method label of CAM / (D1·D2) in table 1's rows
HEAD_SHORT = {"conv_flatten_fc": "flatten", "gap_fc": "gap", "classifier": "dense"}


def model_id(arch: str, head: str, trained: bool = True) -> str:
    return f"{arch}-{HEAD_SHORT[head]}" + ("" if trained else "-untrained")


def model_factors(arch: str, head: str, trained: bool = True) -> dict[str, Any]:
    """The columns every row of a model carries."""
    return {"arch": arch, "head": head, "trained": trained}


@cache
def layer_name(arch: str, head: str, choice: str) -> str:
    """:func:`salbench.explain.cam_layers` of ``arch`` with ``head`` (names do not depend on
    width or size); VGG's ``last_conv2d`` is its ``last``."""
    spec = ModelSpec(arch=arch, width=0.0625, head=head, num_classes=2, in_channels=3,
                     input_size=DOCUMENT_SIZE, explainable=True)
    layers = cam_layers(build_spec(spec))
    return layers.get(choice, layers["last"])


def scaled_region(region: int, size: int) -> int:
    """A document region size (px at 224) scaled to ``size`` px images, at least 1."""
    return max(1, round(region * size / DOCUMENT_SIZE))


def heatmap_label(region: int) -> str:
    """The document's heatmap size of a region size at 224 px (56 → 4x4, 21 → 11x11)."""
    n = math.ceil(DOCUMENT_SIZE / region)
    return f"{n}x{n}"


def applied_radius(radius: float, input_range: tuple[float, float]) -> float:
    """A radius on the document's [−1, 1] scale, scaled to ``input_range`` (same share of it)."""
    lo, hi = input_range
    return radius * (hi - lo) / (DOCUMENT_RANGE[1] - DOCUMENT_RANGE[0])


def data_spec(config: CamFaithfulnessConfig) -> DataSpec:
    """The run's dataset spec: the embedded data, or the user's folder (``DataSpec`` kind
    ``folder``, snapshotted into the run by ``jobs.data_job``)."""
    if config.folder is None:
        return config.data.model_copy(update={"seed": config.seed})
    folder = config.folder.model_dump()
    size = folder.pop("size")
    return DataSpec(kind="folder", n=1, size=size, seed=0, params=folder)


def train_settings(config: CamFaithfulnessConfig, arch: str) -> dict[str, Any]:
    """The training preset and overrides of ``arch``: ``train`` updated by ``train_per_arch``
    (document 003, table 3 trains each model with its own settings)."""
    return {**config.train, **config.train_per_arch.get(arch, {})}


def method_specs(config: CamFaithfulnessConfig, arch: str, head: str) -> list[dict]:
    """Grad-CAM and HiResCAM at ``cam.layer`` with ``cam.relu`` / ``cam.minmax``."""
    params = {"layer": layer_name(arch, head, config.cam.layer), "relu": config.cam.relu,
              "minmax": config.cam.minmax}
    return [MethodSpec(name=name, label=label, params=params).model_dump()
            for name, label in METHODS.items()]


def faithfulness_metrics(config: CamFaithfulnessConfig, size: int) -> list[dict]:
    """AOPC per region size (section 4.3) and max-sensitivity per table-6 row (section 4.4)."""
    lo, hi = config.input_range
    budget = {} if config.memory_budget is None else {"memory_budget": config.memory_budget}
    metrics = []
    for r in config.aopc_regions:
        region = scaled_region(r, size)
        metrics.append({"name": "aopc", "params": {
            "region": region, "fill": "uniform", "noise": config.aopc_noise,
            "input_range": [lo, hi], "score": "probability", "seed": config.seed, **budget},
            "factors": {"region": region, "heatmap": heatmap_label(r)}})
    for radius, iterations in config.sensitivity:
        applied = applied_radius(radius, config.input_range)
        metrics.append({"name": "max_sensitivity", "params": {
            "radius": applied, "n_samples": iterations, "target": "predicted",
            "seed": config.seed, **budget},
            "factors": {"radius": applied, "document_radius": radius}})
    return metrics


def check(config: CamFaithfulnessConfig) -> None:
    """Refuse a config the grid cannot run, naming the key."""
    lo, hi = config.input_range
    if not hi > lo:
        raise ConfigError(f"input_range must be (low, high) with high > low, got {(lo, hi)}")
    if not config.archs or not config.heads:
        raise ConfigError("archs and heads must each name at least one entry")
    if any(r < 1 for r in config.aopc_regions) or not config.aopc_regions:
        raise ConfigError("aopc_regions must be positive region sizes in px at 224 px, "
                          f"got {config.aopc_regions}")
    if any(r <= 0 or n < 1 for r, n in config.sensitivity) or not config.sensitivity:
        raise ConfigError("sensitivity must be (radius > 0, iterations >= 1) pairs, "
                          f"got {config.sensitivity}")
    if "preset" not in config.train:
        raise ConfigError("train must name a training preset, e.g. {preset: cam}")
    unknown = sorted(set(config.train_per_arch) - set(get_args(Arch)))
    if unknown:
        raise ConfigError(f"train_per_arch keys must be architectures of {get_args(Arch)}, "
                          f"got {unknown}")


# ---------------------------------------------------------------- the study's jobs

def _sample_meta(y: torch.Tensor, predicted: torch.Tensor) -> list[dict]:
    return [{"true": int(t), "predicted": int(p), "correct": bool(t == p)}
            for t, p in zip(y.tolist(), predicted.tolist())]


def theory_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """Table 1 measured (metric ``cam_identities``) on the first ``n_samples`` test images of one
    model, for the predicted class, at every layer choice in ``layers``: Grad-CAM and HiResCAM,
    and CAM / (D1·D2) at ``last`` on GAP models. ``trained = False`` builds an untrained model of
    ``model`` with biases from N(0, ``bias_std``²) (the Dense row)."""
    dataset = load_dataset(ctx.run_dir, config["data"])
    samples = select_samples(ctx.run_dir, dataset, config["n_samples"])
    spec = ModelSpec.parse(config["model"])
    if config["trained"]:
        model = load_model(ctx.run_dir, config["model_id"], ctx.device)
    else:
        model = make_explainable(build_model(spec, dataset))
        randomise_biases(model, config["bias_std"], config["seed"])
        model = model.to(ctx.device).eval()
    x, y = samples.x.to(ctx.device), samples.y.to(ctx.device)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    ids = samples.meta["sample_id"].astype(str).tolist()
    layers = {c: name for c, name in cam_layers(model).items() if c in config["layers"]}
    parts = []
    for choice, layer in layers.items():
        kinds = dict(METHODS)
        if spec.head == "gap_fc" and choice == "last":
            kinds["cam"] = CAM
        for kind, label in kinds.items():
            result = score("cam_identities", model=model, x=x, y=predicted, kind=kind,
                           layer=layer)
            parts.append(metric_rows(
                result, dataset=dataset.name, model_id=config["model_id"], method=label,
                sample_ids=ids, meta=_sample_meta(y, predicted),
                factors=merge_factors(config["factors"],
                                      {"layer_choice": choice, "layer": layer})))
    return concat(parts)


# ---------------------------------------------------------------- the grid

def stages(config: CamFaithfulnessConfig) -> list[Stage]:
    """data → train (arch × head) → table 1 → explain and score (AOPC and max-sensitivity on
    correctly classified images; HAAS) → gallery."""
    check(config)
    spec = data_spec(config)
    data = spec.model_dump()
    models = [(arch, head) for arch in config.archs for head in config.heads]

    def model_dump(arch: str, head: str, weights: str | None = None) -> dict:
        return ModelSpec(arch=arch, width=config.width, head=head, weights=weights).model_dump()

    def train_jobs(run_dir: Path) -> list[Job]:
        classes = load_dataset(run_dir, spec).classes
        monitored = [i for i, c in enumerate(classes) if c not in config.normal_classes]
        jobs = []
        for arch, head in models:
            mid = model_id(arch, head)
            train = {**train_settings(config, arch), "monitored_classes": monitored or None}
            job = {"data": data, "seed": config.seed, "model_id": mid,
                   "model": model_dump(arch, head, initial_weights(config, arch)),
                   "factors": model_factors(arch, head),
                   "train": train}
            if config.degree:
                job["degree"] = config.degree
            jobs.append(Job(JOBS.format("train_job"), job, study=NAME, label=f"train {mid}"))
        return jobs

    table1 = {"data": data, "seed": config.seed, "layers": list(config.table1.layers),
              "n_samples": config.table1.n_samples}
    theory = [Job(OWN.format("theory_job"), {
        **table1, "model_id": model_id(arch, head), "trained": True,
        "model": model_dump(arch, head), "factors": model_factors(arch, head)},
        study=NAME, label=f"table 1 {model_id(arch, head)}") for arch, head in models]
    theory += [Job(OWN.format("theory_job"), {
        **table1, "model_id": model_id(arch, "classifier", trained=False), "trained": False,
        "model": model_dump(arch, "classifier"), "bias_std": config.table1.dense_bias_std,
        "factors": model_factors(arch, "classifier", trained=False)},
        study=NAME, label=f"table 1 {arch} dense head") for arch in config.table1.dense_archs]

    explain, gallery = [], []
    metrics = faithfulness_metrics(config, spec.size)
    for arch, head in models:
        mid = model_id(arch, head)
        common = {"data": data, "seed": config.seed, "model_id": mid,
                  "methods": method_specs(config, arch, head)}
        explain.append(Job(JOBS.format("explain_job"), {
            **common, "metrics": metrics, "n_samples": config.n_samples, "correct_for": [mid],
            "target": "true", "factors": model_factors(arch, head)},
            study=NAME, label=f"AOPC and max-sensitivity {mid}"))
        # HAAS (section 2.2.3): maps of the predicted class on the first n_haas test images,
        # right or wrong; the registry gives HAAS the true classes to count correct predictions.
        explain.append(Job(JOBS.format("explain_job"), {
            **common, "metrics": [{"name": "haas",
                                   "params": {"input_range": list(config.input_range)}}],
            "n_samples": config.n_haas, "target": "predicted",
            "factors": model_factors(arch, head)}, study=NAME, label=f"HAAS {mid}"))
        if config.gallery:
            gallery.append(Job(JOBS.format("gallery_job"), {
                **common, "study": NAME, "n": config.gallery, "correct_for": [mid],
                "target": "true"}, study=NAME, label=f"gallery {mid}"))
    return [Stage("data", [Job(JOBS.format("data_job"), {"data": data}, study=NAME,
                               label="data")]),
            Stage("train", train_jobs), Stage("table 1", theory),
            Stage("explain and score", explain), Stage("gallery", gallery)]
