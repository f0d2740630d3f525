"""Study ``gad`` (document 004, sections 4-6): does Gradient Artificial Distancing shrink the
important region of gradient maps, and is what it keeps more influential per pixel?

Grid: one class pair of one dataset; VGG-16 and ResNet-18 trained on it (stage ``train``); per
architecture one job (stage ``gad``) that trains the support regressions for α = 0, 2, 4, 6, 8
(:func:`salbench.explain.fit_gad`: Adam, lr 4e-5, 10 epochs, MSE on the distanced pre-softmax
outputs; section 6) and, for ``n_per_class`` test images of each class and each base method
(saliency, deconvolution, input×gradient, guided backprop, integrated gradients), explains both
outputs a of the pair with the base method (original map) and with GAD, then scores
(:mod:`salbench.metrics.regions`, section 5):

- ``complexity_ratio``: RC = A(CH_GAD) / A(CH_Orig), the convex hulls of the most important half
  of the pixels (section 6);
- ``occlusion_sensitivity_gad``: RS(I, M_GAD, a) and ``occlusion_sensitivity_supplementary``:
  RS(I, M_Orig − M_GAD, a) (eq. 2) on the pre-softmax output a; a sample whose mask is empty
  gets no RS row (RS is undefined for an empty mask).

Dataset: by default the two classes of the embedded MRI-lesion data (regular vs irregular
lesions; a binary task like the document's cats vs dogs). ``data.kind="cells"`` with ``classes``
picks two of the ten cell classes. The gallery keeps, per class, the ``gallery`` test images
least activated for their own class (section 6.4, fig. 6), with the original and GAD maps of
every base method for that class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator, model_validator

from salbench.config import Config
from salbench.explain import explain, fit_gad
from salbench.explain.gad import GAD_ALPHAS, IMPORTANCE_RULES, support_config
from salbench.metrics import complexity_ratio, hull_mask, occlusion_sensitivity, supplementary_mask
from salbench.report import save_gallery_item
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage, Study, register
from salbench.studies.common import (
    DataSpec,
    MethodSpec,
    ModelSpec,
    checkpoint_path,
    load_dataset,
    load_model,
)
from salbench.studies.pretraining import check_training

NAME = "gad"
METRICS = ("complexity_ratio", "occlusion_sensitivity_gad", "occlusion_sensitivity_supplementary")
# Section 6: Saliency (S), Deconvolution (D), Gradient x Input (GxI), Guided Backprop (GB),
# Integrated Gradients (IG), each on its own (signed) map.
PAPER_METHODS = [{"name": "saliency", "label": "S"}, {"name": "deconvolution", "label": "D"},
                 {"name": "input_x_gradient", "label": "GxI"},
                 {"name": "guided_backprop", "label": "GB"},
                 {"name": "integrated_gradients", "label": "IG"}]


class GADConfig(Config):
    """Config of the ``gad`` study; each field cites the document section it follows."""

    seed: int = Field(0, ge=0)
    data: DataSpec = Field(default_factory=lambda: DataSpec(kind="mri_lesions", n=4000, size=224))
    classes: list[int] = Field(default_factory=lambda: [0, 1])  # section 4.1: one class pair
    models: list[ModelSpec] = Field(  # section 6: VGG16 and ResNet18
        default_factory=lambda: [ModelSpec(arch="vgg16"), ModelSpec(arch="resnet18")])
    # Training of the classifiers to explain (not described in document 004; salbench uses the
    # MRI regime of document 000 on MRI data).
    train: dict = Field(default_factory=lambda: {"preset": "mri"})
    alphas: list[float] = Field(default_factory=lambda: list(GAD_ALPHAS))  # section 6
    # Section 6: support regressions trained 10 epochs with Adam, lr 4e-5, MSE (the training
    # preset "gad-support"); keys override fields of salbench.models.training.TrainConfig.
    support: dict = Field(default_factory=dict)
    methods: list[MethodSpec] = Field(
        default_factory=lambda: [MethodSpec.parse(m) for m in PAPER_METHODS])
    n_per_class: int = Field(256, gt=0)  # section 6: 512 images, 256 per class
    keep: float = Field(0.5, gt=0, le=1)  # section 6: hulls of the most important half
    # Section 4.3 leaves "important" open: explain.gad's default (top half of |a| features).
    importance: str = "top_fraction"
    threshold: float = Field(0.5, gt=0, le=1)
    gallery: int = Field(5, ge=0)  # section 6.4: the five least activated images per class

    @field_validator("classes")
    @classmethod
    def _pair(cls, value: list[int]) -> list[int]:
        if len(value) != 2 or value[0] == value[1] or min(value) < 0:
            raise ValueError(f"must be two different class indices, got {value}")
        return value

    @field_validator("train")
    @classmethod
    def _train(cls, value: dict) -> dict:
        check_training(value)
        return value

    @field_validator("support")
    @classmethod
    def _support(cls, value: dict) -> dict:
        check_training({"preset": "gad-support", **value})
        return value

    @field_validator("importance")
    @classmethod
    def _importance(cls, value: str) -> str:
        if value not in IMPORTANCE_RULES:
            raise ValueError(f"must be one of {list(IMPORTANCE_RULES)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _non_empty(self) -> GADConfig:
        for name in ("models", "alphas", "methods"):
            if not getattr(self, name):
                raise ValueError(f"{name} must hold at least one entry")
        return self


TINY = {
    "data": {"kind": "mri_lesions", "n": 128, "size": 64, "params": {"slices_per_subject": 4}},
    "models": [{"arch": "vgg16", "width": 0.0625}, {"arch": "resnet18", "width": 0.125}],
    "train": {"preset": "mri", "epochs": 2, "early_stopping": "none"},
    "support": {"epochs": 1},
    "methods": [m if m["name"] != "integrated_gradients"
                else {**m, "params": {"n_steps": 8}} for m in PAPER_METHODS],
    "n_per_class": 4,
    "gallery": 2,
}
SMALL = {
    "data": {"kind": "mri_lesions", "n": 1200, "size": 128},
    "models": [{"arch": "vgg16", "width": 0.25}, {"arch": "resnet18", "width": 0.5}],
    "train": {"preset": "mri", "epochs": 15},
    "support": {"epochs": 5},
    "n_per_class": 64,
}
PAPER: dict = {}  # the config's defaults are document 004's settings


def model_id(spec: ModelSpec) -> str:
    return f"{spec.arch}-w{spec.width:g}"


def _jobs_data(cfg: GADConfig) -> list[Job]:
    return [Job("salbench.studies.common:data_job",
                {"data": cfg.data.model_dump(), "seed": cfg.data.seed}, NAME, label="data")]


def _jobs_train(cfg: GADConfig) -> list[Job]:
    return [Job("salbench.studies.common:train_job",
                {"model_id": model_id(m), "data": cfg.data.model_dump(), "model": m.model_dump(),
                 "train": dict(cfg.train), "seed": cfg.seed}, NAME, label=f"train {m.arch}")
            for m in cfg.models]


def _jobs_gad(cfg: GADConfig) -> list[Job]:
    shared = cfg.model_dump(include={"data", "classes", "alphas", "support", "methods",
                                     "n_per_class", "keep", "importance", "threshold",
                                     "gallery", "seed"})
    return [Job(f"salbench.studies.{NAME}:gad_job", {**shared, "model_id": model_id(m)}, NAME,
                label=f"gad {m.arch}") for m in cfg.models]


def stages(cfg: GADConfig) -> list[Stage]:
    return [Stage("data", _jobs_data(cfg)), Stage("train", _jobs_train(cfg)),
            Stage("gad", _jobs_gad(cfg))]


def support_dir(run_dir: Path, model: str) -> Path:
    """Where the support regressions of ``model`` are cached: ``models/<model_id>-gad/``."""
    return checkpoint_path(run_dir, model).with_name(f"{model}-gad")


def support_training(model, cfg: GADConfig):
    """The support models' ``TrainConfig``: preset "gad-support" with ``cfg.support`` applied."""
    return support_config(model, **{"seed": cfg.seed, **cfg.support})


def _pair_samples(dataset, classes: list[int], n_per_class: int):
    """The first ``n_per_class`` test samples of each class of the pair (section 6)."""
    test = dataset.split("test")
    y = test.y.numpy()
    picked = [np.flatnonzero(y == c)[:n_per_class] for c in classes]
    if any(len(p) == 0 for p in picked):
        raise ValueError(f"the test split has no sample of class {classes[0]} or {classes[1]}; "
                         "choose other classes or a larger data.n")
    return test.subset(np.sort(np.concatenate(picked)))


def original_and_gad_maps(model, x: torch.Tensor, targets: torch.Tensor, method: MethodSpec,
                          support, cfg: GADConfig, batch_size: int = 16
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """The base method's map and its GAD map ``[B, C, H, W]`` for output ``targets``."""
    orig, gad = [], []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], targets[i:i + batch_size]
        orig.append(explain(model, xb, yb, method.name, **method.params))
        gad.append(explain(model, xb, yb, "gad", support=support, base=method.name,
                           base_params=dict(method.params), importance=cfg.importance,
                           threshold=cfg.threshold))
    return torch.cat(orig), torch.cat(gad)


def _rs_rows(model, x, targets, mask) -> list[tuple[int, float]]:
    """RS on the samples whose mask is non-empty: ``[(index, value)]``."""
    valid = torch.nonzero(mask.flatten(1).sum(1) > 0).flatten()
    if len(valid) == 0:
        return []
    values = occlusion_sensitivity(model, x[valid], targets[valid], mask[valid])
    return list(zip(valid.tolist(), values.double().cpu().tolist()))


def gad_job(config: dict, ctx: JobContext) -> list[dict]:
    """Train the supports of one model and score RC and RS for every base method and class."""
    cfg = GADConfig.parse({k: v for k, v in config.items() if k != "model_id"})
    dataset = load_dataset(ctx.run_dir, cfg.data)
    if max(cfg.classes) >= len(dataset.classes):
        raise ValueError(f"classes {cfg.classes} do not exist in {dataset.name} "
                         f"({len(dataset.classes)} classes)")
    model = load_model(ctx.run_dir, config["model_id"], ctx.device)
    train = dataset.split("train")
    support = fit_gad(model, (train.x.to(ctx.device), train.y.to(ctx.device)), cfg.classes,
                      alphas=cfg.alphas, config=support_training(model, cfg),
                      cache_dir=support_dir(ctx.run_dir, config["model_id"]))
    samples = _pair_samples(dataset, cfg.classes, cfg.n_per_class)
    x, y = samples.x.to(ctx.device), samples.y.to(ctx.device)
    with torch.no_grad():
        logits = model(x)
    predicted = logits.argmax(1)
    ids = samples.meta["sample_id"].astype(str).tolist()
    gallery = _least_activated(logits, y, cfg.classes, cfg.gallery)
    gallery_maps: dict[int, dict[str, torch.Tensor]] = {i: {} for i in gallery}
    rows = []
    for method in cfg.methods:
        for role, a in enumerate(cfg.classes, start=1):
            targets = torch.full_like(y, a)
            orig, gad = original_and_gad_maps(model, x, targets, method, support, cfg)
            m_orig, m_gad = hull_mask(orig, keep=cfg.keep), hull_mask(gad, keep=cfg.keep)
            scores = {"complexity_ratio": list(enumerate(
                complexity_ratio(gad, orig, keep=cfg.keep).double().cpu().tolist()))}
            scores["occlusion_sensitivity_gad"] = _rs_rows(model, x, targets, m_gad)
            scores["occlusion_sensitivity_supplementary"] = _rs_rows(
                model, x, targets, supplementary_mask(m_orig, m_gad))
            params = {**method.params, "class_index": a, "role": role, "alphas": cfg.alphas,
                      "keep": cfg.keep}
            for metric, values in scores.items():
                rows += [{"dataset": dataset.name, "model_id": config["model_id"],
                          "method": method.key, "metric": metric, "sample_id": ids[i],
                          "value": v, "params": params,
                          "meta": {"true": int(y[i]), "predicted": int(predicted[i]),
                                   "output": a, "role": role}}
                         for i, v in values]
            for i in gallery:
                if int(y[i]) == a:
                    gallery_maps[i][f"{method.key}"] = orig[i].cpu()
                    gallery_maps[i][f"GAD {method.key}"] = gad[i].cpu()
    for i, maps in gallery_maps.items():
        save_gallery_item(ctx.run_dir, ids[i], x[i].cpu(), samples.masks[i], maps,
                          {"true": int(y[i]), "predicted": int(predicted[i]),
                           "logit_true": float(logits[i, y[i]]),
                           "classes": [dataset.classes[c] for c in cfg.classes]},
                          study=NAME, dataset=dataset.name, model_id=config["model_id"])
    return rows


def _least_activated(logits: torch.Tensor, y: torch.Tensor, classes: list[int], n: int
                     ) -> list[int]:
    """Indices of the ``n`` samples of each class with the lowest output for their own class
    (section 6.4)."""
    own = logits.gather(1, y[:, None]).squeeze(1).cpu()
    out = []
    for c in classes:
        idx = torch.nonzero(y.cpu() == c).flatten()
        out += idx[torch.argsort(own[idx], stable=True)[:n]].tolist()
    return out


# ---------------------------------------------------------------- report

def _load_config(run_dir: Path) -> GADConfig:
    return GADConfig.from_yaml(Path(run_dir) / "config.yaml")


def _rows(run_dir: Path) -> pd.DataFrame:
    from salbench.results import query

    metrics = ", ".join(f"'{m}'" for m in METRICS)
    frame = query(run_dir, "select model_id, method, metric, sample_id, value, params "
                           f"from results where study = '{NAME}' and metric in ({metrics})")
    frame["role"] = frame.params.map(lambda p: int(json.loads(p)["role"]))
    return frame


def complexity_table(rows: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Document 004, table 1: per model, images with RC >= 1 (Orig.r) and RC < 1 (GAD r) for
    the maps of output r of the pair."""
    rc = rows[rows.metric == "complexity_ratio"]
    out = []
    for model in sorted(rc.model_id.unique()):
        for role in (1, 2):
            part = rc[(rc.model_id == model) & (rc.role == role)]
            below = part.assign(below=part.value < 1).groupby("method").below
            out.append({"model": model, "row": f"Orig.{role}",
                        **(below.apply(lambda s: int((~s).sum())).to_dict())})
            out.append({"model": model, "row": f"GAD {role} (ours)",
                        **(below.apply(lambda s: int(s.sum())).to_dict())})
    return _indexed(pd.DataFrame(out), methods)


def sensitivity_table(rows: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Document 004, table 2: mean RS × 10² per model for the supplementary (Sup.r) and GAD
    (GAD r) masks of output r."""
    rs = rows[rows.metric != "complexity_ratio"]
    out = []
    for model in sorted(rs.model_id.unique()):
        for role in (1, 2):
            for metric, label in (("occlusion_sensitivity_supplementary", f"Sup.{role}"),
                                  ("occlusion_sensitivity_gad", f"GAD {role} (ours)")):
                part = rs[(rs.model_id == model) & (rs.role == role) & (rs.metric == metric)]
                out.append({"model": model, "row": label,
                            **(part.groupby("method").value.mean() * 100).to_dict()})
    return _indexed(pd.DataFrame(out), methods)


def _indexed(table: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    if table.empty:
        return pd.DataFrame(columns=methods)
    return table.set_index(["model", "row"])[[m for m in methods if m in table.columns]]


def _gallery(run_dir: Path) -> dict[str, list]:
    from salbench.report import load_gallery_item
    from salbench.report.gallery import gallery_files

    items: dict[str, list] = {}
    for path in gallery_files(run_dir).get(NAME, []):
        item = load_gallery_item(path)
        items.setdefault(item.model_id, []).append(item)
    for group in items.values():
        group.sort(key=lambda i: (i.meta.get("true", 0), i.meta.get("logit_true", 0)))
    return items


def maps_figure(items: list, methods: list[str], model: str):
    """Figure 5: per base method a row of original maps and a row of GAD maps (columns: images)."""
    from salbench.report import figures

    rows, labels = [], []
    for method in methods:
        for label in (method, f"GAD {method}"):
            rows.append([i.maps.get(label) for i in items])
            labels.append(label)
    titles = [[f"y={i.meta.get('true')} ŷ={i.meta.get('predicted')}" for i in items]] * len(rows)
    return figures.map_grid(rows, row_labels=labels, titles=titles,
                            title=f"{model}: original and GAD maps")


def hulls_figure(items: list, methods: list[str], model: str, keep: float):
    """Figure 6: each image with the convex hull of the original map's most important pixels
    (red) and of the GAD map's (green), per base method."""
    from matplotlib.figure import Figure as MplFigure

    from salbench.report import figures

    fig = MplFigure(figsize=(1.5 * len(methods) + 0.4, 1.5 * len(items) + 0.5),
                    layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(items), len(methods), squeeze=False))
    for r, item in enumerate(items):
        for c, method in enumerate(methods):
            ax = axes[r, c]
            figures.show_image(ax, item.image)
            for label, color in ((method, "red"), (f"GAD {method}", "lime")):
                if label in item.maps:
                    a = torch.as_tensor(item.maps[label])[None]
                    if bool((a != 0).any()):
                        figures.draw_mask_contours(ax, hull_mask(a, keep=keep)[0].numpy(),
                                                   color=color, linewidth=1.0)
            if r == 0:
                ax.set_title(method, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"y={item.meta.get('true')}", fontsize=7)
    fig.suptitle(f"{model}: convex hulls, original (red) and GAD (green)", fontsize=9)
    return fig


def report_section(run_dir: Path):
    """Tables 1-2 and figures 5-6 of document 004 from the run's results and gallery."""
    from salbench.report import Figure, Section, Table

    run_dir = Path(run_dir)
    cfg = _load_config(run_dir)
    methods = [m.key for m in cfg.methods]
    rows = _rows(run_dir)
    n_images = rows[rows.metric == "complexity_ratio"].groupby("model_id").sample_id.nunique()
    text = (
        "Document 004: GAD keeps the features that the original model and every support "
        f"regression (α = {', '.join(f'{a:g}' for a in cfg.alphas)}) find important. RC = "
        "A(CH_GAD)/A(CH_Orig) of the convex hulls of the most important "
        f"{cfg.keep:.0%} of the pixels (RC < 1: GAD's region is smaller); RS = |N_a(I) − "
        "N_a(I·(1−M))| / ΣM for the GAD hull and the supplementary mask M_Orig − M_GAD.\n\n"
        f"Class pair {cfg.classes} of {cfg.data.kind}; images scored per model: "
        + ", ".join(f"{m} {n}" for m, n in n_images.items()) + ".")
    tables = [Table(complexity_table(rows, methods),
                    "Images where the original (Orig.r, RC ≥ 1) or GAD (GAD r, RC < 1) has the "
                    "smaller important area, maps of output r (document 004, table 1).",
                    name="gad-table1", digits=4),
              Table(sensitivity_table(rows, methods),
                    "Mean RS × 10² for the supplementary (Sup.r) and GAD masks of output r "
                    "(document 004, table 2).", name="gad-table2", digits=3)]
    section_figures = []
    for model, items in sorted(_gallery(run_dir).items()):
        section_figures.append(Figure(maps_figure(items, methods, model),
                                      f"{model}: original (odd rows) and GAD maps (even rows) of "
                                      "the least activated test images (document 004, fig. 5).",
                                      name=f"gad-fig5-{model}", embed="png"))
        section_figures.append(Figure(hulls_figure(items, methods, model, cfg.keep),
                                      f"{model}: convex hulls of the original (red) and GAD "
                                      "(green) maps, least activated images per class "
                                      "(document 004, fig. 6).",
                                      name=f"gad-fig6-{model}", embed="png"))
    return Section("Gradient Artificial Distancing (document 004)", text,
                   figures=section_figures, tables=tables)


STUDY = register(Study(
    name=NAME,
    summary="document 004: GAD support regressions, complexity ratio RC and occlusion "
            "sensitivity RS of five gradient methods on one class pair",
    config_class=GADConfig,
    presets={"tiny": TINY, "small": SMALL, "paper": PAPER},
    stages=stages,
    report_section=report_section,
))
