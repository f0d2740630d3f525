"""The ``gad`` study's job grid (document 004, sections 4-6).

Stages: ``data`` (one job), ``train`` (one per model: VGG-16 and ResNet-18), ``gad`` (one per
model: the support regressions, then every base method × both outputs of the pair × every
metric) and ``gallery`` (one per model: the least activated images' maps, section 6.4; its own
job, so a changed gallery size reruns no scoring).

The ``gad`` job trains the supports with :func:`salbench.explain.fit_gad` (one regression per α,
cached in ``models/<model_id>-gad/``), explains the first ``n_per_class`` test images of each
class for both outputs a of the pair with the base method (M_Orig) and with GAD (M_GAD), and
scores the registered metrics of :mod:`salbench.metrics.regions` with the GAD map as ``a`` and
the base method's map as ``reference``:

- ``complexity_ratio``: RC = A(CH_GAD) / A(CH_Orig) (eq. 1);
- ``hull_sensitivity``: RS(I, M_GAD, a) (eq. 2);
- ``supplementary_sensitivity``: RS(I, M_Orig − M_GAD, a), NaN where that region is empty.

Rows: ``method`` = the base method's key (S, D, GxI, GB, IG); factor columns ``class_index``
(the output a) and ``role`` (1 or 2: the pair's first or second class), and ``keep``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from salbench.data import GroundTruthDataset
from salbench.explain import GADSupport, explain, fit_gad, support_config
from salbench.explain.gad import gad_map
from salbench.metrics import get_metric, score
from salbench.models import ModelSpec
from salbench.models.training import TrainConfig
from salbench.report import save_gallery_item
from salbench.results import concat, merge_factors, metric_rows
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage
from salbench.studies.gad.config import METRICS, GADConfig
from salbench.studies.jobs import EXPLAIN_BATCH, checkpoint_path, load_dataset, load_model
from salbench.studies.specs import MethodSpec, MetricSpec

NAME = "gad"
JOBS = "salbench.studies.jobs:{}"
GAD_SETTING = ("classes", "alphas", "support", "importance", "threshold", "n_per_class", "seed")
"""The config fields both GAD jobs read: which supports, which GAD maps, which images."""


def model_id(spec: ModelSpec) -> str:
    return f"{spec.arch}-w{spec.width:g}"


def metric_specs(keep: float) -> list[MetricSpec]:
    """The three metrics of section 5 on the hulls of the most important ``keep`` of pixels."""
    return [MetricSpec(name=name, params={"keep": keep}) for name in METRICS]


def stages(cfg: GADConfig) -> list[Stage]:
    data = cfg.data.model_dump()
    setting = {**cfg.model_dump(include=set(GAD_SETTING)), "data": data,
               "methods": [m.model_dump() for m in cfg.methods]}
    train, gad, gallery = [], [], []
    for spec in cfg.models:
        mid = model_id(spec)
        train.append(Job(JOBS.format("train_job"), {
            "model_id": mid, "data": data, "model": spec.model_dump(), "train": dict(cfg.train),
            "seed": cfg.seed}, NAME, label=f"train {mid}"))
        gad.append(Job(f"salbench.studies.{NAME}.grid:gad_job", {
            **setting, "model_id": mid, "metrics": [m.model_dump() for m in
                                                    metric_specs(cfg.keep)]},
            NAME, label=f"supports, explain and score {mid}"))
        if cfg.gallery:
            gallery.append(Job(f"salbench.studies.{NAME}.grid:gallery_job", {
                **setting, "model_id": mid, "n": cfg.gallery}, NAME, label=f"gallery {mid}"))
    return [Stage("data", [Job(JOBS.format("data_job"), {"data": data, "seed": cfg.data.seed},
                               NAME, label="data")]),
            Stage("train", train), Stage("gad", gad), Stage("gallery", gallery)]


def support_dir(run_dir: Path, model: str) -> Path:
    """Where the support regressions of ``model`` are cached: ``models/<model_id>-gad/``."""
    return checkpoint_path(run_dir, model).with_name(f"{model}-gad")


def support_training(model: nn.Module, support: dict[str, Any], seed: int) -> TrainConfig:
    """The support models' ``TrainConfig``: preset "gad-support" with ``support`` applied."""
    return support_config(model, **{"seed": seed, **support})


def fit_supports(model: nn.Module, dataset: GroundTruthDataset, config: dict,
                 ctx: JobContext) -> GADSupport:
    """One support regression per α on the training split (section 4.2), from the cache when
    the job ran before."""
    train = dataset.split("train")
    return fit_gad(model, (train.x.to(ctx.device), train.y.to(ctx.device)), config["classes"],
                   alphas=config["alphas"],
                   config=support_training(model, config["support"], config["seed"]),
                   cache_dir=support_dir(ctx.run_dir, config["model_id"]))


def job_inputs(config: dict, ctx: JobContext) -> tuple[GroundTruthDataset, nn.Module,
                                                         GADSupport]:
    """What the gad and gallery jobs of one model start from: the pair's test samples, the
    trained model and its supports (from the cache after the first job)."""
    dataset = load_dataset(ctx.run_dir, config["data"])
    samples = pair_samples(dataset, config["classes"], config["n_per_class"])
    model = load_model(ctx.run_dir, config["model_id"], ctx.device)
    return samples, model, fit_supports(model, dataset, config, ctx)


def pair_samples(dataset: GroundTruthDataset, classes: list[int], n_per_class: int
                 ) -> GroundTruthDataset:
    """The first ``n_per_class`` test samples of each class of the pair (section 6)."""
    if max(classes) >= len(dataset.classes):
        raise ValueError(f"classes {classes} do not exist in {dataset.name} "
                         f"({len(dataset.classes)} classes)")
    test = dataset.split("test")
    y = test.y.numpy()
    picked = [np.flatnonzero(y == c)[:n_per_class] for c in classes]
    if any(len(p) == 0 for p in picked):
        raise ValueError(f"the test split has no sample of class {classes[0]} or {classes[1]}; "
                         "choose other classes or a larger data.n")
    return test.subset(np.sort(np.concatenate(picked)))


def original_and_gad_maps(model: nn.Module, x: Tensor, targets: Tensor, method: MethodSpec,
                          support: GADSupport, importance: str, threshold: float
                          ) -> tuple[Tensor, Tensor]:
    """The base method's map and its GAD map ``[B, C, H, W]`` for output ``targets``: the same
    as ``explain(model, x, targets, "gad", support=support, base=method.name, ...)``, with the
    original map computed once for both."""
    orig, gad = [], []
    for i in range(0, len(x), EXPLAIN_BATCH):
        xb, yb = x[i:i + EXPLAIN_BATCH], targets[i:i + EXPLAIN_BATCH]
        original = explain(model, xb, yb, method.name, **method.params)
        orig.append(original)
        gad.append(gad_map(original, (explain(m, xb, yb, method.name, **method.params)
                                      for m in support.models), importance, threshold))
    return torch.cat(orig), torch.cat(gad)


def gad_params(method: MethodSpec, config: dict) -> dict[str, Any]:
    """The GAD method's parameters as used: base method, its parameters, the α of the supports
    and the importance rule."""
    return {"base": method.name, "base_params": dict(method.params),
            "alphas": list(config["alphas"]), "importance": config["importance"],
            "threshold": config["threshold"]}


def score_pair(metric: MetricSpec, *, gad: Tensor, orig: Tensor, model: nn.Module, x: Tensor,
               y: Tensor):
    """One metric with the GAD map as ``a`` and the base method's map as ``reference``."""
    inputs = {"a": gad, "reference": orig, "model": model, "x": x, "y": y}
    needed = get_metric(metric.name).inputs
    return score(metric.name, **{k: inputs[k] for k in needed}, **metric.params)


def gad_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """Train the supports of one model, then score every metric on every base method's original
    and GAD maps, for both outputs of the pair."""
    samples, model, support = job_inputs(config, ctx)
    x, y = samples.x.to(ctx.device), samples.y.to(ctx.device)
    with torch.inference_mode():
        predicted = model(x).argmax(1)
    ids = samples.meta["sample_id"].astype(str).tolist()
    meta = [{"true": int(t), "predicted": int(p), "correct": bool(t == p)}
            for t, p in zip(y.tolist(), predicted.tolist())]
    metrics = [MetricSpec.parse(s) for s in config["metrics"]]
    parts = []
    for method in (MethodSpec.parse(s) for s in config["methods"]):
        for role, output in enumerate(config["classes"], start=1):
            targets = torch.full_like(y, output)
            orig, gad = original_and_gad_maps(model, x, targets, method, support,
                                              config["importance"], config["threshold"])
            for metric in metrics:
                result = score_pair(metric, gad=gad, orig=orig, model=model, x=x, y=targets)
                parts.append(metric_rows(
                    result, dataset=samples.name, model_id=config["model_id"],
                    method=method.key, sample_ids=ids, method_params=gad_params(method, config),
                    meta=meta, factors=merge_factors(method.factors, metric.row_factors(),
                                                     {"class_index": output, "role": role})))
    return concat(parts)


def least_activated(logits: Tensor, y: Tensor, classes: list[int], n: int) -> list[int]:
    """Indices of the ``n`` samples of each class with the lowest output for their own class
    (section 6.4)."""
    own = logits.gather(1, y[:, None]).squeeze(1).cpu()
    out = []
    for c in classes:
        idx = torch.nonzero(y.cpu() == c).flatten()
        out += idx[torch.argsort(own[idx], stable=True)[:n]].tolist()
    return out


def gad_label(method_key: str) -> str:
    """The gallery label of a base method's GAD map (the original map is stored under the key)."""
    return f"GAD {method_key}"


def gallery_job(config: dict, ctx: JobContext) -> None:
    """Store, per class of the pair, the ``n`` images of the ``gad`` job's selection least
    activated for their own class, with every base method's original and GAD map for that class
    (section 6.4, figures 5-6)."""
    samples, model, support = job_inputs(config, ctx)
    x, y = samples.x.to(ctx.device), samples.y.to(ctx.device)
    with torch.inference_mode():
        logits = model(x)
    picked = torch.tensor(least_activated(logits, y, config["classes"], config["n"]),
                          dtype=torch.long, device=x.device)
    xs, ys = x[picked], y[picked]
    maps: dict[str, Tensor] = {}
    for method in (MethodSpec.parse(s) for s in config["methods"]):
        orig, gad = original_and_gad_maps(model, xs, ys, method, support,
                                          config["importance"], config["threshold"])
        maps[method.key], maps[gad_label(method.key)] = orig.cpu(), gad.cpu()
    ids = samples.meta["sample_id"].astype(str).tolist()
    names = [samples.classes[c] for c in config["classes"]]
    for k, i in enumerate(picked.tolist()):
        save_gallery_item(ctx.run_dir, ids[i], x[i].cpu(), samples.masks[i],
                          {label: a[k] for label, a in maps.items()},
                          {"true": int(y[i]), "predicted": int(logits[i].argmax()),
                           "logit_true": float(logits[i, y[i]]), "classes": names},
                          study=NAME, dataset=samples.name, model_id=config["model_id"])
