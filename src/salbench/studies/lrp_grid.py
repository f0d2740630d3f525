"""LRP hyperparameter grid: which γ/ε a composite should use, judged by region perturbation
(document 002, sections 2.1.5, 2.2, 3 and 4.1; tables 2.3, 2.4, 4.1–4.3).

A VGG-16 is explained with two layer-index composites whose two free hyperparameters run over a
grid (document: {0, 10⁻⁴ … 10⁰}, 16 values, 256 combinations per composite):

- decreasing-γ (table 4.2): z^B on the pixels, γ = 0.5 on VGG-16 modules 2–10, γ₁ on 11–17,
  γ₂ on 18–24, γ = 0 from 25 on (layer indices 0, 1–4, 5–7, 8–10, 11–);
- tutorial (table 4.3): z^B on the pixels, γ on modules 1–16, ε on 17–30, LRP-0 from 31 on
  (layer indices 0, 1–6, 7–12, 13–);

with the denominator stabiliser (vanilla, zennit, tutorial; section 2.1.5) as a third factor.
Each map is scored by region perturbation (section 2.2; NOTES.md: 8×8 patches, Telea
inpainting, k² patches flipped after step k, repeated flipping, the last step all gray) in the
MoRF, LRF and random orders, and summarised by the area under the perturbation curve (AUC; lower
is better for MoRF, higher for LRF). The explained class is the ground-truth class (section 3).

By default the embedded synthetic-cell data replace ImageNet and a tiny-width VGG-16 is trained
on them; ``folder`` reads a user's ImageNet-style folder (``root/<class>/<image>``) and
``weights`` loads torchvision's ImageNet VGG-16 (the document's model), its input normalisation
folded into the first convolution so that images, the z^B bounds and the gray value stay in
pixel space [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from salbench.config import Config
from salbench.explain import (
    CompositeSpec,
    NonFiniteAttributionError,
    decreasing_gamma_ranges,
    explain,
    relevance_by_layer,
    tutorial_ranges,
)
from salbench.metrics import region_perturbation
from salbench.report import Figure, Section, Table, figures, load_gallery_item, save_gallery_item
from salbench.report.gallery import gallery_files
from salbench.results import read_results
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage, Study, register
from salbench.studies.common import DataSpec, load_dataset, load_model

NAME = "lrp-grid"
COMMON = "salbench.studies.common:{}"
OWN = "salbench.studies.lrp_grid:{}"
MODEL_ID = "vgg16"
COMPOSITES = ("decreasing_gamma", "tutorial")
STABILISERS = ("vanilla", "zennit", "tutorial")
SORTS = ("morf", "lrf", "random")
# Document 002, section 4.1: "{0, 10^-4, ..., 10^0}; a total of 16 values".
PAPER_GRID = [0.0] + [float(v) for v in np.logspace(-4, 0, 15)]
# Coarse 3 × 3 sub-grid for the tiny preset.
TINY_GRID = [0.0, 0.01, 1.0]
# The composites' published defaults (tables 2.3, 2.4), shown next to the optima (fig. 4.3).
DEFAULTS = {"decreasing_gamma": (0.25, 0.1), "tutorial": (0.25, 0.25)}
AXES = {"decreasing_gamma": ("γ, VGG-16 modules 11–17", "γ, VGG-16 modules 18–24"),
        "tutorial": ("γ, VGG-16 modules 1–16", "ε, VGG-16 modules 17–30")}
TITLES = {"decreasing_gamma": "LRP decreasing-γ", "tutorial": "LRP tutorial"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LrpGridConfig(Config):
    """The lrp-grid study; see the module docstring. ``grid`` holds the values of both layer
    groups (the grid is ``grid × grid``); ``explain_class`` names the class whose test images are
    explained (document: the 50 ImageNet axolotl images; ``None``: all classes)."""

    seed: int = Field(0, ge=0)
    data: DataSpec
    width: float = Field(1.0, gt=0, le=1)
    train: dict = Field(default_factory=lambda: {"preset": "cells-continuous"})
    folder: str | None = None
    weights: str | None = None
    target_index: int | None = Field(None, ge=0)
    explain_class: str | None = None
    n_samples: int = Field(gt=0)
    composites: list[Literal["decreasing_gamma", "tutorial"]] = Field(
        default_factory=lambda: list(COMPOSITES))
    stabilisers: list[Literal["vanilla", "zennit", "tutorial"]] = Field(
        default_factory=lambda: list(STABILISERS))
    grid: list[float] = Field(default_factory=lambda: list(PAPER_GRID), min_length=1)
    sorts: list[Literal["morf", "lrf", "random"]] = Field(default_factory=lambda: list(SORTS))
    patch: int = Field(8, ge=1)
    fill: Literal["inpaint-telea", "inpaint-fast", "gray", "uniform", "mean", "blur"] = \
        "inpaint-telea"
    steps: str = "square"
    repeated: bool = True
    last_step_gray: bool = True
    score: Literal["logit", "probability"] = "logit"
    input_range: tuple[float, float] = (0.0, 1.0)
    gallery: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> LrpGridConfig:
        if any(v < 0 for v in self.grid):
            raise ValueError("grid values must be >= 0 (γ and ε of LRP)")
        if self.folder is not None and self.weights is None:
            raise ValueError("folder needs weights ('imagenet' or a VGG-16 state-dict path): "
                             "the folder mode explains a pre-trained VGG-16 (document 002)")
        if self.weights is not None and self.folder is None:
            raise ValueError("weights apply to the folder mode only; set folder too")
        if self.input_range[0] >= self.input_range[1]:
            raise ValueError("input_range must be (low, high) with low < high")
        return self


PRESETS = {
    # CPU minutes: 64 px cells (an 8 × 8 grid of 8 × 8 patches, 8 square steps), VGG-16 at width
    # 0.125, 4 images of one class, a 3 × 3 sub-grid, the zennit stabiliser only.
    "tiny": {"data": {"kind": "cells", "n": 480, "size": 64,
                      "params": {"shard_size": 10}},
             "width": 0.125, "train": {"preset": "cells-continuous", "epochs": 3, "lr": 1e-3},
             "explain_class": "CCellP", "n_samples": 4, "grid": TINY_GRID,
             "stabilisers": ["zennit"], "gallery": 2},
    "small": {"data": {"kind": "cells", "n": 2400, "size": 112,
                       "params": {"shard_size": 50}},
              "width": 0.25, "train": {"preset": "cells-continuous", "epochs": 8, "lr": 1e-3},
              "explain_class": "CCellP", "n_samples": 20,
              "grid": [0.0] + [float(v) for v in np.logspace(-4, 0, 5)], "gallery": 3},
    # Document 002, section 4: VGG-16 at 224 px, 50 images of one class (4, intro), the
    # 16-value grid (4.1, tables 4.2-4.3), all three stabilisers (2.1.5), 8 × 8 patches with
    # inpainting, MoRF/LRF/random (table 4.1) on the square schedule (NOTES.md). On the embedded
    # data (no ImageNet here); with a folder holding the axolotl images: --set folder=DIR
    # --set weights=imagenet --set explain_class=null --set target_index=29.
    "paper": {"data": {"kind": "cells", "n": 9600, "size": 224,
                       "params": {"shard_size": 200}},
              "width": 1.0, "train": {"preset": "cells-continuous", "epochs": 4},
              "explain_class": "CCellP", "n_samples": 50, "gallery": 4},
}


# ---------------------------------------------------------------- composites

def composite_spec(composite: str, first: float, second: float, stabiliser: str,
                   input_range: tuple[float, float] = (0.0, 1.0)) -> CompositeSpec:
    """The layer-index composite of a grid point: decreasing-γ (table 4.2) with γ₁ = ``first``
    on modules 11–17 and γ₂ = ``second`` on 18–24, or the tutorial composite (table 4.3) with
    γ = ``first`` and ε = ``second``. z^B's bounds are the input domain (the public code's
    normalise(0) and normalise(1)), not each image's extremes."""
    if composite == "decreasing_gamma":
        ranges = decreasing_gamma_ranges((0.5, first, second, 0.0))
    elif composite == "tutorial":
        ranges = tutorial_ranges(gamma=first, epsilon=second)
    else:
        raise ValueError(f"composite must be one of {COMPOSITES}, got {composite!r}")
    low, high = input_range
    ranges[0] = ranges[0].model_copy(update={"params": {"low": float(low), "high": float(high)}})
    return CompositeSpec(ranges=ranges, stabiliser=stabiliser)


def lrp_maps(model: nn.Module, x: Tensor, y: Tensor, spec: CompositeSpec) -> tuple[Tensor, Tensor]:
    """LRP maps ``[B, C, H, W]`` and a finite mask ``[B]``: a batch with NaN/inf maps (vanilla
    stabiliser, zero denominators: document 002, fig. 2.5) is redone sample by sample and the
    non-finite samples get zero maps and ``finite = False``."""
    composite = spec.model_dump()
    try:
        return (explain(model, x, y, "lrp_composite", composite=composite),
                torch.ones(len(x), dtype=torch.bool))
    except NonFiniteAttributionError:
        maps, finite = torch.zeros_like(x), torch.zeros(len(x), dtype=torch.bool)
        for i in range(len(x)):
            try:
                maps[i] = explain(model, x[i:i + 1], y[i:i + 1], "lrp_composite",
                                  composite=composite)[0]
                finite[i] = True
            except NonFiniteAttributionError:
                pass
        return maps, finite


# ---------------------------------------------------------------- samples and model

class ConstantPad(nn.Module):
    """Pad every channel of ``[B, C, H, W]`` by ``padding`` pixels with its own constant."""

    def __init__(self, padding: int, values: Tensor) -> None:
        super().__init__()
        self.padding = padding
        self.register_buffer("values", values.view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        p = self.padding
        return nn.functional.pad(x - self.values, (p, p, p, p)) + self.values


def fold_normalisation(model: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> nn.Module:
    """Fold ``(x − mean) / std`` into the first convolution of a VGG (in place): the model then
    takes pixel-space inputs in [0, 1] and computes exactly what the original did on normalised
    ones. The convolution's zero padding (0 in normalised space = ``mean`` in pixel space)
    becomes an explicit padding with ``mean``; the layer-index order is unchanged."""
    conv = model.features[0]
    if not isinstance(conv, nn.Conv2d) or conv.padding[0] != conv.padding[1]:
        raise ValueError("fold_normalisation needs a VGG whose features[0] is a Conv2d with "
                         "equal padding")
    mean_t = torch.tensor(mean, dtype=conv.weight.dtype)
    std_t = torch.tensor(std, dtype=conv.weight.dtype).view(1, -1, 1, 1)
    with torch.no_grad():
        conv.bias -= (conv.weight * mean_t.view(1, -1, 1, 1) / std_t).sum((1, 2, 3))
        conv.weight /= std_t
    pad = conv.padding[0]
    conv.padding = (0, 0)
    model.features[0] = nn.Sequential(ConstantPad(pad, mean_t), conv)
    return model


def samples_and_model(config: dict, ctx: JobContext) -> tuple[Tensor, Tensor, list[str], nn.Module]:
    """Images ``x``, explained targets ``y``, sample ids and the model of a grid job."""
    from salbench.data.folders import load_folder
    from salbench.models import build, make_explainable

    cfg = LrpGridConfig.parse(config["study_config"])
    if cfg.folder is not None:
        data = load_folder(cfg.folder, size=cfg.data.size)
        pool = data
        model = build("vgg16", num_classes=1000, weights=cfg.weights, input_size=cfg.data.size)
        model = make_explainable(fold_normalisation(model)).to(ctx.device).eval()
    else:
        data = load_dataset(ctx.run_dir, cfg.data)
        pool = data.split("test")
        model = load_model(ctx.run_dir, MODEL_ID, ctx.device)
    keep = np.arange(len(pool))
    if cfg.explain_class is not None:
        if cfg.explain_class not in pool.classes:
            raise ValueError(f"explain_class {cfg.explain_class!r} is not a class of the data; "
                             f"classes are {pool.classes}")
        keep = np.flatnonzero(pool.y.numpy() == pool.classes.index(cfg.explain_class))
    chosen = pool.subset(keep[:cfg.n_samples])
    if len(chosen) == 0:
        raise ValueError("no image to explain: check explain_class and the data")
    y = chosen.y if cfg.target_index is None else torch.full_like(chosen.y, cfg.target_index)
    ids = chosen.meta["sample_id"].astype(str).tolist()
    return chosen.x.to(ctx.device), y.to(ctx.device), ids, model


# ---------------------------------------------------------------- jobs

def stages(config: LrpGridConfig) -> list[Stage]:
    """data → train the VGG-16 (embedded data only) → one job per grid point → optimal maps."""
    study_config = config.model_dump(mode="json")
    out = []
    if config.folder is None:
        data = config.data.model_copy(update={"seed": config.seed}).model_dump()
        study_config["data"] = data
        out.append(Stage("data", [Job(COMMON.format("data_job"), {"data": data,
                                                                   "seed": config.seed},
                                      study=NAME, label="lrp-grid data")]))
        out.append(Stage("train VGG-16", [Job(COMMON.format("train_job"), {
            "study": NAME, "data": data, "seed": config.seed, "model_id": MODEL_ID,
            "model": {"arch": "vgg16", "width": config.width}, "train": config.train},
            study=NAME, label="train vgg16")]))
    grid = []
    for composite in config.composites:
        for stabiliser in config.stabilisers:
            for first in config.grid:
                for second in config.grid:
                    grid.append(Job(OWN.format("grid_point_job"), {
                        "study_config": study_config, "seed": config.seed,
                        "composite": composite, "stabiliser": stabiliser,
                        "first": first, "second": second},
                        study=NAME, label=f"{composite} {stabiliser} {first:g} {second:g}"))
    out.append(Stage("grid", grid))
    if config.gallery:
        out.append(Stage("optimal heatmaps", lambda run_dir: optimal_jobs(run_dir, config)))
    return out


def grid_point_job(config: dict, ctx: JobContext) -> list[dict]:
    """One grid point: LRP maps, their relevance range and conservation, and the AUC of the
    region-perturbation curves in every sort (document 002, sections 3–4)."""
    cfg = LrpGridConfig.parse(config["study_config"])
    x, y, ids, model = samples_and_model(config, ctx)
    composite, stabiliser = config["composite"], config["stabiliser"]
    spec = composite_spec(composite, config["first"], config["second"], stabiliser,
                          cfg.input_range)
    a, finite = lrp_maps(model, x, y, spec)
    params = {"composite": composite, "stabiliser": stabiliser, "first": config["first"],
              "second": config["second"]}
    dataset = "folder" if cfg.folder else cfg.data.kind

    def row(metric: str, sample_id: str, value: float) -> dict:
        return {"dataset": dataset, "model_id": MODEL_ID, "method": f"lrp_{composite}",
                "metric": metric, "sample_id": sample_id, "value": float(value),
                "params": params, "meta": {}}

    rows = [row("finite", sid, ok) for sid, ok in zip(ids, finite.tolist())]
    good = finite.nonzero().flatten()
    if len(good) == 0:
        return rows
    x, y, a = x[good], y[good], a[good]
    ids = [ids[i] for i in good.tolist()]
    with torch.no_grad():
        logit = model(x).gather(1, y[:, None])[:, 0]
    flat = a.flatten(1)
    error = (flat.sum(1) - logit).abs() / logit.abs().clamp_min(1e-12)
    for sid, lo, hi, err in zip(ids, flat.amin(1).tolist(), flat.amax(1).tolist(),
                                error.tolist(), strict=True):
        rows += [row("relevance_min", sid, lo), row("relevance_max", sid, hi),
                 row("conservation_error", sid, err)]
    for sort in cfg.sorts:
        result = region_perturbation(model, x, y, a, patch=cfg.patch, order=sort, fill=cfg.fill,
                                     steps=cfg.steps, input_range=cfg.input_range,
                                     repeated=cfg.repeated, last_step_gray=cfg.last_step_gray,
                                     score=cfg.score, seed=cfg.seed)
        rows += [row(f"auc_{sort}", sid, v) for sid, v in zip(ids, result.scores.tolist())]
        rows += [row(f"curve_{sort}", f"point:{k:03d}", v)
                 for k, v in enumerate(result.curves.mean(0).tolist())]
    return rows


def grid_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Per grid point (composite, stabiliser, first, second) and metric: the mean over samples."""
    rows = results[(results.method != "model") & ~results.sample_id.str.startswith("point:")]
    if rows.empty:
        return pd.DataFrame(columns=["composite", "stabiliser", "first", "second"])
    params = pd.DataFrame([json.loads(p) for p in rows.params], index=rows.index)
    frame = pd.concat([params, rows[["metric", "value"]]], axis=1)
    wide = frame.pivot_table(index=["composite", "stabiliser", "first", "second"],
                             columns="metric", values="value", aggfunc="mean").reset_index()
    wide.columns.name = None
    return wide


def best_points(grid: pd.DataFrame) -> pd.DataFrame:
    """Per (composite, stabiliser): the grid point with the lowest mean MoRF AUC and the one with
    the highest mean LRF AUC (document 002, section 4.1)."""
    out = []
    for (composite, stabiliser), part in grid.groupby(["composite", "stabiliser"]):
        for sort, pick in (("morf", "idxmin"), ("lrf", "idxmax")):
            col = f"auc_{sort}"
            if col in part and part[col].notna().any():
                best = part.loc[getattr(part[col], pick)()]
                out.append({"composite": composite, "stabiliser": stabiliser, "sort": sort,
                            "first": best["first"], "second": best["second"],
                            "auc": best[col]})
    return pd.DataFrame(out)


def optimal_jobs(run_dir: Path, config: LrpGridConfig) -> list[Job]:
    """One job per (composite, stabiliser) storing the maps of the published default composite
    and of the grid optima for the report's figure 4.3."""
    results = read_results(run_dir)
    best = best_points(grid_frame(results[results.study == NAME]))
    jobs = []
    study_config = config.model_dump(mode="json")
    if config.folder is None:
        study_config["data"] = config.data.model_copy(update={"seed": config.seed}).model_dump()
    for (composite, stabiliser), part in best.groupby(["composite", "stabiliser"]):
        points = {"default": list(DEFAULTS[composite])}
        points |= {f"best {r.sort}": [float(r.first), float(r.second)]
                   for r in part.itertuples()}
        jobs.append(Job(OWN.format("optimal_maps_job"), {
            "study_config": study_config, "seed": config.seed, "composite": composite,
            "stabiliser": stabiliser, "points": points},
            study=NAME, label=f"optimal maps {composite} {stabiliser}"))
    return jobs


def optimal_maps_job(config: dict, ctx: JobContext) -> list[dict]:
    """At the default and the optimal grid points: save gallery items with the maps of the first
    ``gallery`` images (figure 4.3) and return the mean relevance sum per layer divided by the
    explained logit over all images (figure 3.2; 1 = conserved)."""
    cfg = LrpGridConfig.parse(config["study_config"])
    x, y, ids, model = samples_and_model(config, ctx)
    n = min(cfg.gallery, len(x))
    composite, stabiliser = config["composite"], config["stabiliser"]
    dataset = "folder" if cfg.folder else cfg.data.kind
    with torch.no_grad():
        logit = model(x).gather(1, y[:, None])[:, 0]
    safe = torch.where(logit.abs() < 1e-12, torch.full_like(logit, 1e-12), logit)
    maps, rows = {}, []
    for label, (first, second) in config["points"].items():
        spec = composite_spec(composite, first, second, stabiliser, cfg.input_range)
        a, finite = lrp_maps(model, x, y, spec)
        maps[f"{label} ({first:.3g}, {second:.3g})"] = a[:n].cpu()
        if not bool(finite.all()):
            continue
        sums = relevance_by_layer(model, x, y, "lrp_composite", composite=spec.model_dump())
        # Output first, then the input of every conv/linear layer from the top down, pixels last.
        order = (["output"] + [k for k in reversed(sums) if k not in ("output", "input")]
                 + ["input"])
        params = {"composite": composite, "stabiliser": stabiliser, "first": first,
                  "second": second, "point": label}
        rows += [{"dataset": dataset, "model_id": MODEL_ID, "method": f"lrp_{composite}",
                  "metric": "layer_relevance", "sample_id": f"point:{k:03d}",
                  "value": float((sums[name] / safe).mean()), "params": params,
                  "meta": {"layer": name}} for k, name in enumerate(order)]
    for i in range(n):
        save_gallery_item(ctx.run_dir, ids[i], x[i].cpu(), None,
                          {k: v[i] for k, v in maps.items()},
                          {"target": int(y[i]), "composite": composite, "stabiliser": stabiliser},
                          study=NAME, dataset=dataset, model_id=f"{composite}-{stabiliser}")
    return rows


# ---------------------------------------------------------------- report

def _sort_label(sort: str) -> str:
    return {"morf": "MoRF", "lrf": "LRF", "random": "random"}[sort]


def report_section(run_dir: Path) -> Section:
    """Contours per composite, stabiliser and sort (figs. 4.1, 4.2), AUC distributions (fig.
    4.6), optimal heatmaps (fig. 4.3), relevance range and conservation (fig. 3.2)."""
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    results = results[results.study == NAME]
    text = " ".join(__doc__.split("\n\n")[1:3]).replace("\n", " ")
    section = Section("LRP hyperparameter grid (document 002)", text)
    grid = grid_frame(results)
    if grid.empty:
        return section
    model = results[(results.method == "model") & (results.sample_id == "all")]
    if not model.empty:
        section.tables.append(Table(model.pivot_table(index="model_id", columns="metric",
                                                      values="value"),
                                    "Test-set classification scores of the explained VGG-16.",
                                    name="lrp-grid-model"))
    for composite in dict.fromkeys(grid.composite):
        sub = Section(f"{TITLES[composite]}: AUC over the grid",
                      "Mean AUC over the explained images per grid point; the star marks the "
                      "best point (lowest for MoRF, highest for LRF). Random order is expected "
                      "to be flat (section 4.1).")
        xlabel, ylabel = AXES[composite]
        for stabiliser in dict.fromkeys(grid.stabiliser):
            part = grid[(grid.composite == composite) & (grid.stabiliser == stabiliser)]
            for sort in SORTS:
                col = f"auc_{sort}"
                if col not in part or part[col].isna().all():
                    continue
                fig = figures.contour_plot(part.dropna(subset=[col]), "first", "second", col,
                                           xlabel=xlabel, ylabel=ylabel,
                                           mark={"morf": "min", "lrf": "max"}.get(sort),
                                           title=f"{TITLES[composite]}, {stabiliser} "
                                                 f"stabiliser, {_sort_label(sort)}")
                number = "4.1" if composite == "decreasing_gamma" else "4.2"
                sub.figures.append(Figure(fig, f"Figure {number}: AUC of {_sort_label(sort)} "
                                          f"region perturbation, {stabiliser} stabiliser.",
                                          name=f"lrp-grid-{composite}-{stabiliser}-{sort}",
                                          embed="svg"))
        section.subsections.append(sub)
    long = grid.melt(id_vars=["composite", "stabiliser", "first", "second"],
                     value_vars=[f"auc_{s}" for s in SORTS if f"auc_{s}" in grid],
                     var_name="sort", value_name="AUC").dropna()
    long["sort"] = long["sort"].str.removeprefix("auc_").map(_sort_label)
    short = {"decreasing_gamma": "decr.-γ", "tutorial": "tutorial"}
    long["composite / sort"] = long.composite.map(short) + " " + long["sort"]
    section.figures.append(Figure(
        figures.box_plot(long, "composite / sort", "AUC", hue="stabiliser"),
        "Figure 4.6: distribution over the grid of the mean AUC per grid point.",
        name="lrp-grid-auc-distribution", embed="svg"))
    best = best_points(grid)
    if not best.empty:
        best = best.assign(sort=best["sort"].map(_sort_label))
        section.tables.append(Table(best.set_index(["composite", "stabiliser", "sort"]),
                                    "Optimal grid points: lowest mean MoRF AUC, highest mean "
                                    "LRF AUC (first = γ₁ or γ, second = γ₂ or ε).",
                                    name="lrp-grid-optima"))
    section.tables.append(relevance_table(grid))
    layer_fig = layer_figure(results)
    if layer_fig is not None:
        section.figures.append(layer_fig)
    section.figures += optimal_figures(run_dir)
    return section


def relevance_table(grid: pd.DataFrame) -> Table:
    """Figure 3.2's quantities per (composite, stabiliser): mean relevance minimum and maximum,
    median and maximum conservation error |Σ R − f_y| / |f_y|, and the share of finite maps."""
    cols = [c for c in ("relevance_min", "relevance_max", "conservation_error", "finite")
            if c in grid]
    agg = grid.groupby(["composite", "stabiliser"])[cols].agg(
        {c: (["median", "max"] if c == "conservation_error" else ["mean"]) for c in cols})
    agg.columns = [f"{a} ({b})" for a, b in agg.columns]
    return Table(agg, "Figure 3.2: relevance range, conservation error and the share of finite "
                      "maps (vanilla stabiliser: zero denominators, fig. 2.5) over the grid.",
                 name="lrp-grid-relevance")


def layer_figure(results: pd.DataFrame) -> Figure | None:
    """Relevance sum per layer divided by the explained logit (1 = conserved) at the default and
    the optimal grid points of each composite and stabiliser (figure 3.2)."""
    rows = results[results.metric == "layer_relevance"]
    if rows.empty:
        return None
    params = pd.DataFrame([json.loads(p) for p in rows.params], index=rows.index)
    frame = pd.concat([params, rows[["sample_id", "value"]]], axis=1)
    frame["layer"] = frame.sample_id.str.split(":").str[1].astype(int)
    frame["label"] = (frame.composite.map(TITLES) + ", " + frame.stabiliser + ", "
                      + frame.point)
    fig = figures.line_plot(frame, "layer", "value", hue="label",
                            xlabel="position (0 = output, then conv/linear inputs top-down, "
                                   "last = pixels)", ylabel="Σ R / f_y(x)")
    return Figure(fig, "Figure 3.2: relevance conservation through the layers at the default "
                  "and the optimal grid points (1 = all relevance conserved).",
                  name="lrp-grid-conservation", embed="svg")


def optimal_figures(run_dir: Path) -> list[Figure]:
    """Figure 4.3: per (composite, stabiliser), the stored images with the maps of the default
    composite and of the MoRF and LRF optima."""
    out = []
    items = [load_gallery_item(p) for p in gallery_files(run_dir).get(NAME, [])]
    by_model: dict[str, list] = {}
    for item in items:
        by_model.setdefault(item.model_id, []).append(item)
    for model_id, group in sorted(by_model.items()):
        labels = list(group[0].maps)
        fig = figures.map_grid([[i.maps[k] for k in labels] for i in group], col_labels=labels,
                               images=[i.image for i in group], reduce="sum")
        out.append(Figure(fig, f"Figure 4.3: heatmaps of {model_id} at the default "
                          "hyperparameters and at the grid optima (γ₁/γ, γ₂/ε in brackets).",
                          name=f"lrp-grid-optimal-{model_id}", embed="png"))
    return out


STUDY = register(Study(NAME, "document 002: LRP composite hyperparameters over a grid, judged "
                             "by region perturbation AUC", LrpGridConfig, PRESETS, stages,
                       report_section))
