"""Study ``pretraining`` (document 000): does within- or out-of-domain pre-training change how
well saliency methods find MRI lesions after fine-tuning?

Grid (document 000, sections 2.2-3, appendices D, F, G):

1. **data**: the MRI-lesion dataset for fine-tuning and testing (regular vs irregular lesions,
   section 2.1) and the within-domain corpus (lesion-free slices with their anatomical label,
   ``DataSpec(kind="mri_lesion_free")``).
2. **pretrain**: VGG-16 pre-trained on each corpus: *within-domain* on the lesion-free slices,
   *out-of-domain* on ImageNet (torchvision's weights when cached and ``width == 1``) or else
   :func:`salbench.models.corpora.natural_image_corpus`. The class-score layer is then replaced by a
   new 2-class layer (section 2.3). A third, untrained model is the *random model* null baseline
   (section 2.6).
3. **finetune**: every corpus × degree (``1conv`` … ``all``, counted from the output side,
   NOTES.md) × seed × learning rate, with the document's SGD regime (training preset ``mri``).
4. **explain**: per corpus and degree the ``best_k`` most accurate models (section 3) and the
   ``matched_k`` models closest to ``matched_target`` accuracy (appendix G) are explained with the
   eight Captum/Zennit methods (zero baselines, absolute values, section 2.4) on the test images
   that *every* selected model classifies correctly (section 4.2), and scored with top-n precision
   (section 2.5). The null baselines (random model with each method, Sobel, Laplace; section 2.6)
   are scored on the same images.

Model ids: ``pre-<corpus>`` (pre-trained starting points), ``random-init`` (null model) and
``ft-<corpus>-<degree>-s<seed>-lr<lr>`` (fine-tuned).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from salbench.config import Config
from salbench.models import DEGREES
from salbench.models.selection import accuracy_matched, classification_scores, select_top_k
from salbench.models.training import predict, preset
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage, Study, register
from salbench.studies.common import (
    DataSpec,
    MethodSpec,
    ModelSpec,
    build_model,
    checkpoint_path,
    load_dataset,
    model_row,
)

log = logging.getLogger("salbench.studies.pretraining")

NAME = "pretraining"
CORPORA = ("within-domain", "out-of-domain")
RANDOM_MODEL_ID = "random-init"
METRIC = "top_k_precision"

# Document 000, section 2.4: Captum's defaults with all-zero baselines, absolute maps. Captum's
# LRP uses the epsilon rule with epsilon = 1e-9 on every layer by default.
PAPER_METHODS = [
    {"name": "integrated_gradients", "params": {"baseline": "zero"}, "absolute": True},
    {"name": "gradient_shap", "params": {"baseline": "zero"}, "absolute": True},
    {"name": "lrp_epsilon", "params": {"epsilon": 1e-9}, "absolute": True, "label": "lrp"},
    {"name": "deeplift", "params": {"baseline": "zero"}, "absolute": True},
    {"name": "saliency", "params": {}, "absolute": True},
    {"name": "deconvolution", "params": {}, "absolute": True},
    {"name": "guided_backprop", "params": {}, "absolute": True},
    {"name": "input_x_gradient", "params": {}, "absolute": True},
]
# Document 000, section 2.6: edge filters (independent of model and method), absolute values.
EDGE_BASELINES = [{"name": "sobel", "absolute": True}, {"name": "laplace", "absolute": True}]


class PretrainingConfig(Config):
    """Config of the ``pretraining`` study; each field cites the document section it follows."""

    seed: int = Field(0, ge=0)
    # Section 2.1 / appendix D: fine-tuning data (2500 train, 2500 validation, 2500 test slices).
    data: DataSpec = Field(default_factory=lambda: DataSpec(kind="mri_lesions", n=7500, size=270))
    # Section 2.2: the within-domain corpus (24 924 slices of lesion-free MRI).
    corpus: DataSpec = Field(
        default_factory=lambda: DataSpec(kind="mri_lesion_free", n=24924, size=270, seed=1))
    # Out-of-domain corpus size when no ImageNet weights are cached (salbench's stand-in).
    natural_n: int = Field(24924, gt=0)
    use_imagenet: bool = True
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(arch="vgg16"))
    corpora: list[Literal["within-domain", "out-of-domain"]] = Field(
        default_factory=lambda: list(CORPORA))
    # Section 2.2: SGD lr 0.02, momentum 0.5, lr x0.9 every 5 epochs, batch 32 (preset "mri").
    pretrain: dict = Field(default_factory=lambda: {"preset": "mri"})
    # Section 2.3: same SGD regime; learning rates vary (table 1 lists 0.004 ... 0.038).
    finetune: dict = Field(default_factory=lambda: {"preset": "mri"})
    degrees: list[str] = Field(default_factory=lambda: list(DEGREES))
    # NOTES.md: whole VGG blocks (default) or the public code's off-by-one slicing.
    slicing: Literal["block", "public-code"] = "block"
    seeds: list[int] = Field(default_factory=lambda: list(range(15)))  # section 3: 15 seeds
    learning_rates: list[float] = Field(default_factory=lambda: [0.02])
    # Per corpus and degree, learning rates replacing ``learning_rates`` (appendix G, table 1
    # lists one learning rate per corpus and degree).
    learning_rates_by_degree: dict[str, dict[str, list[float]]] = Field(default_factory=dict)
    best_k: int = Field(3, ge=1)  # section 3: "the three best-performing models"
    matched_k: int = Field(3, ge=1)  # appendix G, table 1: three models per degree
    matched_target: float = Field(0.9, gt=0, le=1)  # appendix G: "close to 90 %"
    methods: list[MethodSpec] = Field(
        default_factory=lambda: [MethodSpec.parse(m) for m in PAPER_METHODS])
    n_explain: int = Field(2500, gt=0)  # appendix D: up to 2500 test slices
    correct_only: bool = True  # section 4.2: images every selected model classifies correctly
    gallery: int = Field(1, ge=0)  # samples saved per model for figures 3, 7 and 9

    @field_validator("degrees")
    @classmethod
    def _degrees(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d not in DEGREES]
        if bad or not value:
            raise ValueError(f"degrees must be a non-empty list from {list(DEGREES)}, got {value}")
        return value

    @field_validator("pretrain", "finetune")
    @classmethod
    def _training(cls, value: dict) -> dict:
        check_training(value)
        return value

    @field_validator("learning_rates_by_degree")
    @classmethod
    def _by_degree(cls, value: dict) -> dict:
        for corpus, degrees in value.items():
            if corpus not in CORPORA:
                raise ValueError(f"keys must be corpora {list(CORPORA)}, got {corpus!r}")
            bad = [d for d in degrees if d not in DEGREES]
            if bad:
                raise ValueError(f"degrees must be from {list(DEGREES)}, got {bad}")
            if any(not lrs or min(lrs) <= 0 for lrs in degrees.values()):
                raise ValueError("every entry must be a non-empty list of positive rates")
        return value

    @field_validator("corpora", "seeds", "learning_rates", "methods")
    @classmethod
    def _non_empty(cls, value: list) -> list:
        if not value:
            raise ValueError("must hold at least one entry")
        return value


def check_training(value: dict) -> None:
    """A training entry is ``{"preset": NAME, **TrainConfig overrides}``; fail early if not."""
    if "preset" not in value:
        raise ValueError("must name a training preset, e.g. {preset: mri, epochs: 10}")
    overrides = {k: v for k, v in value.items() if k != "preset"}
    try:
        preset(value["preset"], **overrides)
    except Exception as err:  # noqa: BLE001 - reported as this key's validation error
        raise ValueError(str(err).splitlines()[0]) from None


TINY = {
    "data": {"kind": "mri_lesions", "n": 160, "size": 64,
             "params": {"split_fractions": [0.5, 0.25, 0.25], "slices_per_subject": 4}},
    "corpus": {"kind": "mri_lesion_free", "n": 96, "size": 64, "seed": 1,
               "params": {"slices_per_subject": 4}},
    "natural_n": 96,
    "model": {"arch": "vgg16", "width": 0.0625},
    "pretrain": {"preset": "mri", "epochs": 2, "early_stopping": "none", "lr": 0.05},
    "finetune": {"preset": "mri", "epochs": 2, "early_stopping": "none"},
    "seeds": [0],
    "learning_rates": [0.05],
    "best_k": 1,
    "matched_k": 1,
    "matched_target": 0.75,
    "methods": [{**m, "params": {**m["params"], "n_steps": 8}}
                if m["name"] == "integrated_gradients" else m for m in PAPER_METHODS],
    "n_explain": 6,
}

SMALL = {
    "data": {"kind": "mri_lesions", "n": 1500, "size": 128,
             "params": {"split_fractions": [0.34, 0.33, 0.33]}},
    "corpus": {"kind": "mri_lesion_free", "n": 2000, "size": 128, "seed": 1},
    "natural_n": 2000,
    "model": {"arch": "vgg16", "width": 0.25},
    "pretrain": {"preset": "mri", "epochs": 15},
    "finetune": {"preset": "mri", "epochs": 20},
    "seeds": [0, 1, 2, 3, 4],
    "learning_rates": [0.01, 0.02],
    "n_explain": 200,
}
PAPER = {
    "data": {"kind": "mri_lesions", "n": 7500, "size": 270,
             "params": {"split_fractions": [0.34, 0.33, 0.33]}},
    # Appendix G, table 1: one learning rate per corpus and degree (ImageNet row for the
    # out-of-domain corpus, MRI row for the within-domain one); section 3: 15 seeds each.
    "learning_rates_by_degree": {
        "out-of-domain": {"1conv": [0.020], "2conv": [0.008], "3conv": [0.008],
                          "4conv": [0.008], "all": [0.004]},
        "within-domain": {"1conv": [0.038], "2conv": [0.030], "3conv": [0.015],
                          "4conv": [0.030], "all": [0.010]},
    },
}


# ---------------------------------------------------------------- the grid

def finetune_grid(cfg: PretrainingConfig) -> pd.DataFrame:
    """One row per fine-tuned model: ``model_id, corpus, degree, seed, lr``."""
    rows = [{"model_id": f"ft-{corpus}-{degree}-s{seed}-lr{lr:g}", "corpus": corpus,
             "degree": degree, "seed": seed, "lr": lr}
            for corpus in cfg.corpora for degree in cfg.degrees for seed in cfg.seeds
            for lr in cfg.learning_rates_by_degree.get(corpus, {}).get(degree,
                                                                       cfg.learning_rates)]
    return pd.DataFrame(rows, columns=["model_id", "corpus", "degree", "seed", "lr"])


def pretrain_id(corpus: str) -> str:
    return f"pre-{corpus}"


def pretrain_job(config: dict, ctx: JobContext) -> list[dict]:
    """Pre-train VGG-16 on ``config["corpus"]`` and save it with a new 2-class head.

    within-domain: fit on the lesion-free slices of ``config["data"]`` (their anatomical label);
    out-of-domain: :func:`salbench.models.corpora.pretrained_model` (ImageNet weights when cached,
    else the natural-image-like corpus). Rows: the pre-training validation scores.
    """
    from salbench.models.checkpoints import save as save_checkpoint
    from salbench.models.corpora import pretrained_model
    from salbench.models.training import fit
    from salbench.models.zoo import replace_head

    spec = ModelSpec.parse(config["model"])
    train = dict(config["train"])
    train_config = preset(train.pop("preset"), spec.arch, seed=ctx.seed % 2**31,
                          device=ctx.device, **train)
    if config["corpus"] == "within-domain":
        corpus = load_dataset(ctx.run_dir, config["data"])
        model = build_model(spec, corpus)
        result = fit(model, corpus.split("train"), corpus.split("val"), train_config)
        model = replace_head(model.cpu(), config["num_classes"])
        info = {"source": "within-domain", "corpus": corpus.name,
                "pretrain_scores": result.val_scores}
        dataset = corpus.name
    else:
        model, info = pretrained_model(spec.arch, "out-of-domain", config["num_classes"],
                                       in_channels=config["in_channels"],
                                       input_size=config["input_size"], width=spec.width,
                                       n=config["natural_n"], seed=ctx.seed % 2**31,
                                       config=train_config, use_imagenet=config["imagenet"])
        dataset = info.get("corpus", info["source"])
    save_checkpoint(model, checkpoint_path(ctx.run_dir, config["model_id"]),
                    meta={"model_id": config["model_id"], "config": config, **info})
    scores = info.get("pretrain_scores") or {}
    return [{"dataset": dataset, "model_id": config["model_id"], "method": "model",
             "metric": f"pretrain_{name}", "sample_id": "all", "value": float(value),
             "params": {"corpus": config["corpus"]}, "meta": {"source": info["source"]}}
            for name, value in scores.items()]


def random_model_job(config: dict, ctx: JobContext) -> list[dict]:
    """Save an untrained, randomly initialised model (document 000, section 2.6's null model)
    and score it on the test split like a fine-tuned one."""
    from salbench.models.checkpoints import save as save_checkpoint

    dataset = load_dataset(ctx.run_dir, config["data"])
    model = build_model(config["model"], dataset)
    test = dataset.split("test")
    logits, _ = predict(model, test, device=ctx.device)
    scores = classification_scores(logits, test.y)
    save_checkpoint(model.cpu(), checkpoint_path(ctx.run_dir, config["model_id"]),
                    meta={"model_id": config["model_id"], "config": config,
                          "test_scores": scores, "classes": dataset.classes})
    correct = (logits.argmax(1) == test.y).tolist()
    rows = [model_row(config, dataset.name, name, value) for name, value in scores.items()]
    rows += [{"dataset": dataset.name, "model_id": config["model_id"], "method": "model",
              "metric": "correct", "sample_id": sid, "value": float(ok), "params": {},
              "meta": {"true": int(t)}}
             for sid, ok, t in zip(test.meta["sample_id"].astype(str), correct, test.y.tolist())]
    return rows


def imagenet_available(cfg: PretrainingConfig) -> bool:
    """ImageNet weights are used when asked for, the model is full width and torchvision's file
    is in the local cache; part of the job's key, so adding the file later re-runs the job."""
    from salbench.models.zoo import imagenet_weights_path

    return (cfg.use_imagenet and cfg.model.width == 1.0
            and imagenet_weights_path(cfg.model.arch).is_file())


def _jobs_data(cfg: PretrainingConfig) -> list[Job]:
    specs = [cfg.data] + ([cfg.corpus] if "within-domain" in cfg.corpora else [])
    return [Job("salbench.studies.common:data_job", {"data": s.model_dump(), "seed": s.seed},
                NAME, label=f"data {s.kind}") for s in specs]


def _jobs_pretrain(cfg: PretrainingConfig) -> list[Job]:
    jobs = []
    for corpus in cfg.corpora:
        config = {"model_id": pretrain_id(corpus), "corpus": corpus,
                  "model": cfg.model.model_dump(), "train": dict(cfg.pretrain), "seed": cfg.seed,
                  "num_classes": 2, "in_channels": 1, "input_size": cfg.data.size}
        if corpus == "within-domain":
            config["data"] = cfg.corpus.model_dump()
        else:
            config |= {"natural_n": cfg.natural_n, "imagenet": imagenet_available(cfg)}
        jobs.append(Job(f"salbench.studies.{NAME}:pretrain_job", config, NAME,
                        label=f"pretrain {corpus}"))
    jobs.append(Job(f"salbench.studies.{NAME}:random_model_job",
                    {"model_id": RANDOM_MODEL_ID, "data": cfg.data.model_dump(),
                     "model": cfg.model.model_dump(), "seed": cfg.seed}, NAME,
                    label="random model"))
    return jobs


def _jobs_finetune(cfg: PretrainingConfig) -> list[Job]:
    return [Job("salbench.studies.common:train_job",
                {"model_id": r.model_id, "data": cfg.data.model_dump(),
                 "model": cfg.model.model_dump(), "init": pretrain_id(r.corpus),
                 "degree": r.degree, "slicing": cfg.slicing,
                 "train": {**cfg.finetune, "lr": float(r.lr)},
                 "seed": int(r.seed)}, NAME, label=r.model_id)
            for r in finetune_grid(cfg).itertuples()]


# ---------------------------------------------------------------- selection

def model_table(run_dir: Path, cfg: PretrainingConfig) -> pd.DataFrame:
    """The fine-tune grid joined with each model's test accuracy (models without a result are
    left out)."""
    from salbench.results import query

    scores = query(run_dir, "select model_id, value as accuracy from results where "
                            "method = 'model' and metric = 'accuracy' and sample_id = 'all'")
    grid = finetune_grid(cfg)
    return grid.merge(scores.drop_duplicates("model_id"), on="model_id", how="inner")


def selections(table: pd.DataFrame, cfg: PretrainingConfig) -> pd.DataFrame:
    """Per corpus and degree, the ``best_k`` most accurate models (document 000, section 3) and the
    ``matched_k`` closest to ``matched_target`` (appendix G): the table's rows with a column
    ``selection`` ("best" or "matched"); a model in both sets appears twice."""
    parts = []
    for _, group in table.groupby(["corpus", "degree"], sort=False):
        k_best, k_matched = min(cfg.best_k, len(group)), min(cfg.matched_k, len(group))
        parts.append(select_top_k(group, k_best).assign(selection="best"))
        parts.append(accuracy_matched(group, k_matched, cfg.matched_target)
                     .assign(selection="matched"))
    if not parts:
        return table.assign(selection=pd.Series(dtype=str))
    return pd.concat(parts, ignore_index=True)


def correct_intersection(run_dir: Path, model_ids: list[str]) -> set[str]:
    """Test sample ids every model in ``model_ids`` classified correctly."""
    from salbench.results import query

    frame = query(run_dir, "select model_id, sample_id, value from results "
                           "where metric = 'correct' and method = 'model'")
    right = None
    for model_id in model_ids:
        ids = set(frame.loc[(frame.model_id == model_id) & (frame.value == 1), "sample_id"])
        right = ids if right is None else right & ids
    return right or set()


def explain_plan(run_dir: Path, cfg: PretrainingConfig, warn: bool = True
                 ) -> tuple[pd.DataFrame, list[str]]:
    """The selected models and the ``correct_for`` list every explain job filters samples with:
    all selected models (section 4.2), or ``[]`` when ``correct_only`` is off or no test sample
    is classified correctly by all of them (then every test sample is used, and the report says
    so)."""
    chosen = selections(model_table(run_dir, cfg), cfg)
    ids = sorted(set(chosen.model_id))
    if not cfg.correct_only or not ids:
        return chosen, []
    if not correct_intersection(run_dir, ids):
        if warn:
            log.warning("no test sample is classified correctly by all %d selected models; "
                        "explaining the first n_explain test samples instead", len(ids))
        return chosen, []
    return chosen, ids


def _jobs_explain(cfg: PretrainingConfig, run_dir: Path) -> list[Job]:
    chosen, correct_for = explain_plan(run_dir, cfg)
    methods = [m.model_dump() for m in cfg.methods]
    common = {"study": NAME, "data": cfg.data.model_dump(),
              "metrics": [{"name": METRIC, "params": {"reduce": "sum"}}],
              "n_samples": cfg.n_explain, "correct_for": correct_for, "target": "true",
              "gallery": cfg.gallery, "seed": cfg.seed}
    jobs = [Job("salbench.studies.common:explain_job",
                {**common, "model_id": model_id, "methods": methods}, NAME,
                label=f"explain {model_id}")
            for model_id in sorted(set(chosen.model_id))]
    baselines = methods + [MethodSpec.parse(b).model_dump() for b in EDGE_BASELINES]
    jobs.append(Job("salbench.studies.common:explain_job",
                    {**common, "model_id": RANDOM_MODEL_ID, "methods": baselines}, NAME,
                    label="explain null baselines"))
    return jobs


def stages(cfg: PretrainingConfig) -> list[Stage]:
    return [Stage("data", _jobs_data(cfg)),
            Stage("pretrain", _jobs_pretrain(cfg)),
            Stage("finetune", _jobs_finetune(cfg)),
            Stage("explain", lambda run_dir: _jobs_explain(cfg, Path(run_dir)))]


# ---------------------------------------------------------------- report

def _load_config(run_dir: Path) -> PretrainingConfig:
    return PretrainingConfig.from_yaml(Path(run_dir) / "config.yaml")


def explanation_scores(run_dir: Path, cfg: PretrainingConfig | None = None) -> pd.DataFrame:
    """Top-n precision rows of every explained model, labelled with corpus, degree, seed, lr and
    test accuracy; null baselines carry ``corpus`` = "random model", "sobel" or "laplace"."""
    from salbench.results import query

    cfg = cfg or _load_config(run_dir)
    rows = query(run_dir, f"select model_id, method, sample_id, value from results "
                          f"where metric = '{METRIC}'")
    table = model_table(run_dir, cfg)
    fine = rows.merge(table, on="model_id", how="inner")
    base = rows[rows.model_id == RANDOM_MODEL_ID].copy()
    edge = base[base.method.isin([b["name"] for b in EDGE_BASELINES])]
    random = base[~base.method.isin(edge.method.unique())].assign(corpus="random model")
    # Edge filters do not depend on the method: the same values serve every method's panel.
    edge = pd.concat([edge.assign(corpus=edge.method, method=m.key) for m in cfg.methods])
    return pd.concat([fine, random, edge], ignore_index=True)


def _box_figures(scores: pd.DataFrame, chosen: pd.DataFrame, cfg: PretrainingConfig,
                 selection: str, fig_name: str):
    """One box plot per method: precision per degree and corpus, null baselines repeated at every
    degree, mean test accuracy of the selected models as lines (document 000, figs. 4 and 10)."""
    from salbench.report import Figure, figures

    ids = set(chosen.loc[chosen.selection == selection, "model_id"])
    accuracy = (chosen[chosen.selection == selection].groupby(["corpus", "degree"],
                                                              as_index=False)["accuracy"].mean())
    hue_order = [c for c in cfg.corpora] + ["random model", "sobel", "laplace"]
    out = []
    for method in cfg.methods:
        part = scores[scores.method == method.key]
        fine = part[part.model_id.isin(ids)]
        null = part[part.corpus.isin(hue_order[len(cfg.corpora):])]
        null = pd.concat([null.assign(degree=d) for d in cfg.degrees])
        frame = pd.concat([fine, null], ignore_index=True)
        if frame.empty:
            continue
        fig = figures.box_plot(frame, "degree", "value", hue="corpus", order=cfg.degrees,
                               hue_order=[h for h in hue_order if h in set(frame.corpus)],
                               line=accuracy.rename(columns={"accuracy": "value"}),
                               line_label="test accuracy", ylabel="top-n precision",
                               title=method.key)
        out.append(Figure(fig, f"{method.key}: explanation performance (top-n precision) of the "
                               f"{selection} models per fine-tuning degree; dashed lines: mean "
                               "test accuracy.", name=f"{fig_name}-{method.key}"))
    return out


def _gallery_figure(run_dir: Path, chosen: pd.DataFrame, cfg: PretrainingConfig,
                    selection: str):
    """Maps of one test sample: methods (rows) × corpus and degree (columns), the most accurate
    model of each selection group (document 000, figs. 3 and 9)."""
    from salbench.report import figures, load_gallery_item
    from salbench.report.gallery import gallery_files

    items = {}
    for path in gallery_files(run_dir).get(NAME, []):
        item = load_gallery_item(path)
        items.setdefault(item.model_id, []).append(item)
    part = chosen[chosen.selection == selection].sort_values("accuracy", ascending=False)
    first = part.drop_duplicates(["corpus", "degree"]).set_index(["corpus", "degree"])
    columns = [(c, d) for c in cfg.corpora for d in cfg.degrees if (c, d) in first.index]
    picked = [items.get(first.loc[col, "model_id"], [None])[0] for col in columns]
    available = [i for i in picked if i is not None]
    if not available:
        return None
    sample = min(i.sample_id for i in available)
    picked = [next((i for i in items.get(first.loc[col, "model_id"], [])
                    if i.sample_id == sample), None) for col in columns]
    ref = next(i for i in picked if i is not None)
    rows = [[None if i is None else _display(i.maps.get(m.key)) for i in picked]
            for m in cfg.methods]
    labels = [f"{c}\n{d}" for c, d in columns]
    fig = figures.map_grid(rows, row_labels=[m.key for m in cfg.methods],
                           col_labels=labels,
                           images=[ref.image] + [None] * (len(rows) - 1),
                           masks=[ref.mask] * len(rows),
                           title=f"sample {sample} ({selection} models)")
    return fig


def _display(a):
    """Document 000, section 2.4's display: |map| / max |map|, then the log transform (b = 0.5)."""
    import torch

    from salbench.explain import log_display

    if a is None:
        return None
    s = torch.as_tensor(a).abs()
    return log_display(s / s.max().clamp_min(1e-30))


def _correlations(scores: pd.DataFrame, chosen: pd.DataFrame, cfg: PretrainingConfig
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pearson r between each best model's mean top-n precision and its test accuracy, per corpus
    and method (document 000, appendix G, fig. 8), and the per-model points."""
    best = chosen[chosen.selection == "best"].drop_duplicates("model_id")
    per_model = (scores[scores.model_id.isin(best.model_id)]
                 .groupby(["corpus", "method", "model_id"], as_index=False)["value"].mean()
                 .merge(best[["model_id", "accuracy", "degree"]], on="model_id"))
    matrix = pd.DataFrame(index=list(cfg.corpora), columns=[m.key for m in cfg.methods],
                          dtype=float)
    for (corpus, method), part in per_model.groupby(["corpus", "method"]):
        if len(part) >= 3 and part.value.nunique() > 1 and part.accuracy.nunique() > 1:
            matrix.loc[corpus, method] = float(np.corrcoef(part.value, part.accuracy)[0, 1])
    return matrix, per_model


def _matched_table(chosen: pd.DataFrame, cfg: PretrainingConfig) -> pd.DataFrame:
    """Appendix G, table 1: per corpus and degree the matched models' learning rates, test
    accuracies and their mean."""
    matched = chosen[chosen.selection == "matched"]
    rows = []
    for corpus in cfg.corpora:
        for degree in cfg.degrees:
            part = matched[(matched.corpus == corpus) & (matched.degree == degree)]
            if part.empty:
                continue
            rows.append({"corpus": corpus, "degree": degree,
                         "learning rates": ", ".join(f"{v:g}" for v in part.lr),
                         "test accuracies": ", ".join(f"{v:.3f}" for v in part.accuracy),
                         "mean accuracy": float(part.accuracy.mean()), "models": len(part)})
    return pd.DataFrame(rows)


def pretraining_sources(run_dir: Path, cfg: PretrainingConfig) -> dict[str, str]:
    """What each corpus's starting point was trained on, from its checkpoint's metadata."""
    from salbench.models.checkpoints import read_metadata

    out = {}
    for corpus in cfg.corpora:
        path = checkpoint_path(run_dir, pretrain_id(corpus))
        if path.is_file():
            meta = read_metadata(path)["meta"]
            out[corpus] = ("ImageNet weights" if meta.get("source") == "imagenet"
                           else f"trained on {meta.get('corpus', meta.get('source'))}")
    return out


def report_section(run_dir: Path):
    """Figures 3, 4, 8, 10 and table 1 of document 000 from the run's results."""
    from salbench.report import Figure, Section, Table, figures

    run_dir = Path(run_dir)
    cfg = _load_config(run_dir)
    chosen, correct_for = explain_plan(run_dir, cfg, warn=False)
    scores = explanation_scores(run_dir, cfg)
    n_samples = scores[scores.model_id == RANDOM_MODEL_ID].sample_id.nunique()
    text = (
        "Document 000: VGG-16 pre-trained within-domain (lesion-free MRI slices) or "
        "out-of-domain (ImageNet, or salbench's natural-image-like corpus), fine-tuned block-wise "
        "(1conv … all, from the output side) on regular-vs-irregular MRI lesions, explained with "
        "eight methods (absolute maps, zero baselines) and scored by top-n precision against the "
        "lesion masks.\n\n"
        f"{len(model_table(run_dir, cfg))} fine-tuned models; per corpus and degree the "
        f"{cfg.best_k} most accurate ('best') and the {cfg.matched_k} closest to "
        f"{cfg.matched_target:.0%} test accuracy ('matched') were explained on {n_samples} test "
        "images " + ("that every selected model classifies correctly." if correct_for else
                     "(not restricted to correctly classified images: "
                     + ("correct_only is off)." if not cfg.correct_only else
                        "no test image was classified correctly by every selected model).")))
    sources = pretraining_sources(run_dir, cfg)
    if sources:
        text += "\n\nStarting points: " + "; ".join(f"{c}: {s}" for c, s in sources.items()) + "."
    section_figures, tables = [], []
    for selection, fig_name, number in (("best", "pretraining-fig3", "3"),
                                        ("matched", "pretraining-fig9", "9")):
        grid = _gallery_figure(run_dir, chosen, cfg, selection)
        if grid is not None:
            section_figures.append(Figure(grid, f"Maps of methods × fine-tuning degree × corpus, "
                                                f"{selection} models (document 000, fig. "
                                                f"{number}); |map| / max, log display transform "
                                                "(section 2.4); green: lesion contours.",
                                          name=fig_name, embed="png"))
    section_figures += _box_figures(scores, chosen, cfg, "best", "pretraining-fig4")
    matrix, per_model = _correlations(scores, chosen, cfg)
    section_figures.append(Figure(
        figures.heatmap(matrix, title="Pearson r: explanation vs classification performance",
                        colorbar_label="r"),
        "Pearson correlation between each best model's mean top-n precision and its test "
        "accuracy, per corpus and method (document 000, fig. 8; empty: fewer than 3 models or "
        "no variation).", name="pretraining-fig8"))
    if not per_model.empty:
        section_figures.append(Figure(
            figures.scatter_plot(per_model.assign(group=per_model.corpus), "accuracy", "value",
                                 hue="group", correlation=True, ylabel="mean top-n precision",
                                 xlabel="test accuracy"),
            "Mean top-n precision per model and method against test accuracy (the points "
            "behind fig. 8).", name="pretraining-fig8-points"))
    tables.append(Table(matrix, "Pearson r of explanation and classification performance "
                                "(document 000, fig. 8).", name="pretraining-fig8", digits=3))
    tables.append(Table(_matched_table(chosen, cfg), "Accuracy-matched models: learning rates and "
                        "test accuracies (document 000, appendix G, table 1).",
                        name="pretraining-table1", digits=3))
    section_figures += _box_figures(scores, chosen, cfg, "matched", "pretraining-fig10")
    summary = (scores.groupby(["corpus", "method"])["value"].agg(["mean", "median", "count"])
               .reset_index() if not scores.empty else pd.DataFrame())
    tables.append(Table(summary, "Top-n precision per corpus (or null baseline) and method, all "
                        "explained models pooled.", name="pretraining-summary", digits=3))
    return Section("Pre-training and explanation performance (document 000)", text,
                   figures=section_figures, tables=tables)


STUDY = register(Study(
    name=NAME,
    summary="document 000: within- vs out-of-domain pre-training, fine-tuning degrees and "
            "top-n precision of eight saliency methods on MRI lesions",
    config_class=PretrainingConfig,
    presets={"tiny": TINY, "small": SMALL, "paper": PAPER},
    stages=stages,
    report_section=report_section,
))
