"""The ``pretraining`` study's job grid (document 000, sections 2.2-3, 4.2, appendices D, F, G).

1. **data**: the MRI-lesion dataset (regular vs irregular lesions, section 2.1) and the
   within-domain corpus (lesion-free slices with an anatomical label).
2. **pretrain**: VGG-16 pre-trained on each corpus, its class-score layer then replaced by a new
   2-class layer (section 2.3), and the untrained *random model* null baseline (section 2.6).
3. **finetune**: every corpus × degree (``1conv`` … ``all``, from the output side, NOTES.md) ×
   seed × learning rate (``salbench.studies.jobs.train_job``).
4. **explain**: per corpus and degree the ``best_k`` most accurate models (section 3) and the
   ``matched_k`` closest to ``matched_target`` accuracy (appendix G), each in one job: every
   method on the test images *every* selected model classifies correctly (section 4.2), scored
   with top-n precision (section 2.5); one job explains the same images on the random model with
   every method, plus Sobel, Laplace and a uniform random map (the chance level).
5. **gallery**: the maps of the first ``gallery`` of those images per explained model.

Model ids: ``pre-<corpus>``, ``random-init`` and ``ft-<corpus>-<degree>-s<seed>-lr<lr>``; nothing
reads them back: every row carries the model's factors as columns (``corpus``, ``degree``,
``seed``, ``lr``; on explain rows also ``best`` and ``matched``, whether the model is in that
selection; on the null baselines' rows ``null_baseline``: "random model", "sobel", "laplace",
"random map").
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from salbench.metrics import get_metric
from salbench.models import ModelSpec, fit, preset, pretrained_model, replace_head
from salbench.models.checkpoints import save as save_checkpoint
from salbench.models.selection import accuracy_matched, select_top_k
from salbench.models.zoo import imagenet_weights_path
from salbench.results import read_results
from salbench.runtime import Job, JobContext
from salbench.studies.base import Stage
from salbench.studies.jobs import (
    build_model,
    checkpoint_path,
    correctly_classified,
    load_dataset,
    model_rows,
)
from salbench.studies.pretraining.analysis import model_accuracy
from salbench.studies.pretraining.config import (
    EDGE_FILTERS,
    PRECISION,
    RANDOM_INIT,
    RANDOM_MAP,
    PretrainingConfig,
)
from salbench.studies.specs import MethodSpec

log = logging.getLogger("salbench.studies.pretraining")

NAME = "pretraining"
RANDOM_MODEL_ID = "random-init"
RANDOM_MODEL = "random model"
"""``null_baseline`` of the random model's maps (document 000, section 2.6)."""
JOBS = "salbench.studies.jobs:{}"
OWN = "salbench.studies.pretraining.grid:{}"


def pretrain_id(corpus: str) -> str:
    return f"pre-{corpus}"


def finetune_grid(cfg: PretrainingConfig) -> pd.DataFrame:
    """One row per fine-tuned model: ``model_id, corpus, degree, seed, lr``."""
    rows = [{"model_id": f"ft-{corpus}-{degree}-s{seed}-lr{lr:g}", "corpus": corpus,
             "degree": degree, "seed": seed, "lr": lr}
            for corpus in cfg.corpora for degree in cfg.degrees for seed in cfg.seeds
            for lr in cfg.rates(corpus, degree)]
    return pd.DataFrame(rows, columns=["model_id", "corpus", "degree", "seed", "lr"])


# ---------------------------------------------------------------- pre-training jobs

def validation_rows(scores: dict[str, float], *, dataset: str, model_id: str, n: int,
                    factors: dict) -> list[dict]:
    """``summaries`` rows of the ``classification`` scores a pre-training fit measured on its
    corpus's validation split (``n`` samples; ``meta`` says the split)."""
    metric = get_metric("classification")
    return [{"dataset": dataset, "model_id": model_id, "method": "", "metric": metric.name,
             "output": output, "value": float(value), "direction": metric.direction(output),
             "n": int(n), "metric_params": metric.resolve({}), "meta": {"split": "val"},
             **factors}
            for output, value in scores.items()]


def pretrain_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """Pre-train VGG-16 on ``config["corpus"]`` and save it with a new 2-class head.

    within-domain: fit on the lesion-free slices of ``config["data"]`` (their anatomical label);
    out-of-domain: :func:`salbench.models.pretrained_model` (ImageNet weights when cached, else
    the natural-image-like corpus). Rows: the pre-training validation scores (none for ImageNet).
    """
    spec = ModelSpec.parse(config["model"])
    train = dict(config["train"])
    train_config = preset(train.pop("preset"), spec.arch, seed=ctx.seed % 2**31,
                          device=ctx.device, **train)
    factors = {"corpus": config["corpus"]}
    if config["corpus"] == "within-domain":
        corpus = load_dataset(ctx.run_dir, config["data"])
        model = build_model(spec, corpus)
        result = fit(model, corpus.split("train"), corpus.split("val"), train_config)
        model = replace_head(model.cpu(), config["num_classes"])
        info = {"source": "within-domain", "corpus": corpus.name,
                "pretrain_scores": result.val_scores, "pretrain_val_n": len(corpus.split("val"))}
    else:
        model, info = pretrained_model(spec.arch, "out-of-domain", config["num_classes"],
                                       in_channels=config["in_channels"],
                                       input_size=config["input_size"], width=spec.width,
                                       n=config["natural_n"], seed=ctx.seed % 2**31,
                                       config=train_config, use_imagenet=config["imagenet"])
    save_checkpoint(model, checkpoint_path(ctx.run_dir, config["model_id"]),
                    meta={"model_id": config["model_id"], "config": config, **info})
    scores = info.get("pretrain_scores") or {}
    return {"summaries": validation_rows(scores, dataset=info.get("corpus", info["source"]),
                                         model_id=config["model_id"],
                                         n=info.get("pretrain_val_n", 0), factors=factors)}


def random_model_job(config: dict, ctx: JobContext) -> dict[str, list[dict]]:
    """Save an untrained, randomly initialised model (document 000, section 2.6's null model)
    and score it on the test split like a fine-tuned one (``summaries`` and ``predictions``)."""
    dataset = load_dataset(ctx.run_dir, config["data"])
    model = build_model(config["model"], dataset)
    rows = model_rows(model, dataset, model_id=config["model_id"], device=ctx.device,
                      factors=config["factors"])
    scores = {r["output"]: r["value"] for r in rows["summaries"]}
    save_checkpoint(model.cpu(), checkpoint_path(ctx.run_dir, config["model_id"]),
                    meta={"model_id": config["model_id"], "config": config,
                          "test_scores": scores, "classes": dataset.classes})
    return rows


def imagenet_available(cfg: PretrainingConfig) -> bool:
    """ImageNet weights are used when asked for, the model is full width and torchvision's file
    is in the local cache; part of the job's key, so adding the file later re-runs the job."""
    return (cfg.use_imagenet and cfg.model.width == 1.0
            and imagenet_weights_path(cfg.model.arch).is_file())


# ---------------------------------------------------------------- selection

def selections(table: pd.DataFrame, cfg: PretrainingConfig) -> pd.DataFrame:
    """Per corpus and degree, the ``best_k`` most accurate models (document 000, section 3) and the
    ``matched_k`` closest to ``matched_target`` (appendix G): the rows of
    :func:`~salbench.studies.pretraining.analysis.model_accuracy` with a column ``selection``
    ("best" or "matched"); a model in both sets appears twice."""
    parts = []
    for _, group in table.groupby(["corpus", "degree"], sort=False):
        k_best, k_matched = min(cfg.best_k, len(group)), min(cfg.matched_k, len(group))
        parts.append(select_top_k(group, k_best).assign(selection="best"))
        parts.append(accuracy_matched(group, k_matched, cfg.matched_target)
                     .assign(selection="matched"))
    if not parts:
        return table.assign(selection=pd.Series(dtype=str))
    return pd.concat(parts, ignore_index=True)


def explain_plan(run_dir: Path, cfg: PretrainingConfig, warn: bool = True
                 ) -> tuple[pd.DataFrame, list[str]]:
    """The selected models (from the run's ``summaries``) and the ``correct_for`` list every
    explain job filters samples with: all selected models (section 4.2), or ``[]`` when
    ``correct_only`` is off or no test sample is classified correctly by all of them (then every
    test sample is used, and the report says so)."""
    summaries = read_results(run_dir, "summaries")
    grid = set(finetune_grid(cfg).model_id)
    table = model_accuracy(summaries[summaries.study == NAME])
    chosen = selections(table[table.model_id.isin(grid)], cfg)
    ids = sorted(set(chosen.model_id))
    if not cfg.correct_only or not ids:
        return chosen, []
    if not correctly_classified(run_dir, ids):
        if warn:
            log.warning("no test sample is classified correctly by all %d selected models; "
                        "explaining the first n_explain test samples instead", len(ids))
        return chosen, []
    return chosen, ids


def explained_models(chosen: pd.DataFrame) -> dict[str, dict]:
    """Model id → its factors (``corpus, degree, seed, lr``) and ``best``/``matched``: whether it
    is in that selection."""
    out = {}
    for model_id, part in chosen.groupby("model_id", sort=True):
        first = part.iloc[0]
        out[model_id] = {"corpus": first.corpus, "degree": first.degree, "seed": int(first.seed),
                         "lr": float(first.lr), "best": bool((part.selection == "best").any()),
                         "matched": bool((part.selection == "matched").any())}
    return out


def null_baseline_methods(cfg: PretrainingConfig) -> list[dict]:
    """The random model's methods (every method, ``null_baseline`` "random model"), the edge
    filters (section 2.6) and a uniform random map (the chance level), each with its
    ``null_baseline`` factor."""
    methods = [m.model_copy(update={"factors": {"null_baseline": RANDOM_MODEL}}).model_dump()
               for m in cfg.methods]
    edges = [MethodSpec(name=name, absolute=True, factors={"null_baseline": name}).model_dump()
             for name in EDGE_FILTERS]
    chance = MethodSpec(name="random", params={"seed": cfg.seed},
                        factors={"null_baseline": RANDOM_MAP}).model_dump()
    return methods + edges + [chance]


# ---------------------------------------------------------------- stages

def jobs_data(cfg: PretrainingConfig) -> list[Job]:
    specs = [cfg.data] + ([cfg.corpus] if "within-domain" in cfg.corpora else [])
    return [Job(JOBS.format("data_job"), {"data": s.model_dump()}, NAME,
                label=f"data {s.kind}") for s in specs]


def jobs_pretrain(cfg: PretrainingConfig) -> list[Job]:
    jobs = []
    for corpus in cfg.corpora:
        config = {"model_id": pretrain_id(corpus), "corpus": corpus,
                  "model": cfg.model.model_dump(), "train": dict(cfg.pretrain), "seed": cfg.seed,
                  "num_classes": 2, "in_channels": 1, "input_size": cfg.data.size}
        if corpus == "within-domain":
            config["data"] = cfg.corpus.model_dump()
        else:
            config |= {"natural_n": cfg.natural_n, "imagenet": imagenet_available(cfg)}
        jobs.append(Job(OWN.format("pretrain_job"), config, NAME, label=f"pretrain {corpus}"))
    jobs.append(Job(OWN.format("random_model_job"),
                    {"model_id": RANDOM_MODEL_ID, "data": cfg.data.model_dump(),
                     "model": cfg.model.model_dump(), "seed": cfg.seed,
                     "factors": {"corpus": RANDOM_INIT}}, NAME, label="random model"))
    return jobs


def jobs_finetune(cfg: PretrainingConfig) -> list[Job]:
    return [Job(JOBS.format("train_job"),
                {"model_id": r.model_id, "data": cfg.data.model_dump(),
                 "model": cfg.model.model_dump(), "init": pretrain_id(r.corpus),
                 "degree": r.degree, "slicing": cfg.slicing,
                 "train": {**cfg.finetune, "lr": float(r.lr)}, "seed": int(r.seed),
                 "factors": {"corpus": r.corpus, "degree": r.degree, "seed": int(r.seed),
                             "lr": float(r.lr)}}, NAME, label=r.model_id)
            for r in finetune_grid(cfg).itertuples()]


def explained(cfg: PretrainingConfig, run_dir: Path, warn: bool
              ) -> tuple[list[tuple[str, list[dict], dict]], list[str]]:
    """``(model_id, methods, factors)`` of every explained model, the random model last, and the
    ``correct_for`` list of the explain plan."""
    chosen, correct_for = explain_plan(run_dir, cfg, warn=warn)
    methods = [m.model_dump() for m in cfg.methods]
    models = [(model_id, methods, factors)
              for model_id, factors in explained_models(chosen).items()]
    models.append((RANDOM_MODEL_ID, null_baseline_methods(cfg), {"corpus": RANDOM_INIT}))
    return models, correct_for


def jobs_explain(cfg: PretrainingConfig, run_dir: Path) -> list[Job]:
    models, correct_for = explained(cfg, run_dir, warn=True)
    return [Job(JOBS.format("explain_job"),
                {"data": cfg.data.model_dump(), "seed": cfg.seed, "model_id": model_id,
                 "methods": methods, "metrics": [PRECISION.model_dump()],
                 "n_samples": cfg.n_explain, "correct_for": correct_for, "target": "true",
                 "factors": factors}, NAME, label=f"explain {model_id}")
            for model_id, methods, factors in models]


def jobs_gallery(cfg: PretrainingConfig, run_dir: Path) -> list[Job]:
    if not cfg.gallery:
        return []
    models, correct_for = explained(cfg, run_dir, warn=False)
    return [Job(JOBS.format("gallery_job"),
                {"study": NAME, "data": cfg.data.model_dump(), "model_id": model_id,
                 "methods": methods, "n": cfg.gallery, "correct_for": correct_for,
                 "target": "true"}, NAME, label=f"gallery {model_id}")
            for model_id, methods, _ in models]


def stages(cfg: PretrainingConfig) -> list[Stage]:
    return [Stage("data", jobs_data(cfg)),
            Stage("pretrain", jobs_pretrain(cfg)),
            Stage("finetune", jobs_finetune(cfg)),
            Stage("explain", lambda run_dir: jobs_explain(cfg, Path(run_dir))),
            Stage("gallery", lambda run_dir: jobs_gallery(cfg, Path(run_dir)))]
