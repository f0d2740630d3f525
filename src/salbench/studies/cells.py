"""Synthetic cells: how well eight saliency methods find the cells' ground truth (document 001).

The ten-class cell data (section 3.1) trains AlexNet, VGG and ResNet-34 first in continuous mode
(the base model), then ``branches`` times in regular-evaluation mode from that base (section 3.2,
table 1). Each branch explains the evaluation samples with saliency, input×gradient, DeepLIFT,
guided backprop, guided Grad-CAM, deconvolution, gradient SHAP and DeepLIFT SHAP on the
**predicted** class (section 3.3) and scores them with the soft five-band scores, standard and
clamped (sections 3.3, 4.1). Optionally, AlexNet with 1–8 added convolutional layers is trained
and scored the same way (section 4.1, appendix fig. 1).

Report: training table (table 1), precision–recall scatter (fig. 3 A–C), ROC (fig. 4),
per-channel heatmap galleries with five-band stratification (figs. 5–6), the per-sample table
(shard position, predicted and true class) and the added-layers scatter (appendix fig. 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure as MplFigure
from pydantic import Field
from torch import nn

from salbench.config import Config
from salbench.metrics import STANDARD, channel_adjust, stratify
from salbench.models import build, make_explainable
from salbench.models.selection import classification_scores
from salbench.models.training import fit, predict, preset
from salbench.report import Figure, Section, Table, figures, load_gallery_item
from salbench.report.gallery import gallery_files
from salbench.results import read_results
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage, Study, register
from salbench.studies.common import (
    DataSpec,
    MethodSpec,
    MetricSpec,
    attributions,
    load_dataset,
    score,
    score_rows,
    select_samples,
)

NAME = "cells"
COMMON = "salbench.studies.common:{}"
OWN = "salbench.studies.cells:{}"

# Document 001, section 3.3: the eight Captum methods. Saliency keeps Captum's default abs=True
# (the document used Captum's defaults); every other method keeps the registry defaults.
METHODS = [
    {"name": "saliency", "params": {"abs": True}},
    {"name": "input_x_gradient"},
    {"name": "deeplift"},
    {"name": "guided_backprop"},
    {"name": "guided_gradcam"},
    {"name": "deconvolution"},
    {"name": "gradient_shap"},
    {"name": "deeplift_shap"},
]
# Document 001, sections 3.3 and 4.1: standard and clamped soft five-band scores.
METRICS = [
    {"name": "soft_five_band", "label": "five_band", "params": {"schedule": "standard"}},
    {"name": "soft_five_band", "label": "five_band_clamped", "params": {"schedule": "clamped"}},
]
ARCH_LABELS = {"resnet34": "ResNet-34", "alexnet": "AlexNet", "vgg16": "VGG-16"}


class CellsModel(Config):
    """One architecture of table 1: ``arch``, channel ``width``, image ``size``, starting
    ``weights`` (``"imagenet"`` or a file, as the document fine-tunes torchvision's ImageNet
    models; default random initialisation, since no weights ship) and overrides of the training
    presets ``cells-continuous`` (TC) and ``cells-regular`` (TR)."""

    arch: Literal["alexnet", "vgg16", "resnet34"]
    width: float = Field(1.0, gt=0, le=1)
    weights: str | None = None
    size: int = Field(224, ge=32)
    continuous: dict = Field(default_factory=dict)
    regular: dict = Field(default_factory=dict)


class CellsConfig(Config):
    """The cells study. ``n`` samples in shards of ``shard_size`` (32/8/8 shards train/val/test,
    section 3.1); ``branches`` regular-evaluation models per architecture (section 3.2);
    ``n_samples`` evaluation samples explained per branch; ``gallery`` samples per branch stored
    for figures 5–6; ``alexnet_added_layers``: numbers of 3×3 conv layers added to AlexNet for the
    appendix-fig.-1 variant (empty: skipped)."""

    seed: int = Field(0, ge=0)
    n: int = Field(gt=0)
    shard_size: int = Field(200, gt=0)
    models: dict[str, CellsModel]
    branches: int = Field(5, ge=1)
    methods: list[MethodSpec] = Field(default_factory=lambda: [MethodSpec.parse(m)
                                                               for m in METHODS])
    metrics: list[MetricSpec] = Field(default_factory=lambda: [MetricSpec.parse(m)
                                                               for m in METRICS])
    n_samples: int = Field(gt=0)
    gallery: int = Field(2, ge=0)
    alexnet_added_layers: list[int] = Field(default_factory=list)
    variant_width: float = Field(1.0, gt=0, le=1)
    variant_size: int = Field(224, ge=32)
    variant_continuous: dict = Field(default_factory=dict)
    variant_regular: dict = Field(default_factory=dict)


def _tiny_model(arch: str) -> dict:
    short = {"epochs": 2, "lr": 1e-3, "batch_size": 16}
    return {"arch": arch, "width": 0.125, "size": 64, "continuous": short,
            "regular": {**short, "epochs": 1, "early_stop_limit": 6, "val_shards": 4}}


PRESETS = {
    # CPU minutes: 64 px, width 0.125, two branches, 12 evaluation samples per branch.
    "tiny": {"n": 480, "shard_size": 10, "branches": 2, "n_samples": 12, "gallery": 2,
             "models": {name: _tiny_model(arch) for name, arch in
                        (("resnet", "resnet34"), ("alexnet", "alexnet"), ("vgg", "vgg16"))},
             "variant_width": 0.125, "variant_size": 64,
             "variant_continuous": {"epochs": 2, "lr": 1e-3},
             "variant_regular": {"epochs": 2, "lr": 1e-3, "early_stop_limit": 6}},
    # CPU hours / GPU minutes: 128 px, width 0.25, the document's five branches.
    "small": {"n": 2400, "shard_size": 50, "branches": 5, "n_samples": 200, "gallery": 4,
              "models": {name: {"arch": arch, "width": 0.25, "size": 128}
                         for name, arch in (("resnet", "resnet34"), ("alexnet", "alexnet"),
                                            ("vgg", "vgg16"))},
              "alexnet_added_layers": [1, 2, 4], "variant_width": 0.25, "variant_size": 128},
    # Document 001: 48 shards of 200 (section 3.1), table 1 image sizes (ResNet 512, AlexNet and
    # VGG 224), full widths, the training presets' table-1 values, 5 branches (section 3.2), all
    # 1600 evaluation samples (section 3.3), AlexNet + 1…8 conv layers (section 4.1).
    "paper": {"n": 9600, "shard_size": 200, "branches": 5, "n_samples": 1600, "gallery": 8,
              "models": {"resnet": {"arch": "resnet34", "size": 512},
                         "alexnet": {"arch": "alexnet", "size": 224},
                         "vgg": {"arch": "vgg16", "size": 224}},
              "alexnet_added_layers": list(range(1, 9))},
}


# ---------------------------------------------------------------- specs and jobs

def data_spec(config: CellsConfig, size: int) -> DataSpec:
    return DataSpec(kind="cells", n=config.n, size=size, seed=config.seed,
                    params={"shard_size": config.shard_size})


def branch_id(name: str, branch: int) -> str:
    return f"{name}-b{branch}"


def variant_id(added: int) -> str:
    return f"alexnet+{added}"


def stages(config: CellsConfig) -> list[Stage]:
    """data → base models (continuous mode) → branches (regular evaluation) → explain and score."""
    sizes = sorted({m.size for m in config.models.values()}
                   | ({config.variant_size} if config.alexnet_added_layers else set()))
    specs = {s: data_spec(config, s).model_dump() for s in sizes}
    data = [Job(COMMON.format("data_job"), {"data": specs[s], "seed": config.seed}, study=NAME,
                label=f"cells data {s}px") for s in sizes]
    base, branches, explain = [], [], []
    for name, model in config.models.items():
        common = {"study": NAME, "data": specs[model.size], "seed": config.seed,
                  "model": {"arch": model.arch, "width": model.width,
                            "weights": model.weights}}
        base.append(Job(COMMON.format("train_job"), {
            **common, "model_id": f"{name}-base",
            "train": {"preset": "cells-continuous", **model.continuous}},
            study=NAME, label=f"train {name} base"))
        for b in range(config.branches):
            model_id = branch_id(name, b)
            branches.append(Job(COMMON.format("train_job"), {
                **common, "model_id": model_id, "init": f"{name}-base", "branch": b,
                "train": {"preset": "cells-regular", **model.regular}},
                study=NAME, label=f"train {model_id}"))
            explain.append(Job(COMMON.format("explain_job"), {
                "study": NAME, "data": specs[model.size], "seed": config.seed,
                "model_id": model_id,
                "methods": [m.model_dump() for m in config.methods],
                "metrics": [m.model_dump() for m in config.metrics],
                "n_samples": config.n_samples, "target": "predicted",
                "gallery": config.gallery}, study=NAME, label=f"explain {model_id}"))
    for added in config.alexnet_added_layers:
        job = {"study": NAME, "data": specs[config.variant_size], "seed": config.seed,
               "added": added, "width": config.variant_width,
               "continuous": config.variant_continuous, "regular": config.variant_regular,
               "methods": [m.model_dump() for m in config.methods],
               "metrics": [m.model_dump() for m in config.metrics],
               "n_samples": config.n_samples}
        branches.append(Job(OWN.format("variant_job"), job, study=NAME,
                            label=f"train and explain {variant_id(added)}"))
    return [Stage("data", data), Stage("base models (continuous mode)", base),
            Stage("branches (regular evaluation)", branches),
            Stage("explain and score", explain)]


# ---------------------------------------------------------------- AlexNet with added layers

def alexnet_with_added_layers(added: int, num_classes: int, input_size: int,
                              width: float = 1.0) -> nn.Module:
    """AlexNet (``salbench.models.build``) with ``added`` extra 3×3 conv + ReLU layers after its
    last convolution (document 001, section 4.1). The document does not say where the layers
    go; salbench inserts them before the last max-pooling, keeping the channel count, so the
    classifier is unchanged. ``added = 0`` is the plain AlexNet."""
    if not isinstance(added, int) or added < 0:
        raise ValueError(f"added must be a non-negative int (layers to add), got {added!r}")
    model = build("alexnet", num_classes=num_classes, input_size=input_size, width=width)
    layers = list(model.features)
    last_conv = max(i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d))
    c = layers[last_conv].out_channels
    extra = []
    for _ in range(added):
        conv = nn.Conv2d(c, c, kernel_size=3, padding=1)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        extra += [conv, nn.ReLU()]
    model.features = nn.Sequential(*layers[:last_conv + 2], *extra, *layers[last_conv + 2:])
    return model


def variant_job(config: dict, ctx: JobContext) -> list[dict]:
    """Train AlexNet + ``added`` conv layers (continuous, then one regular-evaluation run) and
    score its explanations of the evaluation samples like a branch (document 001, 4.1)."""
    dataset = load_dataset(ctx.run_dir, config["data"])
    size = int(dataset.x[:1].shape[-1])
    model = alexnet_with_added_layers(config["added"], len(dataset.classes), size,
                                      config["width"])
    train, val = dataset.split("train"), dataset.split("val")
    seed = ctx.seed % 2**31
    for name, overrides in (("cells-continuous", config["continuous"]),
                            ("cells-regular", config["regular"])):
        fit(model, train, val, preset(name, "alexnet", seed=seed, device=ctx.device, **overrides))
    model = make_explainable(model).to(ctx.device).eval()
    model_id = variant_id(config["added"])
    test = dataset.split("test")
    logits, _ = predict(model, test, device=ctx.device)
    rows = [{"dataset": dataset.name, "model_id": model_id, "method": "model", "metric": k,
             "sample_id": "all", "value": float(v), "params": {"added": config["added"]},
             "meta": {"arch": "alexnet"}}
            for k, v in classification_scores(logits, test.y).items()]
    samples = select_samples(ctx.run_dir, dataset, config["n_samples"])
    x, y, m = (t.to(ctx.device) for t in (samples.x, samples.y, samples.masks))
    with torch.no_grad():
        predicted = model(x).argmax(1)
    ids = samples.meta["sample_id"].astype(str).tolist()
    meta = [{"true": int(t), "predicted": int(p), "correct": bool(t == p), "added": config["added"]}
            for t, p in zip(y.tolist(), predicted.tolist())]
    for method in (MethodSpec.parse(s) for s in config["methods"]):
        a = attributions(model, x, predicted, method)
        for metric in (MetricSpec.parse(s) for s in config["metrics"]):
            rows += score_rows(score(metric, model, x, predicted, a, m, method),
                               dataset=dataset.name, model_id=model_id, method=method,
                               sample_ids=ids, meta=meta)
    return rows


# ---------------------------------------------------------------- analysis

def study_results(run_dir: Path) -> pd.DataFrame:
    results = read_results(run_dir)
    return results[results.study == NAME].copy()


def run_config(run_dir: Path) -> CellsConfig:
    return CellsConfig.from_yaml(Path(run_dir) / "config.yaml")


def per_sample_table(run_dir: Path, results: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (model, branch, method, evaluation sample): shard, position in the shard,
    true and predicted class, and every soft five-band score (document 001, section 3.3: "saved
    sample by sample ... identified by their positions among the shards, the predicted class and
    the true class")."""
    results = study_results(run_dir) if results is None else results
    rows = results[(results.method != "model") & ~results.sample_id.str.startswith("point:")
                   & results.metric.str.contains("/")]
    if rows.empty:
        return pd.DataFrame()
    config = run_config(run_dir)
    meta = pd.DataFrame([json.loads(v) for v in rows.meta], index=rows.index)
    frame = rows[["model_id", "method", "sample_id", "metric", "value"]].assign(
        true=meta["true"], predicted=meta["predicted"])
    wide = frame.pivot_table(index=["model_id", "method", "sample_id", "true", "predicted"],
                             columns="metric", values="value").reset_index()
    wide.columns.name = None
    sid = wide.sample_id.astype(int)
    wide.insert(3, "shard", sid // config.shard_size)
    wide.insert(4, "position", sid % config.shard_size)
    wide.insert(1, "architecture", wide.model_id.str.rsplit("-", n=1).str[0])
    classes = _class_names()
    for col in ("true", "predicted"):
        wide[col] = [classes[int(v)] for v in wide[col]]
    return wide.sort_values(["model_id", "method", "shard", "position"]).reset_index(drop=True)


def _class_names() -> list[str]:
    from salbench.data.cells import CLASSES

    return list(CLASSES)


def training_table(run_dir: Path, results: pd.DataFrame) -> pd.DataFrame:
    """Table 1: image size, batch, TC and TR epochs, n_l, r_f and the mean test accuracy of the
    branches (± standard deviation)."""
    config = run_config(run_dir)
    models = results[(results.method == "model") & (results.metric == "accuracy")]
    out = []
    for name, model in config.models.items():
        tc = preset("cells-continuous", model.arch, **model.continuous)
        tr = preset("cells-regular", model.arch, **model.regular)
        acc = models[models.model_id.str.match(rf"^{name}-b\d+$")].value
        base = models[models.model_id == f"{name}-base"].value
        out.append({"model": ARCH_LABELS[model.arch], "H=W": model.size,
                    "n_batch": tc.batch_size, "TC n_ep": tc.epochs, "TR n_ep": tr.epochs,
                    "TR n_l": tr.early_stop_limit, "TR r_f": tr.refresh_fraction,
                    "base acc.": base.mean() if len(base) else np.nan,
                    "<Acc.>": acc.mean() if len(acc) else np.nan,
                    "sd": acc.std(ddof=0) if len(acc) else np.nan, "branches": len(acc)})
    return pd.DataFrame(out).set_index("model")


def _arch_of(model_id: str, config: CellsConfig) -> str:
    name = model_id.rsplit("-", 1)[0]
    return ARCH_LABELS[config.models[name].arch] if name in config.models else name


def pr_points(results: pd.DataFrame, config: CellsConfig, metric: str, stat: str) -> pd.DataFrame:
    """Figure 3: per (architecture, branch, method) the mean and sd over samples of R_stat and
    P_stat of ``metric`` ("five_band" or "five_band_clamped")."""
    keep = results[results.metric.isin([f"{metric}/recall_{stat}", f"{metric}/precision_{stat}"])
                   & results.model_id.str.contains(r"-b\d+$")]
    if keep.empty:
        return pd.DataFrame(columns=["architecture", "model_id", "method", "R", "P"])
    keep = keep.assign(which=keep.metric.str.split("/").str[1].str.split("_").str[0])
    grouped = keep.groupby(["model_id", "method", "which"]).value.agg(["mean", "std"]).unstack()
    out = pd.DataFrame({"R": grouped[("mean", "recall")], "P": grouped[("mean", "precision")],
                        "R_sd": grouped[("std", "recall")], "P_sd": grouped[("std", "precision")]}
                       ).reset_index()
    out.insert(0, "architecture", [_arch_of(m, config) for m in out.model_id])
    return out


def _panels(keys: list[str], width: float = 3.6) -> tuple[MplFigure, list]:
    fig = MplFigure(figsize=(width * len(keys) + 0.8, 3.4), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(color="#eeeeee", linewidth=0.6)
    return fig, list(axes)


def _method_colours(methods) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def pr_figure(points: pd.DataFrame, stat_label: str) -> MplFigure:
    """One panel per architecture: P against R, one point per method × branch with sd bars."""
    archs = list(dict.fromkeys(points.architecture))
    colours = _method_colours(dict.fromkeys(points.method))
    fig, axes = _panels(archs)
    for ax, arch in zip(axes, archs):
        part = points[points.architecture == arch]
        for method, rows in part.groupby("method", sort=False):
            ax.errorbar(rows.R, rows.P, xerr=rows.R_sd.fillna(0), yerr=rows.P_sd.fillna(0),
                        fmt="o", markersize=3.5, elinewidth=0.5, alpha=0.8,
                        color=colours[method], label=method)
        ax.set_xlabel(f"R_{stat_label}", fontsize=8)
        ax.set_ylabel(f"P_{stat_label}", fontsize=8)
    axes[-1].legend(fontsize=6, loc="best")
    return fig


def roc_points(results: pd.DataFrame, config: CellsConfig) -> pd.DataFrame:
    """Figure 4: per (branch, method, threshold m) the mean FPR and mean recall over samples."""
    keep = results[results.metric.isin(["five_band/roc_fpr", "five_band/roc_recall"])
                   & results.model_id.str.contains(r"-b\d+$")]
    if keep.empty:
        return pd.DataFrame(columns=["architecture", "model_id", "method", "m", "FPR", "R"])
    wide = keep.pivot_table(index=["model_id", "method", "sample_id"], columns="metric",
                            values="value").reset_index()
    wide = wide.rename(columns={"five_band/roc_fpr": "FPR", "five_band/roc_recall": "R"})
    wide["m"] = wide.sample_id.str.split(":").str[1].astype(int)
    wide.insert(0, "architecture", [_arch_of(m, config) for m in wide.model_id])
    return wide.drop(columns="sample_id").sort_values(["model_id", "method", "m"])


def roc_figure(points: pd.DataFrame) -> MplFigure:
    archs = list(dict.fromkeys(points.architecture))
    colours = _method_colours(dict.fromkeys(points.method))
    fig, axes = _panels(archs)
    for ax, arch in zip(axes, archs):
        part = points[points.architecture == arch]
        seen = set()
        for (model_id, method), rows in part.groupby(["model_id", "method"], sort=False):
            ax.plot(rows.FPR, rows.R, marker="o", markersize=1.5, linewidth=0.8,
                    color=colours[method], label=None if method in seen else method)
            seen.add(method)
        ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle=":")
        ax.set_xlabel("mean FPR", fontsize=8)
        ax.set_ylabel("mean recall", fontsize=8)
    axes[-1].legend(fontsize=6, loc="best")
    return fig


def _gallery_items(run_dir: Path):
    return [load_gallery_item(p) for p in gallery_files(run_dir).get(NAME, [])]


def channel_figures(run_dir: Path, config: CellsConfig) -> list[Figure]:
    """Figures 5–6: for each architecture's first branch, a correctly predicted stored sample;
    rows are methods, columns the R, G, B channels of the raw map (fig. 5), their sum h, and
    the five-band stratifications S⁵ at the first and last standard thresholds t₀ and t₅₅
    (fig. 6)."""
    out = []
    t_first, t_last = (STANDARD.t1[0], STANDARD.t2[0]), (STANDARD.t1[-1], STANDARD.t2[-1])
    classes = _class_names()
    for name, model in config.models.items():
        items = [i for i in _gallery_items(run_dir) if i.model_id == branch_id(name, 0)]
        if not items:
            continue
        item = next((i for i in items if i.meta.get("correct")), items[0])
        rows, labels = [], []
        for method, a in item.maps.items():
            t = torch.from_numpy(np.asarray(a, np.float32))[None]
            h = channel_adjust(t)
            bands = [stratify(h, *t_first)[0].float() / 2, stratify(h, *t_last)[0].float() / 2]
            rows.append([a[c] for c in range(a.shape[0])] + [h[0].numpy()]
                        + [b.numpy() for b in bands])
            labels.append(method)
        cols = ["R", "G", "B"][:item.maps[labels[0]].shape[0]] + ["h = Σc", "S⁵ t₀", "S⁵ t₅₅"]
        grid = figures.map_grid(rows, row_labels=labels, col_labels=cols,
                                images=[item.image] * len(rows), masks=[item.mask] * len(rows),
                                panel=1.1)
        truth, pred = item.meta.get("true"), item.meta.get("predicted")
        out.append(Figure(grid, f"Figures 5–6, {ARCH_LABELS[model.arch]} ({item.model_id}), "
                          f"sample {item.sample_id}: true {classes[truth]}, predicted "
                          f"{classes[pred]}. Columns: the map's R, G, B channels, their sum "
                          "(divided by max|h|), and its five-band stratification at t₀ = "
                          "[−0.5, −0.3, 0.3, 0.5] and t₅₅ = [−0.225, −0.025, 0.025, 0.225] "
                          "(bands/2; ±1 = discriminative, ±0.5 = localisation).",
                          name=f"cells-channels-{name}", embed="png"))
    return out


def variant_figure(results: pd.DataFrame) -> tuple[MplFigure, pd.DataFrame] | None:
    """Appendix fig. 1: mean R_avg and P_avg per predicted class for each AlexNet + k model,
    with the mean over classes."""
    keep = results[results.model_id.str.startswith("alexnet+")
                   & results.metric.isin(["five_band/recall_avg", "five_band/precision_avg"])]
    if keep.empty:
        return None
    meta = pd.DataFrame([json.loads(v) for v in keep.meta], index=keep.index)
    keep = keep.assign(predicted=meta.predicted, which=keep.metric.str.split("/").str[1])
    per_class = keep.pivot_table(index=["model_id", "predicted"], columns="which",
                                 values="value").reset_index()
    per_class["added layers"] = per_class.model_id.str.split("+").str[1].astype(int)
    fig = figures.scatter_plot(per_class, "recall_avg", "precision_avg", hue="added layers",
                               xlabel="R_avg (per predicted class)",
                               ylabel="P_avg (per predicted class)")
    means = per_class.groupby("added layers")[["recall_avg", "precision_avg"]].mean()
    ax = fig.axes[0]
    ax.scatter(means.recall_avg, means.precision_avg, marker="x", s=40, color="black",
               label="mean over classes")
    for k, row in means.iterrows():
        ax.annotate(str(k), (row.recall_avg, row.precision_avg), fontsize=7)
    return fig, means


def report_section(run_dir: Path) -> Section:
    """The cells section: table 1, figures 3 A–C, 4, 5–6, the per-sample table, appendix fig. 1."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    results = study_results(run_dir)
    text = (__doc__.split("\n\n")[1].replace("\n", " ") + "\n\n"
            "Figure 3 points are means over the evaluation samples of one branch, bars the "
            "standard deviation over samples; (A) average and (B) best over the soft thresholds, "
            "(C) best after clamping. Figure 4 plots, per threshold t_m, the mean FPR and mean "
            "recall over the samples, one line per method and branch. Methods explain the "
            "predicted class.")
    section = Section("Synthetic cells (document 001)", text)
    section.tables.append(Table(training_table(run_dir, results),
                                "Table 1: training settings and the test accuracy of the "
                                "branches (<Acc.> mean, sd over branches).",
                                name="cells-table1"))
    for panel, metric, stat, label in (("A", "five_band", "avg", "avg"),
                                       ("B", "five_band", "best", "best"),
                                       ("C", "five_band_clamped", "best", "best, clamped")):
        points = pr_points(results, config, metric, stat)
        if points.empty:
            continue
        section.figures.append(Figure(
            pr_figure(points, stat), f"Figure 3{panel}: P_{label} against R_{label}, one point "
            "per method and branch.", name=f"cells-fig3{panel}", embed="svg"))
        if panel == "B":
            summary = points.groupby(["architecture", "method"])[["R", "P"]].mean()
            section.tables.append(Table(summary.unstack(0), "Mean over branches of R_best and "
                                        "P_best per method (figure 3B).", name="cells-pr-best"))
    roc = roc_points(results, config)
    if not roc.empty:
        section.figures.append(Figure(roc_figure(roc), "Figure 4: ROC, mean FPR against mean "
                                      "recall per soft threshold (standard schedule).",
                                      name="cells-fig4", embed="svg"))
    section.figures += channel_figures(run_dir, config)
    table = per_sample_table(run_dir, results)
    if not table.empty:
        out = run_dir / "report" / "tables"
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "cells-per-sample-full.csv", index=False)
        section.tables.append(Table(table.head(200), f"Per-sample scores ({len(table)} rows; "
                                    "first 200 shown, all in report/tables/"
                                    "cells-per-sample-full.csv).", name="cells-per-sample"))
    variant = variant_figure(results)
    if variant is not None:
        fig, means = variant
        section.figures.append(Figure(fig, "Appendix fig. 1: AlexNet with k added conv layers; "
                                      "dots: means per predicted class, x: mean over classes.",
                                      name="cells-alexnet-added", embed="svg"))
        section.tables.append(Table(means, "AlexNet + k conv layers: mean over predicted "
                                    "classes of R_avg and P_avg.", name="cells-alexnet-added"))
    return section


STUDY = register(Study(NAME, "document 001: eight saliency methods on synthetic cells, "
                             "soft five-band scores", CellsConfig, PRESETS, stages,
                       report_section))
