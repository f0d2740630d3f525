"""The ``pretraining`` study's findings: document 000's claims tested on the run's result tables.

:func:`claims` is a pure function of the frames of ``read_results(run, table)`` for ``results``,
``summaries`` and ``predictions``; :func:`findings` reads them from a run folder. Every value is
computed from those rows; the verdict comes from its 95 % bootstrap interval and a decision
bound (``salbench.results.findings``).

Definitions (document 000):

- *precision*: top-n precision of a map (section 2.5), on the test images every explained model
  classifies correctly (section 4.2; the same images for every model and null baseline);
- a *cell*: one corpus × fine-tuning degree; its *best* models are the ``best_k`` most accurate
  of its seeds × learning rates (section 3), its *matched* models the ``matched_k`` closest to
  ``matched_target`` test accuracy (appendix G);
- a *cell mean*: per image and method, the mean precision over the cell's selected models;
- the *corpus effect*: within-domain minus out-of-domain cell mean, per image and method.

Units of the bootstrap: the explained images for claims on maps (resampled jointly across models
and methods, so paired differences stay paired), the test images of ``predictions`` for claims
on accuracy, the models for fig. 8's correlation.

Gates (issue 12): a finding on maps needs every model it pools at ``accuracy_gate`` test
accuracy or above, else it is ``not testable here`` and its note lists the models that miss. The
findings on maps pool the degrees of ``finding_degrees`` (default 2conv … all: the degrees the
document itself reports above 90 %, section 4); 1conv enters only the findings that name it
(its corpus effect, gated, and its accuracy, which is the gate's subject and is not gated).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from salbench.results import read_results
from salbench.results.findings import (
    Finding,
    Gate,
    finding,
    gate,
    not_testable,
    rng_for,
    statistic_interval,
)
from salbench.studies.pretraining import analysis
from salbench.studies.pretraining.config import RANDOM_MAP, PretrainingConfig
from salbench.studies.pretraining.grid import NAME, RANDOM_MODEL

WITHIN, OUT = "within-domain", "out-of-domain"
LOW_DEGREES = ("1conv", "2conv")  # sections 4.2 and 5: "lower degrees of fine-tuning"
# Appendix F: the methods that still highlight lesions on the random model, and those that do not.
RANDOM_HIGHLIGHTING = ("integrated_gradients", "deeplift", "gradient_shap", "input_x_gradient",
                       "guided_backprop", "lrp")
RANDOM_HOMOGENEOUS = ("saliency", "deconvolution")

Statistic = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Evidence:
    """The run's rows, prepared once: ``scores`` (:func:`analysis.precision_scores`),
    ``accuracy`` (:func:`analysis.model_accuracy`), the ``summaries`` and ``predictions`` frames,
    the config and the scale."""

    scores: pd.DataFrame
    accuracy: pd.DataFrame
    summaries: pd.DataFrame
    predictions: pd.DataFrame
    config: PretrainingConfig
    scale: str

    def fine(self, selection: str, degrees: Sequence[str]) -> pd.DataFrame:
        """Precision rows of the ``selection``'s fine-tuned models at ``degrees``."""
        s = self.scores
        return s[s.null_baseline.isna() & s[selection] & s.degree.isin(list(degrees))]

    def null(self, group: str) -> pd.DataFrame:
        """Precision rows of one null baseline (``random model``, ``sobel``, ``laplace``, …)."""
        return self.scores[self.scores.null_baseline == group]

    def cells(self, selection: str, degrees: Sequence[str]) -> pd.DataFrame:
        """Cell means: index ``sample_id``, columns ``(corpus, degree, method)``."""
        part = self.fine(selection, degrees)
        if part.empty:
            return pd.DataFrame()
        return part.pivot_table(index="sample_id", columns=["corpus", "degree", "method"],
                                values="value", aggfunc="mean")

    @property
    def substitutes(self) -> str:
        """What replaces the document's setting in this run, with the pre-training validation
        accuracies (``summaries`` rows of the ``pre-*`` models)."""
        cfg = self.config
        rows = self.summaries
        if "output" in rows:
            rows = rows[(rows.output == "accuracy") & rows.model_id.str.startswith("pre-")]
        pre = dict(zip(rows.get("corpus", []), rows.get("value", [])))
        out = (f"salbench's natural-image-like corpus (pre-training validation accuracy "
               f"{pre[OUT]:.2f}, 6 classes)" if OUT in pre else
               "ImageNet weights or salbench's natural-image-like corpus (no score recorded)")
        within = (f" (validation accuracy {pre[WITHIN]:.2f})" if WITHIN in pre else "")
        return (f"substitutes: {cfg.model.arch} width {cfg.model.width:g} on "
                f"{cfg.data.size} px images for the document's VGG-16 on 270 px slices; "
                f"out-of-domain = {out}; within-domain = lesion-free slices labelled by slice "
                f"position{within} for HCP sex")

    def gate(self, model_ids: Sequence[str]) -> Gate:
        return gate(self.summaries, self.config.accuracy_gate, models=sorted(set(model_ids)))

    def gated(self, part: pd.DataFrame) -> tuple[Gate, list[str]]:
        models = sorted(set(part.model_id))
        return self.gate(models), models

    def make(self, claim: str, section: str, document: str, interval, *, note: str,
             bound: float = 0.0, side: str = "above", gate_: Gate | None = None,
             models: Sequence[str] | None = None) -> Finding:
        return finding(NAME, claim, section, document, interval, scale=self.scale, bound=bound,
                       side=side, note=note, gate_=gate_, models=models)

    def missing(self, claim: str, section: str, document: str, reason: str) -> Finding:
        return not_testable(NAME, claim, section, document, reason, scale=self.scale)


def matrix_interval(frame: pd.DataFrame, statistic: Statistic, key: str, seed: int):
    """``statistic`` of the matrix ``frame.to_numpy()`` (rows with a missing value dropped) with
    its percentile-bootstrap interval over rows: :func:`statistic_interval` resamples the row
    numbers, and each draw indexes the matrix once."""
    x = frame.to_numpy(np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    rows = np.arange(len(x), dtype=np.float64)
    return statistic_interval(lambda idx: statistic(x[idx.astype(np.intp)]), rows,
                              rng=rng_for(NAME, key, seed=seed))


def positions(frame: pd.DataFrame, **match) -> list[int]:
    """Column positions of ``frame`` whose MultiIndex levels equal ``match``."""
    keep = np.ones(frame.shape[1], dtype=bool)
    for level, value in match.items():
        values = frame.columns.get_level_values(level)
        keep &= np.isin(values, list(value) if isinstance(value, (list, tuple)) else [value])
    return list(np.flatnonzero(keep))


def shared_methods(cells: pd.DataFrame, degrees: Sequence[str]) -> list[str]:
    """Methods with a cell mean for both corpora at every degree of ``degrees``."""
    have = set(zip(*(cells.columns.get_level_values(k) for k in ("corpus", "degree", "method"))))
    methods = sorted(set(cells.columns.get_level_values("method")))
    return [m for m in methods
            if all((c, d, m) in have for c in (WITHIN, OUT) for d in degrees)]


def effect_pairs(cells: pd.DataFrame, degrees: Sequence[str], methods: Sequence[str]
                 ) -> dict[str, list[tuple[int, int]]]:
    """Per method, the (within, out) column positions of each degree."""
    return {m: [(positions(cells, corpus=WITHIN, degree=d, method=m)[0],
                 positions(cells, corpus=OUT, degree=d, method=m)[0]) for d in degrees]
            for m in methods}


def pearson_columns(columns: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of every column of ``columns [n, k]`` with ``y [n]`` (NaN where either is
    constant): :func:`salbench.results.findings.pearson`, vectorised over columns."""
    a = columns - columns.mean(0)
    b = y - y.mean()
    scale = np.sqrt((a ** 2).sum(0) * (b ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, a.T @ b / scale, np.nan)


def pair_index(pairs: dict[str, list[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray]:
    """The within and out column positions of every (method, degree) pair, as two arrays."""
    flat = [pair for p in pairs.values() for pair in p]
    return np.array([w for w, _ in flat]), np.array([o for _, o in flat])


def per_method(values: dict[str, float]) -> str:
    return ", ".join(f"{m} {v:+.3f}" for m, v in values.items())


# ---------------------------------------------------------------- fig. 4: methods differ

def methods_differ(ev: Evidence) -> Finding:
    claim = ("Popular XAI methods applied to the same underlying model differ vastly in "
             "performance, even when considering only correctly classified examples.")
    section, document = "abstract; 4.2, fig. 4", "vast differences between methods (no number)"
    degrees = ev.config.finding_degrees
    part = ev.fine("best", degrees)
    if part.method.nunique() < 2:
        return ev.missing(claim, section, document, "fewer than two methods explained")
    wide = part.pivot_table(index="sample_id", columns=["model_id", "method"], values="value")
    groups = [positions(wide, model_id=m) for m in sorted(set(part.model_id))]
    if len({len(g) for g in groups}) != 1:
        return ev.missing(claim, section, document, "the best models were explained with "
                                                    "different methods")
    index = np.array(groups)  # [models, methods]

    def spread(x: np.ndarray) -> float:
        return float(np.ptp(x[:, index].mean(0), axis=1).mean())

    value = matrix_interval(wide, spread, "methods-differ", ev.config.seed)
    means = part.groupby("method").value.mean().sort_values()
    gate_, models = ev.gated(part)
    note = (f"measured: per best model at {', '.join(degrees)}, the best minus the worst method's "
            f"mean top-n precision on the same images, averaged over {len(groups)} models; "
            f"decision bound {ev.config.vast_spread:g} (salbench's reading of 'vastly'); "
            f"pooled means: {means.iloc[0]:.3f} ({means.index[0]}) … {means.iloc[-1]:.3f} "
            f"({means.index[-1]}); {ev.substitutes}")
    return ev.make(claim, section, document, value, bound=ev.config.vast_spread, note=note,
                   gate_=gate_, models=models)


# ---------------------------------------------------------------- 4.2 and 5: corpus effect

def corpus_effect_at(ev: Evidence, degree: str) -> Finding:
    claim = ("ImageNet pre-training leads to worse explanations across all XAI methods for lower "
             f"degrees of fine-tuning (1conv and 2conv): here at {degree}.")
    section, document = "4.2; 5, fig. 4", "within-domain > out-of-domain for every method"
    cells = ev.cells("best", [degree])
    methods = shared_methods(cells, [degree]) if not cells.empty else []
    if not methods:
        return ev.missing(claim, section, document,
                          f"no best models of both corpora at {degree}")
    pairs = effect_pairs(cells, [degree], methods)
    w, o = (np.array([p[0][k] for p in pairs.values()]) for k in (0, 1))

    def smallest(x: np.ndarray) -> float:
        return float((x[:, w] - x[:, o]).mean(0).min())

    value = matrix_interval(cells, smallest, f"corpus-effect-{degree}", ev.config.seed)
    x = cells.to_numpy(np.float64)
    each = {m: float(np.nanmean(x[:, w] - x[:, o])) for m, ((w, o),) in pairs.items()}
    gate_, models = ev.gated(ev.fine("best", [degree]))
    note = (f"measured: the smallest over {len(methods)} methods of the mean paired difference "
            f"(within-domain − out-of-domain best-model precision, per image); per method: "
            f"{per_method(each)}; {ev.substitutes}")
    return ev.make(claim, section, document, value, note=note, gate_=gate_, models=models)


def corpus_effect_shrinks(ev: Evidence) -> Finding:
    degrees = ev.config.finding_degrees
    low = [d for d in degrees if d in LOW_DEGREES]
    high = [d for d in degrees if d not in LOW_DEGREES]
    claim = ("The corpus effect is largest at few fine-tuned blocks: ImageNet pre-training hurts "
             "explanations 'for lower degrees of fine-tuning (1conv and 2conv), where large parts "
             "of the models are prohibited to depart from the internal representations learned "
             "on the ImageNet data'.")
    section, document = "4.2; 5", "within − out larger at 1conv/2conv than at higher degrees"
    cells = ev.cells("best", degrees)
    methods = shared_methods(cells, low + high) if not cells.empty and low and high else []
    if not methods:
        return ev.missing(claim, section, document,
                          f"needs best models of both corpora at low ({low}) and higher "
                          f"({high}) degrees of finding_degrees")
    low_w, low_o = pair_index(effect_pairs(cells, low, methods))
    high_w, high_o = pair_index(effect_pairs(cells, high, methods))

    def contrast(x: np.ndarray) -> float:
        return float((x[:, low_w] - x[:, low_o]).mean() - (x[:, high_w] - x[:, high_o]).mean())

    value = matrix_interval(cells, contrast, "corpus-effect-shrinks", ev.config.seed)
    gate_, models = ev.gated(ev.fine("best", low + high))
    note = (f"measured: corpus effect (within − out, mean over {len(methods)} methods and images) "
            f"at {', '.join(low)} minus that at {', '.join(high)}; 1conv has its own gated "
            f"finding; {ev.substitutes}")
    return ev.make(claim, section, document, value, note=note, gate_=gate_, models=models)


# ---------------------------------------------------------------- 4.2: degree trend

def precision_rises(ev: Evidence) -> Finding:
    degrees = ev.config.finding_degrees
    claim = ("As a function of the amount of fine-tuning, explanation performance generally "
             "increases with higher degrees of fine-tuning.")
    section, document = "4.2, fig. 4", "increases (may plateau or reverse at 4conv)"
    cells = ev.cells("best", degrees)
    if cells.empty or len(degrees) < 2:
        return ev.missing(claim, section, document, "needs best models at two or more degrees")
    have = list(zip(cells.columns.get_level_values("corpus"),
                    cells.columns.get_level_values("method")))
    lines = []
    for corpus, method in sorted(set(have)):
        cols = [positions(cells, corpus=corpus, degree=d, method=method) for d in degrees]
        if all(cols):
            lines.append([c[0] for c in cols])
    if not lines:
        return ev.missing(claim, section, document,
                          f"no corpus × method has best models at every degree of {degrees}")
    steps = np.arange(len(degrees), dtype=np.float64)
    steps -= steps.mean()

    index = np.array(lines)  # [corpus × method lines, degrees]

    def slope(x: np.ndarray) -> float:
        return float(np.mean(x[:, index].mean(0) @ steps / (steps @ steps)))

    value = matrix_interval(cells, slope, "precision-rises", ev.config.seed)
    gate_, models = ev.gated(ev.fine("best", degrees))
    note = (f"measured: least-squares slope of mean best-model precision per degree step over "
            f"{', '.join(degrees)}, averaged over {len(lines)} corpus × method lines; "
            f"{ev.substitutes}")
    return ev.make(claim, section, document, value, note=note, gate_=gate_, models=models)


# ---------------------------------------------------------------- section 4: accuracy

def correctness(ev: Evidence, degrees: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per test sample (rows) and best model at ``degrees`` (columns): 1 if correct; and the
    models' ``corpus, degree``."""
    best = set(ev.scores.loc[ev.scores.best, "model_id"])
    models = ev.accuracy[ev.accuracy.model_id.isin(best) & ev.accuracy.degree.isin(list(degrees))]
    rows = ev.predictions[ev.predictions.model_id.isin(set(models.model_id))]
    if rows.empty:
        return pd.DataFrame(), models
    wide = rows.pivot_table(index="sample_id", columns="model_id", values="correct",
                            aggfunc="mean")
    return wide.astype(np.float64), models.set_index("model_id").loc[list(wide.columns)]


def cell_columns(models: pd.DataFrame) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for i, (corpus, degree) in enumerate(zip(models.corpus, models.degree)):
        out.setdefault((corpus, degree), []).append(i)
    return out


def accuracy_above(ev: Evidence) -> Finding:
    claim = ("All models, except the least fine-tuned ones (1conv), reached accuracies above "
             "90%.")
    section, document = "4", "> 0.90 at 2conv … all"
    degrees = [d for d in ev.config.degrees if d != "1conv"]
    wide, models = correctness(ev, degrees)
    if wide.empty:
        return ev.missing(claim, section, document, "no best model above 1conv has predictions")
    cells = cell_columns(models)

    def lowest(x: np.ndarray) -> float:
        return float(min(x[:, c].mean() for c in cells.values()))

    value = matrix_interval(wide, lowest, "accuracy-above", ev.config.seed)
    means = {f"{c} {d}": float(wide.iloc[:, cols].to_numpy().mean())
             for (c, d), cols in cells.items()}
    note = (f"measured: the lowest mean test accuracy of a corpus × degree's best models "
            f"({', '.join(f'{k} {v:.3f}' for k, v in means.items())}); the gate's own subject, "
            f"so not gated; {ev.substitutes}")
    return ev.make(claim, section, document, value, bound=0.9, note=note)


def accuracy_1conv_below(ev: Evidence) -> Finding:
    claim = "The least fine-tuned models (1conv) stay below 90% accuracy."
    section, document = "4; appendix G, table 1", "< 0.90 (table 1: 0.749 ImageNet, 0.806 MRI)"
    wide, models = correctness(ev, ["1conv"])
    if wide.empty:
        return ev.missing(claim, section, document, "no best 1conv model has predictions")
    cells = cell_columns(models)

    def highest(x: np.ndarray) -> float:
        return float(max(x[:, c].mean() for c in cells.values()))

    value = matrix_interval(wide, highest, "accuracy-1conv", ev.config.seed)
    note = ("measured: the highest mean test accuracy of the two corpora's best 1conv models; "
            f"the gate's own subject, so not gated; {ev.substitutes}")
    return ev.make(claim, section, document, value, bound=0.9, side="below", note=note)


def out_of_domain_more_accurate(ev: Evidence) -> Finding:
    claim = ("The models pre-trained with ImageNet achieved higher accuracy than the ones "
             "pre-trained with MR images.")
    section, document = "4; 4.2", "out-of-domain > within-domain accuracy, consistently"
    wide, models = correctness(ev, ev.config.degrees)
    cells = cell_columns(models) if not wide.empty else {}
    degrees = [d for d in ev.config.degrees if (WITHIN, d) in cells and (OUT, d) in cells]
    if not degrees:
        return ev.missing(claim, section, document, "no degree has best models of both corpora")

    def gap(x: np.ndarray) -> float:
        return float(np.mean([x[:, cells[(OUT, d)]].mean() - x[:, cells[(WITHIN, d)]].mean()
                              for d in degrees]))

    value = matrix_interval(wide, gap, "out-of-domain-accuracy", ev.config.seed)
    note = (f"measured: out-of-domain minus within-domain mean test accuracy of the best models, "
            f"averaged over {', '.join(degrees)}, paired by test image; {ev.substitutes}")
    return ev.make(claim, section, document, value, note=note)


# ---------------------------------------------------------------- appendix G: fig. 8, table 1

def correlation(ev: Evidence) -> Finding:
    claim = ("Explanation performance correlates with the classification performance of the "
             "underlying model: 'for almost all combinations, very strong positive correlations "
             "> 0.9'.")
    section, document = "4.2; appendix G, fig. 8", "r > 0.9 for almost all corpus × method"
    degrees = ev.config.finding_degrees
    part = ev.fine("best", degrees)
    per_model = part.pivot_table(index="model_id", columns="method", values="value")
    acc = ev.accuracy.set_index("model_id").reindex(per_model.index)
    per_model = per_model[acc.accuracy.notna()]
    acc = acc[acc.accuracy.notna()]
    counts = acc.corpus.value_counts()
    if per_model.empty or counts.min() < 3:
        return ev.missing(claim, section, document,
                          f"needs ≥ 3 best models per corpus at {degrees} with accuracies, "
                          f"got {counts.to_dict()}")
    frame = per_model.assign(accuracy=acc.accuracy.to_numpy(),
                             code=(acc.corpus == WITHIN).astype(float).to_numpy())
    n_methods, codes = per_model.shape[1], sorted(set(frame.code))

    def correlations(x: np.ndarray) -> np.ndarray:
        return np.concatenate([pearson_columns(x[x[:, -1] == code, :n_methods],
                                               x[x[:, -1] == code, -2]) for code in codes])

    def median_r(x: np.ndarray) -> float:
        rs = correlations(x)
        return float(np.nanmedian(rs)) if np.isfinite(rs).any() else np.nan

    value = matrix_interval(frame, median_r, "correlation", ev.config.seed)
    rs = correlations(frame.to_numpy(np.float64))
    gate_, models = ev.gated(part)
    note = (f"measured: median over corpus × method of Pearson r between a best model's mean "
            f"precision and its test accuracy ({len(acc)} models at {', '.join(degrees)}; the "
            f"document correlates the per-degree means of its five models); bootstrap over "
            f"models; {int(np.sum(rs > 0.9))} of {int(np.isfinite(rs).sum())} "
            f"combinations above 0.9; decision bound 0 (a positive correlation: the confound "
            f"appendix G corrects for); {ev.substitutes}")
    return ev.make(claim, section, document, value, note=note, gate_=gate_, models=models)


def matched_corpus_effect(ev: Evidence) -> Finding:
    claim = ("When controlling for classification performance, models pre-trained on MRI data "
             "consistently outperform equally well-predicting models that were pre-trained on "
             "ImageNet data in terms of explanation performance.")
    section, document = "4.2; appendix G, table 1, fig. 10", ("within > out at matched accuracy "
                                                              "(table 1: 0.88–0.90)")
    degrees = ev.config.finding_degrees
    cells = ev.cells("matched", degrees)
    present = [d for d in degrees if not cells.empty and shared_methods(cells, [d])]
    if not present:
        return ev.missing(claim, section, document, "no matched models of both corpora")
    methods = shared_methods(cells, present)
    w, o = pair_index(effect_pairs(cells, present, methods))

    def effect(x: np.ndarray) -> float:
        return float((x[:, w] - x[:, o]).mean())

    value = matrix_interval(cells, effect, "matched-corpus-effect", ev.config.seed)
    part = ev.fine("matched", present)
    acc = ev.accuracy.set_index("model_id").loc[sorted(set(part.model_id))]
    mean_acc = acc.groupby("corpus").accuracy.mean()
    best = ev.accuracy.set_index("model_id").loc[sorted(set(ev.fine("best", present).model_id))]
    gate_, models = ev.gated(part)
    note = (f"measured: within − out precision of the accuracy-matched models (target "
            f"{ev.config.matched_target:g}), mean over {', '.join(present)}, {len(methods)} "
            f"methods and images; matched mean accuracy "
            f"{', '.join(f'{c} {v:.3f}' for c, v in mean_acc.items())} (best models: "
            f"{best.accuracy.mean():.3f}); {ev.substitutes}")
    return ev.make(claim, section, document, value, note=note, gate_=gate_, models=models)


# ---------------------------------------------------------------- appendix F: random model

def random_model_excess(ev: Evidence) -> tuple[pd.DataFrame, list[str]]:
    """Per image (rows) and method (columns): random-model precision minus the random map's
    (the chance level of top-n precision), and the methods present."""
    model = ev.null(RANDOM_MODEL).pivot_table(index="sample_id", columns="method",
                                              values="value")
    chance = ev.null(RANDOM_MAP).groupby("sample_id").value.mean()
    both = model.index.intersection(chance.index)
    return model.loc[both].sub(chance.loc[both], axis=0), list(model.columns)


def random_model_highlights(ev: Evidence) -> Finding:
    claim = ("On a randomly initialised, untrained model, Gradient, DeepLift, GradientShap, "
             "InputXGradient, Guided Backpropagation and LRP 'seem to give a higher attribution "
             "in the pixels inside the ground-truth than to the rest of the pixels'.")
    section, document = "appendix F, fig. 7", "above chance for these six methods"
    excess, methods = random_model_excess(ev)
    six = [m for m in RANDOM_HIGHLIGHTING if m in methods]
    if excess.empty or not six:
        return ev.missing(claim, section, document,
                          "needs the random model's maps of these methods and the random map")
    frame = excess[six]

    def smallest(x: np.ndarray) -> float:
        return float(x.mean(0).min())

    value = matrix_interval(frame, smallest, "random-model-highlights", ev.config.seed)
    note = (f"measured: the smallest over {len(six)} methods ({', '.join(six)}; the document's "
            f"'Gradient' read as integrated gradients) of the mean random-model precision minus "
            f"that of a uniform random map (chance); per method: "
            f"{per_method(frame.mean().to_dict())}")
    return ev.make(claim, section, document, value, note=note)


def random_model_homogeneous(ev: Evidence) -> Finding:
    claim = ("On the random model, Saliency and Deconvolution have a more homogeneous "
             "attribution distribution and do not highlight the lesions (unlike the other six "
             "methods).")
    section, document = "appendix F, fig. 7", "saliency, deconvolution below the other six"
    excess, methods = random_model_excess(ev)
    six = [m for m in RANDOM_HIGHLIGHTING if m in methods]
    two = [m for m in RANDOM_HOMOGENEOUS if m in methods]
    if excess.empty or not six or not two:
        return ev.missing(claim, section, document,
                          "needs the random model's maps of both method groups and the random map")
    frame = excess[six + two]
    k = len(six)

    def margin(x: np.ndarray) -> float:
        means = x.mean(0)
        return float(means[:k].min() - means[k:].max())

    value = matrix_interval(frame, margin, "random-model-homogeneous", ev.config.seed)
    note = (f"measured: the smallest excess over chance (random map) of the six methods minus "
            f"the largest of {', '.join(two)}; excess of {', '.join(two)}: "
            f"{per_method(frame[two].mean().to_dict())}")
    return ev.make(claim, section, document, value, note=note)


# ---------------------------------------------------------------- 2.6: null baselines

def edge_filters_null(ev: Evidence) -> Finding:
    claim = ("The Laplace and Sobel edge filters act as 'null models' for explanation "
             "performance: the methods on the fine-tuned models score above them.")
    section, document = "2.6; 4.2, fig. 4", "methods above the edge filters"
    degrees = ev.config.finding_degrees
    part = ev.fine("best", degrees)
    edges = pd.concat([ev.null(g) for g in ("sobel", "laplace")])
    if part.empty or edges.empty:
        return ev.missing(claim, section, document, "needs best models and both edge filters")
    methods = part.pivot_table(index="sample_id", columns="method", values="value")
    filters = edges.pivot_table(index="sample_id", columns="null_baseline", values="value")
    frame = methods.join(filters, how="inner")
    k = methods.shape[1]

    def margin(x: np.ndarray) -> float:
        return float(x[:, :k].mean() - x[:, k:].mean(0).max())

    value = matrix_interval(frame, margin, "edge-filters", ev.config.seed)
    gate_, models = ev.gated(part)
    edge_means = ", ".join(f"{c} {v:.3f}" for c, v in filters.mean().items())
    note = (f"measured: mean precision of {k} methods on the best models at {', '.join(degrees)} "
            f"minus the better edge filter's ({edge_means}); {ev.substitutes}")
    return ev.make(claim, section, document, value, note=note, gate_=gate_, models=models)


def random_model_null(ev: Evidence) -> Finding:
    claim = ("The randomly initialised, untrained model acts as a 'null model': each method on "
             "the fine-tuned models scores above the same method on the random model.")
    section, document = "2.6; 4.2, fig. 4", "methods above the random model"
    degrees = ev.config.finding_degrees
    part = ev.fine("best", degrees)
    random = ev.null(RANDOM_MODEL)
    methods = sorted(set(part.method) & set(random.method))
    if not methods:
        return ev.missing(claim, section, document,
                          "needs best models and the random model with the same methods")
    fine = part[part.method.isin(methods)].pivot_table(index="sample_id", columns="method",
                                                       values="value")[methods]
    null = random.pivot_table(index="sample_id", columns="method", values="value")[methods]
    both = fine.index.intersection(null.index)
    frame = fine.loc[both] - null.loc[both]

    def smallest(x: np.ndarray) -> float:
        return float(x.mean(0).min())

    value = matrix_interval(frame, smallest, "random-model-null", ev.config.seed)
    gate_, models = ev.gated(part)
    note = (f"measured: the smallest over {len(methods)} methods of the mean paired difference "
            f"(best fine-tuned models at {', '.join(degrees)} − random model), per method: "
            f"{per_method(frame.mean().to_dict())}; {ev.substitutes}")
    return ev.make(claim, section, document, value, note=note, gate_=gate_, models=models)


# ---------------------------------------------------------------- entry points

def claims(tables: dict[str, pd.DataFrame], config: PretrainingConfig, scale: str
           ) -> list[Finding]:
    """Every finding of document 000 from the run's ``results``, ``summaries`` and
    ``predictions`` frames (the study's rows), in the order of issue 12's list."""
    study = {k: v[v.study == NAME] if "study" in v else v for k, v in tables.items()}
    ev = Evidence(analysis.precision_scores(study["results"]),
                  analysis.model_accuracy(study["summaries"]), study["summaries"],
                  study["predictions"], config, scale)
    return [methods_differ(ev),
            *(corpus_effect_at(ev, d) for d in LOW_DEGREES if d in config.degrees),
            corpus_effect_shrinks(ev), precision_rises(ev),
            accuracy_above(ev), accuracy_1conv_below(ev), out_of_domain_more_accurate(ev),
            correlation(ev), matched_corpus_effect(ev),
            random_model_highlights(ev), random_model_homogeneous(ev),
            edge_filters_null(ev), random_model_null(ev)]


def findings(run_dir: Path, scale: str) -> list[Finding]:
    """:func:`claims` of the run in ``run_dir`` (its ``config.yaml`` and result tables)."""
    run_dir = Path(run_dir)
    cfg = PretrainingConfig.from_yaml(run_dir / "config.yaml")
    tables = {t: read_results(run_dir, t) for t in ("results", "summaries", "predictions")}
    return claims(tables, cfg, scale)
