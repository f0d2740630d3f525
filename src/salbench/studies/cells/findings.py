"""The cells study's findings (document 001): each claim of sections 4.1 and 5 about figures 3
and 4 as one number computed from the run's soft five-band scores, with its interval and verdict.

The quantities, all from ``soft_five_band`` (``salbench.metrics.fiveband``; standard schedule
unless named) of the table-1 branches, each a mean over an architecture's branches and its
explained evaluation samples:

- **R_avg, P_avg, R_best, P_best** (section 4.1, fig. 3 A/B): the mean over the samples of each
  sample's average / best recall and precision over the soft thresholds; fig. 3C: R_best and
  P_best of the clamped schedule.
- **Density** (how dense a map is; sparsity = 1 − density): the share of a sample's pixels in a
  nonzero band, (TP + FP) / pixels, averaged over the soft thresholds (output ``density_avg``),
  then over the eight methods: "sparsest" is the lowest density.
- **FPR_avg**: each sample's FPR averaged over the soft thresholds; **FPR_0**: the FPR at the
  first threshold t_0 = [−0.5, −0.3, 0.3, 0.5] (where a ROC line "starts", fig. 4).
- **Clamping change** (fig. 3C against 3B): per branch and method, the distance in the (R, P)
  plane between the clamped point (R_best, P_best) and the standard one, averaged over the
  methods and branches: "changes most" is the largest mean distance.
- **ROC poor region** (fig. 4): a method's ROC line is the mean FPR and mean recall per threshold
  over the samples and branches; it lies in the "traditionally poor" region when even its best
  point has R − FPR < 0.4, i.e. the single-point AUC (1 + R − FPR) / 2 stays under 0.7: "poor"
  (0.6–0.7) or worse on the traditional grading of AUC (0.9 excellent, 0.8 good, 0.7 fair,
  0.6 poor, 0.5 fail). The document does not define the region; this reading is salbench's.

**Interval.** A two-way percentile bootstrap: each of :data:`N_BOOT` draws resamples, per
architecture, its branches and its evaluation samples with replacement (crossed: every branch
explains the same samples, so the methods stay paired), architectures independently, and
recomputes the statistic; ``n`` counts the (branch, sample) pairs behind it.

**Gate.** A finding counts only when every branch of the architectures it uses reaches
``accuracy_gate`` test accuracy (the issue's 0.80); otherwise it is ``not testable here``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from salbench.results import connect, read_results
from salbench.results.findings import (
    CONFIDENCE,
    N_BOOT,
    Finding,
    Gate,
    Side,
    finding,
    gate,
    not_testable,
    rng_for,
)
from salbench.studies.cells.config import CellsConfig, initial_weights
from salbench.studies.cells.grid import NAME, branch_id

FIVE_BAND = "soft_five_band"
# The keys of an architecture's score cube: "<schedule>/<output>" of the results table and
# "curve/<name>" of the standard schedule's per-threshold curves.
OUTPUTS = {"standard": ("recall_avg", "precision_avg", "recall_best", "precision_best",
                        "fpr_avg", "density_avg"),
           "clamped": ("recall_best", "precision_best")}
CURVES = ("fpr", "recall")
# The document's architectures (section 3.2, table 1) by family, and their names in its text.
FAMILIES = {"resnet": "ResNet", "alexnet": "AlexNet", "vgg": "VGG"}
DOCUMENT_MODELS = {"resnet": ("resnet34", 512), "alexnet": ("alexnet", 224),
                   "vgg": ("vgg16", 224)}
DOCUMENT_BRANCHES, DOCUMENT_SAMPLES = 5, 1600  # sections 3.2 and 3.1 (8 shards of 200)
POOR_AUC = 0.7  # below "fair" on the traditional AUC grading: the ROC "poor region" (fig. 4)
DECONVOLUTION, SALIENCY = "deconvolution", "saliency"
DEEPLIFTS = ("deeplift", "deeplift_shap")  # section 4.1: "Unlike DeepLift and DeepLiftShap"


def family(arch: str) -> str:
    """The document's architecture family of a zoo name (``vgg16_bn`` -> ``vgg``)."""
    return next(f for f in FAMILIES if arch.startswith(f))


@dataclass(frozen=True)
class Cube:
    """One architecture's per-sample scores: ``values[key]`` is ``[branches, samples, methods]``
    (``[..., thresholds]`` for a curve), over the branches, samples and methods present for
    every key (samples missing anywhere are left out)."""

    branches: tuple[str, ...]
    samples: tuple[str, ...]
    methods: tuple[str, ...]
    values: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.branches) * len(self.samples)


class Draws:
    """Bootstrap draws as weights: per architecture, ``[D, branches]`` branch weights and
    ``[D, samples]`` sample weights (resampling counts / size; one uniform row gives the measured
    value). Every quantity below has the draws as its leading axis."""

    def __init__(self, cubes: dict[str, Cube], weights: dict[str, tuple[np.ndarray, np.ndarray]]):
        self.cubes = cubes
        self.weights = weights
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def branch_points(self, arch: str, key: str) -> np.ndarray:
        """Per branch, the weighted mean over the samples: ``[D, branches, methods(, m)]``."""
        if (arch, key) not in self._cache:
            self._cache[arch, key] = np.tensordot(self.weights[arch][1],
                                                  self.cubes[arch].values[key], axes=(1, 1))
        return self._cache[arch, key]

    def point(self, arch: str, key: str) -> dict[str, np.ndarray]:
        """Per method, the weighted mean over the branches and samples (a fig. 3 or fig. 4
        point): ``[D]`` (``[D, m]`` for a curve)."""
        means = np.einsum("db,db...->d...", self.weights[arch][0], self.branch_points(arch, key))
        return {m: means[:, j] for j, m in enumerate(self.cubes[arch].methods)}

    def branch_weights(self, arch: str) -> np.ndarray:
        return self.weights[arch][0]


def _resampling_weights(k: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``[draws, k]``: how often each of k units is drawn in k draws with replacement, / k."""
    picks = rng.integers(0, k, (draws, k)) + k * np.arange(draws)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * k).reshape(draws, k) / k


def two_way_interval(cubes: dict[str, Cube], statistic: Callable[[Draws], np.ndarray],
                     rng: np.random.Generator) -> tuple[float, float, float, int]:
    """(statistic, low, high, n): the statistic at uniform weights and its percentile interval
    over :data:`N_BOOT` draws that resample each cube's branches and samples (module docstring);
    ``statistic`` maps :class:`Draws` to one value per draw."""
    uniform = {a: (np.full((1, len(c.branches)), 1 / len(c.branches)),
                   np.full((1, len(c.samples)), 1 / len(c.samples))) for a, c in cubes.items()}
    value = float(statistic(Draws(cubes, uniform))[0])
    weights = {a: (_resampling_weights(len(c.branches), N_BOOT, rng),
                   _resampling_weights(len(c.samples), N_BOOT, rng)) for a, c in cubes.items()}
    draws = np.asarray(statistic(Draws(cubes, weights)), dtype=np.float64)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return (value, float(low), float(high), sum(c.n for c in cubes.values()))


# ---------------------------------------------------------------- the cubes from the tables

def _table1_rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[frame["metric"] == FIVE_BAND] if "metric" in frame else frame
    if "added_conv_layers" in rows:
        rows = rows[rows["added_conv_layers"].fillna(0) == 0]
    return rows


def _fill(rows: pd.DataFrame, branches, samples, methods, points: int | None) -> np.ndarray:
    """``rows`` (model_id, sample_id, method[, point], value) as an array over the given axes,
    NaN where a row is missing."""
    shape = (len(branches), len(samples), len(methods)) + ((points,) if points else ())
    out = np.full(shape, np.nan)
    index = [pd.Index(axis).get_indexer(rows[col]) for axis, col in
             ((branches, "model_id"), (samples, "sample_id"), (methods, "method"))]
    if points:
        index.append(rows["point"].to_numpy(int))
    keep = np.all([i >= 0 for i in index], axis=0)
    out[tuple(i[keep] for i in index)] = rows["value"].to_numpy(float)[keep]
    return out


def score_cubes(results: pd.DataFrame, curves: pd.DataFrame) -> dict[str, Cube]:
    """Per architecture (the config's model name), the :class:`Cube` of the table-1 branches'
    soft five-band scores (``results`` rows) and standard-schedule FPR and recall curves."""
    results, curves = _table1_rows(results), _table1_rows(curves)
    if "schedule" in curves:
        curves = curves[(curves["schedule"] == "standard") & curves["curve"].isin(CURVES)]
    out = {}
    for arch, rows in results.groupby("architecture", sort=False, observed=True):
        branches = tuple(sorted(rows["model_id"].unique()))
        methods = tuple(rows["method"].unique())
        samples = tuple(sorted(rows["sample_id"].unique(), key=_sample_order))
        values = {}
        for schedule, outputs in OUTPUTS.items():
            for output in outputs:
                part = rows[(rows["schedule"] == schedule) & (rows["output"] == output)]
                values[f"{schedule}/{output}"] = _fill(part, branches, samples, methods, None)
        own = curves[curves["architecture"] == arch] if "architecture" in curves else curves[:0]
        points = int(own["point"].max()) + 1 if len(own) else 0
        for name in CURVES:
            part = own[own["curve"] == name]
            values[f"curve/{name}"] = (_fill(part, branches, samples, methods, points) if points
                                       else np.full((len(branches), len(samples), len(methods),
                                                     1), np.nan))
        present = [m for j, m in enumerate(methods)
                   if all(np.isfinite(v[:, :, j]).any() for v in values.values())]
        keep_m = [methods.index(m) for m in present]
        values = {k: v[:, :, keep_m] for k, v in values.items()}
        complete = np.all([np.isfinite(v.reshape(len(branches), len(samples), -1)).all((0, 2))
                           for v in values.values()], axis=0)
        if not complete.any() or not present:
            continue
        out[arch] = Cube(branches, tuple(np.asarray(samples)[complete]), tuple(present),
                         {k: v[:, complete] for k, v in values.items()})
    return out


def _sample_order(sample_id: str):
    return (0, int(sample_id)) if str(sample_id).isdigit() else (1, str(sample_id))


# ---------------------------------------------------------------- the claims

def substitutes(config: CellsConfig, roles: dict[str, str]) -> str:
    """What replaces the document's setting in this config (architecture, initialisation, image
    size, width, branches, samples), for the notes."""
    parts = []
    for fam, name in roles.items():
        model = config.models[name]
        arch, size = DOCUMENT_MODELS[fam]
        own = [f"{model.arch}" + (f" for {arch}" if model.arch != arch else "")]
        if initial_weights(model) is None:
            own.append("random init (document: ImageNet)")
        if model.size != size:
            own.append(f"{model.size} px (document: {size})")
        if model.width != 1:
            own.append(f"width {model.width:g}")
        parts.append(f"{FAMILIES[fam]} = " + ", ".join(own))
    if config.branches != DOCUMENT_BRANCHES:
        parts.append(f"{config.branches} branches (document: {DOCUMENT_BRANCHES})")
    if config.n_samples < DOCUMENT_SAMPLES:
        parts.append(f"≤ {config.n_samples} evaluation samples per branch (document: "
                     f"{DOCUMENT_SAMPLES})")
    return "; ".join(parts)


@dataclass(frozen=True)
class Claim:
    """One claim: its words, section, the document's statement, the architecture families it
    needs, the methods it needs, the statistic on a bootstrap draw, and the decision (bound,
    side) with the note saying how it is measured."""

    key: str
    claim: str
    section: str
    document: str
    families: tuple[str, ...]
    methods: tuple[str, ...]
    statistic: Callable[[Draws, dict[str, str]], np.ndarray]
    how: str
    bound: float = 0.0
    side: Side = "above"


def _others(point: dict, exclude: Sequence[str]) -> np.ndarray:
    """``[methods, D]``: the point's values of the methods not in ``exclude``."""
    return np.stack([v for m, v in point.items() if m not in exclude])


def _mean_over_methods(point: dict) -> np.ndarray:
    return np.mean(np.stack(list(point.values())), axis=0)


def _saliency_lead(arch: str):
    def statistic(d: Draws, roles: dict[str, str]) -> np.ndarray:
        r = d.point(roles[arch], "standard/recall_avg")
        return r[SALIENCY] - _others(r, [SALIENCY]).max(0)
    return statistic


def _saliency_alexnet_top(d: Draws, roles: dict[str, str]) -> np.ndarray:
    top = d.point(roles["alexnet"], "standard/recall_avg")
    rest = [v for fam in FAMILIES for m, v in d.point(roles[fam], "standard/recall_avg").items()
            if (fam, m) != ("alexnet", SALIENCY)]
    return top[SALIENCY] - np.max(rest, axis=0)


def _deconvolution_recall(arch: str):
    def statistic(d: Draws, roles: dict[str, str]) -> np.ndarray:
        r = d.point(roles[arch], "standard/recall_avg")
        return r[DECONVOLUTION] - _others(r, [DECONVOLUTION, SALIENCY]).mean(0)
    return statistic


def _deconvolution_precision(arch: str):
    def statistic(d: Draws, roles: dict[str, str]) -> np.ndarray:
        p = d.point(roles[arch], "standard/precision_avg")
        return p[DECONVOLUTION] - _others(p, [DECONVOLUTION]).mean(0)
    return statistic


def _density(d: Draws, roles: dict[str, str], fam: str) -> np.ndarray:
    return _mean_over_methods(d.point(roles[fam], "standard/density_avg"))


def _resnet_sparsest(d: Draws, roles: dict[str, str]) -> np.ndarray:
    return (np.minimum(_density(d, roles, "vgg"), _density(d, roles, "alexnet"))
            - _density(d, roles, "resnet"))


def _vgg_sparser_than_alexnet(d: Draws, roles: dict[str, str]) -> np.ndarray:
    return _density(d, roles, "alexnet") - _density(d, roles, "vgg")


def _alexnet_recall_over_vgg(d: Draws, roles: dict[str, str]) -> np.ndarray:
    return (_mean_over_methods(d.point(roles["alexnet"], "standard/recall_avg"))
            - _mean_over_methods(d.point(roles["vgg"], "standard/recall_avg")))


def _clamping_change(d: Draws, roles: dict[str, str], fam: str) -> np.ndarray:
    """Mean over the branches (weighted) and methods of |(R, P)_clamped − (R, P)_standard|."""
    arch = roles[fam]
    dr = (d.branch_points(arch, "clamped/recall_best")
          - d.branch_points(arch, "standard/recall_best"))
    dp = (d.branch_points(arch, "clamped/precision_best")
          - d.branch_points(arch, "standard/precision_best"))
    return (d.branch_weights(arch) * np.hypot(dr, dp).mean(-1)).sum(-1)


def _clamping_alexnet_vgg(d: Draws, roles: dict[str, str]) -> np.ndarray:
    return (np.minimum(_clamping_change(d, roles, "alexnet"), _clamping_change(d, roles, "vgg"))
            - _clamping_change(d, roles, "resnet"))


def _roc_poor_share(d: Draws, roles: dict[str, str]) -> np.ndarray:
    """Share of the (architecture, method) ROC lines whose best point has R − FPR < 2·0.7 − 1."""
    poor = []
    for fam in FAMILIES:
        fpr, recall = d.point(roles[fam], "curve/fpr"), d.point(roles[fam], "curve/recall")
        poor += [(recall[m] - fpr[m]).max(-1) < 2 * POOR_AUC - 1 for m in fpr]
    return np.mean(poor, axis=0)


def _saliency_fpr(arch: str):
    def statistic(d: Draws, roles: dict[str, str]) -> np.ndarray:
        f = d.point(roles[arch], "standard/fpr_avg")
        return f[SALIENCY] - np.mean([f[m] for m in DEEPLIFTS], axis=0)
    return statistic


def _deconvolution_starts_fp(d: Draws, roles: dict[str, str]) -> np.ndarray:
    gaps = []
    for fam in FAMILIES:
        start = {m: v[:, 0] for m, v in d.point(roles[fam], "curve/fpr").items()}
        gaps.append(start[DECONVOLUTION] - _others(start, [DECONVOLUTION]).mean(0))
    return np.min(gaps, axis=0)


ALL = tuple(FAMILIES)
AVG = ("R_avg and P_avg: per sample the mean over the 56 standard soft thresholds, then the mean "
       "over the samples and branches")


def _per_family(fam: str) -> list[Claim]:
    label = FAMILIES[fam]
    return [
        Claim(f"saliency-recall-{fam}",
              f"{label}: Saliency has the highest recall of the eight methods (\"comparatively "
              "high recall values for Saliency\")",
              "4.1, fig. 3A; 5", "Saliency highest R_avg", (fam,), (SALIENCY,),
              _saliency_lead(fam),
              f"R_avg(saliency) − max over the other methods of R_avg on {label}; {AVG}"),
        Claim(f"deconvolution-recall-{fam}",
              f"{label}: \"Deconvolution ... has relatively higher recall scores due to the large "
              "amount of artifact pixels\"",
              "4.1, fig. 3A", "R_avg(deconvolution) above the other methods (Saliency aside)",
              (fam,), (DECONVOLUTION, SALIENCY), _deconvolution_recall(fam),
              f"R_avg(deconvolution) − mean R_avg of the six methods other than deconvolution "
              f"and saliency (the document ranks Saliency highest) on {label}; {AVG}"),
        Claim(f"deconvolution-precision-{fam}",
              f"{label}: deconvolution's heatmaps are undermined, \"reflected as low precision "
              "score\"",
              "4.1, fig. 3A", "P_avg(deconvolution) below the other methods", (fam,),
              (DECONVOLUTION,), _deconvolution_precision(fam),
              f"P_avg(deconvolution) − mean P_avg of the seven other methods on {label}; {AVG}",
              side="below"),
        Claim(f"saliency-fpr-{fam}",
              f"{label}: \"Unlike DeepLift and DeepLiftShap, Saliency ROC shows higher recall ... "
              "but also higher FPR\"",
              "4.1, fig. 4", "FPR(saliency) > FPR(DeepLift, DeepLiftShap)", (fam,),
              (SALIENCY, *DEEPLIFTS), _saliency_fpr(fam),
              f"FPR_avg(saliency) − mean FPR_avg of DeepLIFT and DeepLIFT SHAP on {label}; "
              "FPR_avg: per sample the FPR averaged over the 56 standard thresholds, then the "
              "mean over the samples and branches"),
    ]


CLAIMS: tuple[Claim, ...] = (
    Claim("saliency-alexnet-top",
          "\"The highest recall values in fig. 3(A) are attained by Saliency applied on AlexNet\"",
          "4.1, fig. 3A; 5", "Saliency on AlexNet highest R_avg of all points", ALL, (SALIENCY,),
          _saliency_alexnet_top,
          "R_avg(AlexNet, saliency) − max R_avg over every other (architecture, method) point; "
          + AVG),
    *(c for fam in FAMILIES for c in _per_family(fam)),
    Claim("resnet-sparsest",
          "\"The heatmaps produced by ResNet appear to be sparsest\"",
          "5; 4.1, fig. 3A/B", "ResNet sparsest", ALL, (),
          _resnet_sparsest,
          "min(density VGG, density AlexNet) − density ResNet; density: the share of a sample's "
          "pixels in a nonzero band, (TP + FP) / pixels, averaged over the 56 standard "
          "thresholds, the samples, branches and the eight methods (sparsity = 1 − density)"),
    Claim("vgg-sparser-than-alexnet",
          "\"... followed by VGG then AlexNet\"; \"AlexNet tends to produce denser heatmaps\"",
          "5; 4.1", "density AlexNet > VGG", ("alexnet", "vgg"), (),
          _vgg_sparser_than_alexnet,
          "density AlexNet − density VGG (density as for the ResNet claim)"),
    Claim("alexnet-recall-over-vgg",
          "AlexNet's denser heatmaps give \"slightly higher recall scores than VGG\"",
          "4.1, fig. 3A", "R_avg AlexNet > VGG", ("alexnet", "vgg"), (),
          _alexnet_recall_over_vgg,
          "mean over the eight methods of R_avg, AlexNet − VGG; " + AVG),
    Claim("clamping-alexnet-vgg",
          "After clamping \"we do observe some changes in the precision and recall scores, more "
          "notably for AlexNet and VGG\"",
          "4.1, fig. 3C", "AlexNet and VGG change most", ALL, (),
          _clamping_alexnet_vgg,
          "min(change AlexNet, change VGG) − change ResNet; change: per branch and method the "
          "distance in the (R, P) plane between the fig. 3C point (clamped R_best, P_best) and "
          "the fig. 3B point (standard R_best, P_best), averaged over the methods and branches"),
    Claim("roc-poor-region",
          "\"Most methods ... lie under traditionally poor ROC region\"",
          "4.1, fig. 4", "most ROC lines poor (share > 0.5)", ALL, (),
          _roc_poor_share,
          "share of the (architecture, method) ROC lines (mean FPR and recall per standard "
          "threshold over samples and branches) whose best point has R − FPR < 0.4, i.e. "
          f"single-point AUC (1 + R − FPR)/2 < {POOR_AUC} (\"poor\" or worse on the traditional "
          "AUC grading; the document does not define the region)", bound=0.5),
    Claim("deconvolution-starts-fp",
          "\"deconvolution starts with many FP predictions in all three architecture\"",
          "4.1, fig. 4", "FPR at t_0 of deconvolution above the others, every architecture",
          ALL, (DECONVOLUTION,), _deconvolution_starts_fp,
          "min over the architectures of FPR_0(deconvolution) − mean FPR_0 of the other seven "
          "methods; FPR_0: the FPR at the first standard threshold t_0 = [−0.5, −0.3, 0.3, "
          "0.5], mean over samples and branches"),
)


def roles_of(config: CellsConfig) -> dict[str, str]:
    """The config's model name for each document architecture family it has (the first one)."""
    roles: dict[str, str] = {}
    for name, model in config.models.items():
        roles.setdefault(family(model.arch), name)
    return roles


def accuracy_gate(summaries: pd.DataFrame, config: CellsConfig, names: Sequence[str]) -> Gate:
    """The gate over every branch of the config's models ``names`` (a missing branch scores
    NaN and fails)."""
    models = [branch_id(name, b) for name in names for b in range(config.branches)]
    summaries = summaries[summaries["study"] == NAME] if "study" in summaries else summaries
    return gate(summaries, config.accuracy_gate, models=models)


def claims(tables: dict[str, pd.DataFrame], config: CellsConfig, scale: str) -> list[Finding]:
    """Every claim of :data:`CLAIMS` measured on ``tables`` (``results``, ``curves``,
    ``summaries`` frames of :func:`salbench.results.read_results`; ``curves`` may hold only the
    standard schedule's ``fpr`` and ``recall``)."""
    roles = roles_of(config)
    cubes = score_cubes(tables["results"], tables["curves"])
    subs = substitutes(config, roles)
    out = []
    for c in CLAIMS:
        missing = [FAMILIES[f] for f in c.families if f not in roles or roles[f] not in cubes]
        absent = sorted({m for f in c.families if f in roles and roles[f] in cubes
                         for m in c.methods if m not in cubes[roles[f]].methods})
        if missing or absent:
            reason = (f"no scored {', '.join(missing)} branches in this run" if missing
                      else f"method(s) {', '.join(absent)} not run")
            out.append(not_testable(NAME, c.claim, c.section, c.document,
                                    f"{reason}; measured as {c.how}", scale=scale))
            continue
        names = [roles[f] for f in c.families]
        own = {roles[f]: cubes[roles[f]] for f in c.families}
        interval = two_way_interval(own, lambda d, c=c: c.statistic(d, roles),
                                    rng_for(NAME, c.key, seed=config.seed))
        note = (f"{c.how}; interval: bootstrap over branches × samples "
                f"({', '.join(f'{len(own[n].branches)} × {len(own[n].samples)}' for n in names)})"
                + (f"; substitutes: {subs}" if subs else ""))
        out.append(finding(NAME, c.claim, c.section, c.document, interval, scale=scale,
                           bound=c.bound, side=c.side, note=note,
                           gate_=accuracy_gate(tables["summaries"], config, names),
                           models=None))
    return out


def read_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """The frames :func:`claims` reads, the columns it needs selected in DuckDB (a run's tables
    are large): the table-1 branches' five-band ``results`` rows, their standard-schedule ``fpr``
    and ``recall`` curves, and the ``summaries``."""
    factors = "model_id, architecture, added_conv_layers, method, schedule"
    where = (f"study = '{NAME}' and metric = '{FIVE_BAND}' and added_conv_layers = 0")
    con, _ = connect(run_dir)
    try:
        def select(table: str, columns: str, condition: str) -> pd.DataFrame:
            present = set(con.sql(f"select * from {table} limit 0").columns)
            if not {"architecture", "schedule", "added_conv_layers"} <= present:
                return pd.DataFrame(columns=[c.strip() for c in columns.split(",")])
            return con.sql(f"select {columns} from {table} where {condition}").to_arrow_table(
            ).to_pandas(strings_to_categorical=True)

        results = select("results", f"{factors}, output, sample_id, value", where)
        curves = select("curves", f"{factors}, curve, sample_id, point, value",
                        f"{where} and schedule = 'standard' and curve in ('fpr', 'recall')")
    finally:
        con.close()
    return {"results": results, "curves": curves, "summaries": read_results(run_dir, "summaries")}


def findings(run_dir: Path, scale: str) -> list[Finding]:
    """The findings of a cells run (``Study.findings``)."""
    config = CellsConfig.from_yaml(Path(run_dir) / "config.yaml")
    return claims(read_tables(Path(run_dir)), config, scale)
