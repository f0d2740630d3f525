"""The lrp-grid job grid: data → train the VGG-16 (embedded data only) → one job per grid point
(composite × stabiliser × first × second: its maps, their finiteness and conservation, the
region-perturbation AUC in every order) → at the default and optimal points of each composite and
stabiliser, the relevance through the layers and, in its own job, the gallery maps.

Each job's config holds only its inputs (where the images and the model come from, which
samples, the grid point, the metric settings), so a changed gallery size or report setting
reruns no grid point, and a grid extended by a value reruns none of the points it had.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from salbench.data import GroundTruthDataset
from salbench.data.folders import load_folder
from salbench.explain import (
    CompositeSpec,
    NonFiniteAttributionError,
    RuleRange,
    decreasing_gamma_ranges,
    lrp_grid_maps,
    tutorial_ranges,
)
from salbench.metrics import score
from salbench.models import build, make_explainable
from salbench.models.surgery import fold_normalisation
from salbench.models.zoo import imagenet_weights_path
from salbench.report import save_gallery_item
from salbench.results import concat, merge_factors, metric_rows, read_results
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage
from salbench.studies.jobs import (
    EXPLAIN_BATCH,
    attribution_fn,
    checkpoint_path,
    file_stamp,
    load_dataset,
    load_model,
    score_map,
)
from salbench.studies.lrp_grid import analysis
from salbench.studies.lrp_grid.config import COMPOSITES, DEFAULTS, SORT_LABELS, LrpGridConfig
from salbench.studies.specs import MethodSpec, MetricSpec

NAME = "lrp-grid"
JOBS = "salbench.studies.jobs:{}"
OWN = "salbench.studies.lrp_grid.grid:{}"
IMAGENET_CLASSES = 1000


# ---------------------------------------------------------------- composites

def decreasing_gamma_grid_ranges(first: float, second: float,
                                 layers: str = "table") -> list[RuleRange]:
    """Decreasing-γ with its two grid axes, in layer indices (conv/linear layers in order, 0 the
    pixels): ``table`` (table 4.2) γ = 0.5 on modules 2–10 (layers 1–4), γ₁ = ``first`` on
    11–17 (5–7), γ₂ = ``second`` on 18–24 (8–10), γ = 0 from 25 (11–); ``text`` (sections 4.1.1
    and 4.3, "layers 1-17 and 18-24", and the public code's rule map) γ₁ on modules 1–17
    (layers 1–7) instead, no γ = 0.5 group."""
    if layers == "table":
        return decreasing_gamma_ranges((0.5, first, second, 0.0))
    if layers != "text":
        raise ValueError(f"layers must be 'table' or 'text', got {layers!r}")
    return [RuleRange(first=0, last=0, rule="zbox"),
            RuleRange(first=1, last=7, rule="gamma", params={"gamma": first}),
            RuleRange(first=8, last=10, rule="gamma", params={"gamma": second}),
            RuleRange(first=11, last=None, rule="gamma", params={"gamma": 0.0})]


def composite_spec(composite: str, first: float, second: float, stabiliser: str,
                   input_range: tuple[float, float] = (0.0, 1.0),
                   decreasing_gamma_layers: str = "table") -> CompositeSpec:
    """The layer-index composite of a grid point: decreasing-γ (table 4.2, or the text's layers:
    :func:`decreasing_gamma_grid_ranges`) with γ₁ = ``first`` and γ₂ = ``second``, or the
    tutorial composite (table 4.3) with γ = ``first`` on modules 1–16 and ε = ``second`` on
    17–30. z^B's bounds are the input domain (the public code's normalise(0) and normalise(1)),
    not each image's extremes. Layer indices count conv/linear layers, so they address the same
    layers of ``vgg16_bn`` (whose batch norms the canonizer merges into them)."""
    if composite == "decreasing_gamma":
        ranges = decreasing_gamma_grid_ranges(first, second, decreasing_gamma_layers)
    elif composite == "tutorial":
        ranges = tutorial_ranges(gamma=first, epsilon=second)
    else:
        raise ValueError(f"composite must be one of {COMPOSITES}, got {composite!r}")
    low, high = input_range
    ranges[0] = ranges[0].model_copy(update={"params": {"low": float(low), "high": float(high)}})
    return CompositeSpec(ranges=ranges, stabiliser=stabiliser)


def grid_method(composite: str, stabiliser: str, first: float, second: float,
                input_range: tuple[float, float],
                decreasing_gamma_layers: str = "table", backend: str = "zennit") -> MethodSpec:
    """The ``lrp_composite`` method of a grid point, stored as ``lrp_<composite>`` with the
    factors composite, stabiliser, first and second; ``backend``: the LRP implementation
    (``zennit`` or ``fast``, equal to 1e-5: :mod:`salbench.explain.lrp_fast`)."""
    spec = composite_spec(composite, first, second, stabiliser, tuple(input_range),
                          decreasing_gamma_layers)
    return MethodSpec(name="lrp_composite",
                      params={"composite": spec.model_dump(), "backend": backend},
                      label=f"lrp_{composite}",
                      factors={"composite": composite, "stabiliser": stabiliser,
                               "first": float(first), "second": float(second)})


def lrp_maps(model: nn.Module, x: Tensor, y: Tensor, method: MethodSpec) -> Tensor:
    """LRP maps ``[B, C, H, W]``; a sample whose map is not finite (vanilla stabiliser, zero
    denominators: document 002, fig. 2.5) gets a NaN map (the ``finite`` metric records it).

    The fast backend keeps a batch's maps as computed (:func:`salbench.explain.lrp_grid_maps`;
    each sample's relevance is its own, so a NaN stays in its sample). Zennit's, through
    ``explain``, refuses a batch with a NaN map, which is then redone sample by sample: 1 + B
    calls (on lrp-grid small's vanilla points, with the fast backend, 3.9× the batch's time)."""
    if method.params["backend"] == "fast":
        maps = torch.cat([
            lrp_grid_maps(model, x[i:i + EXPLAIN_BATCH], y[i:i + EXPLAIN_BATCH],
                          [method.params["composite"]])[0]
            for i in range(0, len(x), EXPLAIN_BATCH)])
        maps[~torch.isfinite(maps).flatten(1).all(1)] = math.nan
        return maps
    explain_fn = attribution_fn(method)
    try:
        return explain_fn(model, x, y)
    except NonFiniteAttributionError:
        maps = torch.full_like(x, math.nan)
        for i in range(len(x)):
            with contextlib.suppress(NonFiniteAttributionError):
                maps[i] = explain_fn(model, x[i:i + 1], y[i:i + 1])[0]
        return maps


# ---------------------------------------------------------------- samples and model

@dataclass(frozen=True)
class Explained:
    """What a job explains: images ``x``, explained classes ``y``, their ids, the model."""

    x: Tensor
    y: Tensor
    sample_ids: list[str]
    dataset: str
    model_id: str
    model: nn.Module


def explained_samples(pool: GroundTruthDataset, explain_class: str | None,
                      n: int) -> GroundTruthDataset:
    """The first ``n`` samples of ``pool`` of class ``explain_class`` (all classes if None)."""
    keep = np.arange(len(pool))
    if explain_class is not None:
        if explain_class not in pool.classes:
            raise ValueError(f"explain_class {explain_class!r} is not a class of the data; "
                             f"classes are {pool.classes}")
        keep = np.flatnonzero(pool.y.numpy() == pool.classes.index(explain_class))
    chosen = pool.subset(keep[:n])
    if len(chosen) == 0:
        raise ValueError("no image to explain: check explain_class and the data")
    return chosen


def samples_and_model(config: dict, ctx: JobContext) -> Explained:
    """The images, targets and model of a job: the test split of the run's dataset and its
    trained VGG-16 (``data``, ``model_id``), or every image of a user's folder and a pre-trained
    VGG-16 with its normalisation folded in (``folder``: root, size, weights). The explained
    class is the true class (section 3), or ``target_index`` for every image."""
    if "folder" in config:
        source = config["folder"]
        pool = load_folder(source["root"], size=source["size"])
        model = build(source["arch"], num_classes=IMAGENET_CLASSES, weights=source["weights"],
                      input_size=source["size"])
        model = make_explainable(fold_normalisation(model)).to(ctx.device).eval()
    else:
        pool = load_dataset(ctx.run_dir, config["data"]).split("test")
        model = load_model(ctx.run_dir, config["model_id"], ctx.device)
    samples = config["samples"]
    chosen = explained_samples(pool, samples["explain_class"], samples["n"])
    y = chosen.y if samples["target_index"] is None else torch.full_like(
        chosen.y, samples["target_index"])
    return Explained(chosen.x.to(ctx.device), y.to(ctx.device),
                     chosen.meta["sample_id"].astype(str).tolist(), pool.name,
                     config["model_id"], model)


# ---------------------------------------------------------------- stages

def job_inputs(config: LrpGridConfig) -> dict[str, Any]:
    """What every explaining job shares: where the images and model come from, which samples,
    the input domain and the seed."""
    if config.folder is not None:
        source = {"folder": {"root": config.folder, "size": config.data.size,
                             "arch": config.arch, "weights": config.weights}}
    else:
        source = {"data": data_spec(config)}
    return {**source, "model_id": config.arch, "seed": config.seed,
            "samples": {"explain_class": config.explain_class, "n": config.n_samples,
                        "target_index": config.target_index},
            "input_range": list(config.input_range), "lrp_backend": config.lrp_backend}


def data_spec(config: LrpGridConfig) -> dict[str, Any]:
    """The embedded dataset of the run, seeded by the study's seed."""
    return config.data.model_copy(update={"seed": config.seed}).model_dump()


def grid_metrics(config: LrpGridConfig) -> list[MetricSpec]:
    """Scored at every grid point: relevance range and conservation, then region perturbation
    in each order (section 2.2, NOTES.md), ``order`` the only factor."""
    perturbation = {"patch": config.patch, "fill": config.fill, "steps": config.steps,
                    "input_range": list(config.input_range), "repeated": config.repeated,
                    "last_step_gray": config.last_step_gray, "score": config.score,
                    "seed": config.seed}
    return [MetricSpec(name="conservation", factors={})] + [
        MetricSpec(name="region_perturbation", params={**perturbation, "order": sort},
                   factors={"order": sort}) for sort in config.sorts]


def imagenet_init(config: LrpGridConfig) -> bool:
    """Whether the trained VGG-16 starts from torchvision's ImageNet weights: asked for
    (``imagenet_init``), full width, and the file in the local torch cache."""
    return (config.imagenet_init and config.width == 1.0
            and imagenet_weights_path(config.arch).is_file())


def composite_inputs(config: LrpGridConfig, composite: str) -> dict[str, Any]:
    """The composite of a job and, for decreasing-γ, which layers its first axis covers."""
    if composite == "decreasing_gamma":
        return {"composite": composite, "layers": config.decreasing_gamma_layers}
    return {"composite": composite}


def stages(config: LrpGridConfig) -> list[Stage]:
    """data → train (embedded data only) → grid → layer relevance and gallery at the optima."""
    out = []
    if config.folder is None:
        data = data_spec(config)
        out.append(Stage("data", [Job(JOBS.format("data_job"), {"data": data}, study=NAME,
                                      label="lrp-grid data")]))
        init = "imagenet" if imagenet_init(config) else "none"
        model = {"arch": config.arch, "width": config.width,
                 **({"weights": "imagenet"} if init == "imagenet" else {})}
        out.append(Stage("train VGG-16", [Job(JOBS.format("train_job"), {
            "data": data, "seed": config.seed, "model_id": config.arch, "model": model,
            "train": config.train, "factors": {"init": init}},
            study=NAME, label=f"train {config.arch}")]))
    inputs = job_inputs(config)
    metrics = [m.model_dump() for m in grid_metrics(config)]
    grid = [Job(OWN.format("grid_point_job"), {
        **inputs, **composite_inputs(config, composite), "stabiliser": stabiliser,
        "first": first, "second": second, "metrics": metrics},
        study=NAME, label=f"{composite} {stabiliser} {first:g} {second:g}")
        for composite in config.composites for stabiliser in config.stabilisers
        for first in config.grid for second in config.grid]
    out.append(Stage("grid", grid))
    out.append(Stage("optima", lambda run_dir: optimal_jobs(run_dir, config)))
    return out


def optimal_jobs(run_dir: Path, config: LrpGridConfig) -> list[Job]:
    """Per (composite, stabiliser): one job for the relevance through the layers and one
    gallery job (if ``gallery``), both at the published default and at the MoRF and LRF optima
    of the grid (figures 3.2 and 4.3)."""
    results = read_results(run_dir)
    best = analysis.optima(analysis.auc_grid(results[results.study == NAME]))
    inputs = job_inputs(config)
    jobs = []
    for (composite, stabiliser), part in best.groupby(["composite", "stabiliser"]):
        points = {"default": list(DEFAULTS[composite])}
        points |= {f"best {SORT_LABELS[r.order]}": [float(r.first), float(r.second)]
                   for r in part.itertuples()}
        point_inputs = {**inputs, **composite_inputs(config, composite),
                        "stabiliser": stabiliser, "points": points}
        jobs.append(Job(OWN.format("layer_relevance_job"), point_inputs, study=NAME,
                        label=f"layer relevance {composite} {stabiliser}"))
        if config.gallery:
            jobs.append(Job(OWN.format("optimal_gallery_job"), {**point_inputs,
                                                                "n": config.gallery},
                            study=NAME, label=f"optimal maps {composite} {stabiliser}"))
    return jobs


# ---------------------------------------------------------------- jobs

MAP_FREE_CACHE = 64  # map-free scores kept per process (one per model and scored sample set)
_MAP_FREE: OrderedDict[tuple, Any] = OrderedDict()


def reads_map(metric: MetricSpec) -> bool:
    """Whether a metric's score depends on the map's values: not region perturbation in random
    order, whose patch permutation comes from the seed (section 4.1: its contour plots are
    constant over the grid)."""
    return not (metric.name == "region_perturbation" and metric.params.get("order") == "random")


def job_source(config: dict, ctx: JobContext) -> tuple:
    """What a job's images, targets and model are made of: the user's folder spec, or the run's
    data spec and model with its checkpoint's version; the samples spec; the device."""
    if "folder" in config:
        source = ("folder", json.dumps(config["folder"], sort_keys=True))
    else:
        path = checkpoint_path(ctx.run_dir, config["model_id"])
        source = (str(ctx.run_dir), json.dumps(config["data"], sort_keys=True),
                  config["model_id"], file_stamp(path))
    return (*source, json.dumps(config["samples"], sort_keys=True), ctx.device)


def map_free_score(key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``'s result, computed once per ``key`` in this process (the last
    :data:`MAP_FREE_CACHE` keys kept): a grid's jobs share one model and sample set, so a
    metric that does not read the map gives every grid point the same score."""
    if key in _MAP_FREE:
        _MAP_FREE.move_to_end(key)
        return _MAP_FREE[key]
    result = _MAP_FREE[key] = compute()
    if len(_MAP_FREE) > MAP_FREE_CACHE:
        _MAP_FREE.popitem(last=False)
    return result


def grid_point_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """One grid point: the LRP maps, whether each is finite (every sample), then, on the finite
    maps, every metric of ``metrics`` (relevance range and conservation, region-perturbation
    AUC and curves per order; document 002, sections 3–4). A metric that does not read the map
    (:func:`reads_map`) is computed once per process, model and scored sample set, and its rows
    repeated at every grid point (lrp-grid paper: a third of the perturbation passes)."""
    ex = samples_and_model(config, ctx)
    method = grid_method(config["composite"], config["stabiliser"], config["first"],
                         config["second"], config["input_range"], config.get("layers", "table"),
                         config["lrp_backend"])
    a = lrp_maps(ex.model, ex.x, ex.y, method)
    common = {"dataset": ex.dataset, "model_id": ex.model_id, "method": method.key,
              "method_params": method.params}
    finite = score("finite", a=a)
    parts = [metric_rows(finite, sample_ids=ex.sample_ids, factors=method.factors, **common)]
    keep = torch.nonzero(finite.values["finite"] > 0).flatten()
    if len(keep) == 0:
        return concat(parts)
    index = keep.to(ex.x.device)
    x, y, a = ex.x[index], ex.y[index], a[index]
    ids = [ex.sample_ids[i] for i in keep.tolist()]
    for metric in (MetricSpec.parse(s) for s in config["metrics"]):
        def compute(metric=metric):
            return score_map(metric, method, a, model=ex.model, x=x, target=y, y=y, m=None)
        result = compute() if reads_map(metric) else map_free_score(
            (*job_source(config, ctx), tuple(ids), metric.model_dump_json()), compute)
        parts.append(metric_rows(result, sample_ids=ids,
                                 factors=merge_factors(method.factors, metric.row_factors()),
                                 **common))
    return concat(parts)


def layer_relevance_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """At each of ``points`` (setting → [first, second]): Σ R / f_y(x) at every layer of every
    explained image (figure 3.2), as ``layer_conservation`` curves with the factor ``setting``;
    NaN for an image whose relevance is not finite."""
    ex = samples_and_model(config, ctx)
    parts = []
    for setting, (first, second) in config["points"].items():
        method = grid_method(config["composite"], config["stabiliser"], first, second,
                             config["input_range"], config.get("layers", "table"),
                             config["lrp_backend"])
        result = score("layer_conservation", model=ex.model, x=ex.x, y=ex.y,
                       lrp_method=method.name, lrp_params=method.params)
        parts.append(metric_rows(result, dataset=ex.dataset, model_id=ex.model_id,
                                 method=method.key, sample_ids=ex.sample_ids,
                                 method_params=method.params,
                                 factors=merge_factors(method.factors, {"setting": setting})))
    return concat(parts)


def optimal_gallery_job(config: dict, ctx: JobContext) -> None:
    """The first ``n`` explained images with their maps at each of ``points`` (figure 4.3),
    stored in the report gallery; a non-finite map is shown as zero."""
    ex = samples_and_model(config, ctx)
    n = min(config["n"], len(ex.x))
    composite, stabiliser = config["composite"], config["stabiliser"]
    maps = {}
    for setting, (first, second) in config["points"].items():
        method = grid_method(composite, stabiliser, first, second, config["input_range"],
                             config.get("layers", "table"), config["lrp_backend"])
        a = lrp_maps(ex.model, ex.x[:n], ex.y[:n], method)
        maps[f"{setting} ({first:.3g}, {second:.3g})"] = torch.nan_to_num(a, nan=0.0).cpu()
    for i in range(n):
        save_gallery_item(ctx.run_dir, ex.sample_ids[i], ex.x[i].cpu(), None,
                          {k: v[i] for k, v in maps.items()},
                          {"target": int(ex.y[i]), "composite": composite,
                           "stabiliser": stabiliser},
                          study=NAME, dataset=ex.dataset, model_id=f"{composite}-{stabiliser}")
