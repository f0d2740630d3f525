"""The cam-faithfulness findings (document 003): each claim of sections 3–5 as one number computed
from the run's result tables, with its 95 % bootstrap interval, n and verdict.

- **Table 1** (section 3, propositions 1–4). Per row of table 1 (a structure, and gradients
  taken at the last convolutional layer or one block earlier) three findings: Grad-CAM ≡ HiResCAM
  or not, and for each method whether its raw map sums to the class score minus its bias
  (s − b, eq. 20); on the CAM architecture three more, CAM/(D1·D2) against propositions 1–3.
  Measured by the metric ``cam_identities`` (relative L1 distance of two raw maps, contribution
  error |Σ map − (s − b)| / (‖map‖₁ + |s − b|), both in [0, 1], 0 = the identity holds): the
  median over a model's images, for the model least favourable to the claim (the largest median
  where the claim is an identity, the smallest where it is a difference). **Decision by
  tolerance**: an identity holds when the whole interval lies below ``table1.tolerance`` (float32
  maps give about 1e-7), a difference when it lies above it. Interval: percentile bootstrap of
  that worst median, images resampled within each model (:func:`worst_median`). Identities hold
  for any weights, so these findings are not gated (the Dense row's models are untrained).
- **Grad-CAM = HiResCAM on GAP heads, in the metrics** (propositions 2–3, "identical
  explanations"): the per-image relative difference |G − H| / (|G| + |H|) of every AOPC,
  max-sensitivity and HAAS value, worst model's median, below ``metric_tolerance``. Not gated.
- **AOPC** (sections 4.3, 5.2, tables 5 and 10): HiResCAM − Grad-CAM per correctly classified
  image of the Conv–Flatten models, averaged over the heatmap sizes; the mean over (model, image)
  pairs above 0.
- **Max-sensitivity** (section 4.4, fig. 15, table 10): the ratio of HiResCAM's to Grad-CAM's
  mean (over radii and images) below 1; scale-free, so comparable with the document's 224 px maps.
- **HAAS** (section 4.5, table 7): Σ Acc(HA) / Σ Acc(x) over the Conv–Flatten models' images
  and both methods below 1; and |HAAS(HiResCAM) − HAAS(Grad-CAM)| below ``haas_margin``
  ("favours neither": an equivalence margin, decided like an identity).
- **Fig. 16**: Spearman's ρ between a trained model's balanced accuracy and HiResCAM's mean AOPC
  (over heatmap sizes) across the trained models, above 0.

Intervals of the paired and ratio findings: percentile bootstrap over the (model, image) units.
**Gate**: the AOPC, max-sensitivity, HAAS and fig.-16 findings count only when every trained
model they use reaches ``accuracy_gate`` test balanced accuracy (issue 12: 0.80); otherwise they
are ``not testable here`` with the scores in the note.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from salbench.results import read_results
from salbench.results.findings import (
    CONFIDENCE,
    N_BOOT,
    Finding,
    Gate,
    finding,
    gate,
    not_testable,
    paired_difference,
    pearson,
    rng_for,
    statistic_interval,
)
from salbench.studies.cam_faithfulness.analysis import (
    ARCH_LABELS,
    CAM,
    DOCUMENT_TABLE_1,
    GRADCAM,
    HEAD_LABELS,
    HIRESCAM,
    STRUCTURES,
    verdict,
)
from salbench.studies.cam_faithfulness.config import CamFaithfulnessConfig
from salbench.studies.cam_faithfulness.grid import NAME

FLATTEN, GAP, DENSE = "conv_flatten_fc", "gap_fc", "classifier"
GATE_OUTPUT = "balanced_accuracy"
TABLES = ("results", "summaries")
CONTRIBUTION = "|Σ map − (s − b)| / (‖map‖₁ + |s − b|)"
BOOT_CHUNK = 250  # bootstrap draws resampled at once per model (bounds memory)
# Document 003, table 10 (its 8 Conv–Flatten models): the numbers each finding compares with.
DOCUMENT_AOPC = "+0.022 (mean over 8 models; HiResCAM higher on 7, equal on 1)"
DOCUMENT_SENSITIVITY = "0.71 (mean of 8 models; lower on 8 of 8 and every radius)"
DOCUMENT_HAAS = "0.81 (mean of 16 values; 15 of 16 below 1)"
DOCUMENT_HAAS_DIFFERENCE = "0.011 (mean over 8 models; HiResCAM higher on 5, Grad-CAM on 3)"
DOCUMENT_RHO = "0.55 over 8 models (VGG-19 alone 1.0)"


def worst_median(groups: Sequence[np.ndarray], worst: str, rng: np.random.Generator
                 ) -> tuple[float, float, float, int]:
    """(statistic, low, high, n): the largest (``worst="max"``) or smallest (``"min"``) of the
    groups' medians, with the percentile bootstrap resampling each group's finite values with
    replacement (groups independently); n counts all values."""
    pick = {"max": np.max, "min": np.min}[worst]
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    groups = [g[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if g.size]
    if not groups:
        return (np.nan, np.nan, np.nan, 0)
    value = float(pick([np.median(g) for g in groups]))
    medians = np.empty((N_BOOT, len(groups)))
    for j, g in enumerate(groups):
        for start in range(0, N_BOOT, BOOT_CHUNK):
            stop = min(N_BOOT, start + BOOT_CHUNK)
            medians[start:stop, j] = np.median(g[rng.integers(0, g.size, (stop - start, g.size))],
                                               axis=1)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(pick(medians, axis=1), [alpha, 1 - alpha])
    return (value, float(low), float(high), int(sum(g.size for g in groups)))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ: Pearson's r of the ranks (ties averaged; NaN when either is constant)."""
    return pearson(rankdata(x), rankdata(y))


# ---------------------------------------------------------------- context

def model_name(model_id: str, frame: pd.DataFrame) -> str:
    """"ResNet-34" for a model's rows (its ``arch``), the id when unknown."""
    arch = frame.loc[frame.model_id == model_id, "arch"]
    return ARCH_LABELS.get(arch.iloc[0], arch.iloc[0]) if len(arch) else model_id


def setting(config: CamFaithfulnessConfig) -> str:
    """The substitutes for the document's setting, named for every note."""
    archs = ", ".join(ARCH_LABELS.get(a, a) for a in config.archs)
    if config.folder is not None:
        data = f"the user's images at {config.folder.root} ({config.folder.size} px)"
    else:
        classes = config.data.params.get("classes")
        drawn = f"{len(classes)} of the ten classes" if classes else "ten classes"
        data = (f"stand-in task: embedded synthetic cells ({config.data.kind}, {drawn}, "
                f"{config.data.size} px) for CRC / HAM10000 / Covid-19 / BreakHis")
    return (f"{data}; {archs} at width {config.width:g}, trained from scratch (the document "
            "fine-tuned ImageNet VGG-19 / ResNet-34 / ResNet-50; no ImageNet weights here)")


def trained_models(summaries: pd.DataFrame, head: str | None = None) -> list[str]:
    """The models with test scores (trained ones), optionally of one ``head``."""
    rows = summaries[summaries.metric == "classification"]
    if head is not None:
        rows = rows[rows["head"] == head]
    return sorted(set(rows.model_id))


# ---------------------------------------------------------------- table 1

def row_words(head: str, choice: str) -> tuple[str, str]:
    """(claim prefix, section) of a table-1 row."""
    last = "yes" if choice == "last" else "no"
    prefix = f"{STRUCTURES[head]}, gradients w.r.t. the last conv layer: {last}"
    section = {(GAP, "last"): "section 3.1, propositions 1–3, table 1",
               (FLATTEN, "last"): "section 3.2, proposition 4, table 1"}.get(
        (head, choice), "section 3.2, table 1")
    return prefix, section


def identity_groups(identities: pd.DataFrame, method: str, output: str) -> dict[str, np.ndarray]:
    """Per model, the per-image values of one ``cam_identities`` output of one method."""
    rows = identities[(identities.method == method) & (identities.output == output)]
    return {m: part.value.to_numpy() for m, part in rows.groupby("model_id", sort=True)}


def identity_finding(groups: dict[str, np.ndarray], claim: str, section: str, document: str,
                     holds: bool, what: str, identities: pd.DataFrame,
                     config: CamFaithfulnessConfig, scale: str) -> Finding:
    """A table-1 finding: the worst model's median of ``groups`` against the tolerance; ``holds``:
    the claim is an identity (value 0) rather than a difference."""
    tol = config.table1.tolerance
    interval = worst_median(list(groups.values()), "max" if holds else "min",
                            rng_for(NAME, claim, seed=config.seed))
    medians = ", ".join(f"{model_name(m, identities)} {np.median(v):.2g}"
                        for m, v in groups.items())
    layers = ", ".join(sorted(set(identities.layer)))
    note = (f"{what} of the raw maps at {layers}, median per model ({medians}); the claim "
            f"{'holds when the largest' if holds else 'holds when the smallest'} median lies "
            f"{'below' if holds else 'above'} the tolerance {tol:g}; an identity of any weights, "
            "not gated")
    return finding(NAME, claim, section, document, interval, scale=scale, bound=tol,
                   side="below" if holds else "above", note=note, min_n=1)


def table_1(results: pd.DataFrame, config: CamFaithfulnessConfig, scale: str) -> list[Finding]:
    """Every row of table 1 (three findings each) and propositions 1–3 with CAM/(D1·D2)."""
    rows = results[results.metric == "cam_identities"]
    out = []
    for (head, choice), (equivalent, contributes) in DOCUMENT_TABLE_1.items():
        prefix, section = row_words(head, choice)
        document = verdict(equivalent, contributes)
        part = rows[(rows["head"] == head) & (rows.layer_choice == choice)]
        if head != DENSE:
            part = part[part.trained.astype(bool)]
        checks = [(GRADCAM, "distance_to_hirescam", equivalent,
                   f"Grad-CAM and HiResCAM are {'' if equivalent else 'not '}equivalent",
                   "relative L1 distance ‖G − H‖₁ / (‖G‖₁ + ‖H‖₁)")]
        checks += [(m, "contribution_error", m in contributes,
                    f"{m} {'contributes' if m in contributes else 'does not contribute'} to the "
                    "class score", f"{m}'s contribution error {CONTRIBUTION}")
                   for m in (GRADCAM, HIRESCAM)]
        for method, output, holds, words, what in checks:
            claim = f"{prefix}: {words}"
            groups = identity_groups(part, method, output)
            if not groups:
                out.append(not_testable(NAME, claim, section, document,
                                        f"no cam_identities rows for {STRUCTURES[head]} at "
                                        f"layer choice {choice!r} (heads {config.heads})",
                                        scale=scale))
                continue
            out.append(identity_finding(groups, claim, section, document, holds, what, part,
                                        config, scale))
        if (head, choice) == (GAP, "last"):
            out += propositions(part, prefix, config, scale)
    return out


def propositions(part: pd.DataFrame, prefix: str, config: CamFaithfulnessConfig, scale: str
                 ) -> list[Finding]:
    """Propositions 1–3 with CAM/(D1·D2) on the CAM architecture at its GAP input."""
    cam_error = identity_groups(part, CAM, "contribution_error")
    cam_distance = identity_groups(part, CAM, "distance_to_hirescam")
    gradcam_distance = identity_groups(part, GRADCAM, "distance_to_hirescam")
    bound = {m: cam_distance[m] + gradcam_distance[m]
             for m in cam_distance if m in gradcam_distance
             and len(cam_distance[m]) == len(gradcam_distance[m])}
    specs = [
        (cam_error, "proposition 1: the CAM explanations reflect the class score calculation "
         "(Σ CAM/(D1·D2) = s − b)", "section 3.1, proposition 1",
         f"CAM/(D1·D2)'s contribution error {CONTRIBUTION}"),
        (bound, "proposition 2: Grad-CAM is a generalization of CAM (Grad-CAM = CAM/(D1·D2))",
         "section 3.1, proposition 2",
         "d(Grad-CAM, HiResCAM) + d(CAM/(D1·D2), HiResCAM) of relative L1 distances (bounds "
         "d(Grad-CAM, CAM/(D1·D2)) up to the square of the tolerance)"),
        (cam_distance, "proposition 3: HiResCAM is a generalization of CAM (HiResCAM = "
         "CAM/(D1·D2))", "section 3.1, proposition 3",
         "relative L1 distance of CAM/(D1·D2) to HiResCAM")]
    out = []
    for groups, words, section, what in specs:
        claim = f"{prefix}: {words}"
        if not groups:
            out.append(not_testable(NAME, claim, section, "identical explanations",
                                    "no CAM rows (no Conv–GAP model at the last layer)",
                                    scale=scale))
            continue
        out.append(identity_finding(groups, claim, section, "identical explanations", True,
                                    what, part, config, scale))
    return out


# ---------------------------------------------------------------- metrics on GAP heads

def gap_metrics_equal(results: pd.DataFrame, config: CamFaithfulnessConfig, scale: str
                      ) -> Finding:
    """Grad-CAM and HiResCAM score alike on the Conv–GAP models (props. 2–3)."""
    claim = ("On the CAM architecture Grad-CAM and HiResCAM yield identical explanations, so "
             "AOPC, max-sensitivity and HAAS score them alike")
    section, document = "section 3.1, propositions 2–3", "identical (difference 0)"
    rows = results[(results["head"] == GAP) & (
        ((results.metric == "aopc") & (results.output == "aopc"))
        | ((results.metric == "max_sensitivity") & (results.output == "max_sensitivity"))
        | ((results.metric == "haas") & (results.output == "correct_ha")))]
    if rows.empty:
        return not_testable(NAME, claim, section, document,
                            "no AOPC, max-sensitivity or HAAS rows of a Conv–GAP model",
                            scale=scale)
    keys = ["model_id", "metric", "heatmap", "document_radius", "sample_id"]
    rows = rows.reindex(columns=list(dict.fromkeys([*keys, "method", "value"])))
    rows = rows.assign(heatmap=rows.heatmap.fillna("-"),
                       document_radius=rows.document_radius.fillna(-1.0))
    wide = rows.pivot_table(index=keys, columns="method", values="value").dropna()
    if not {GRADCAM, HIRESCAM} <= set(wide.columns):
        return not_testable(NAME, claim, section, document, "Grad-CAM or HiResCAM not scored",
                            scale=scale)
    g, h = wide[GRADCAM].to_numpy(), wide[HIRESCAM].to_numpy()
    total = np.abs(g) + np.abs(h)
    relative = np.divide(np.abs(g - h), total, out=np.zeros_like(total), where=total > 0)
    models = wide.index.get_level_values("model_id")
    groups = {m: relative[models == m] for m in sorted(set(models))}
    interval = worst_median(list(groups.values()), "max", rng_for(NAME, claim, seed=config.seed))
    note = (f"per image and metric value (AOPC per heatmap size, max-sensitivity per radius, "
            f"HAAS correctness), |G − H| / (|G| + |H|); the largest of the models' medians, "
            f"below {config.metric_tolerance:g}; largest single value {relative.max():.2g}; "
            f"a consequence of an identity: not gated; {setting(config)}")
    return finding(NAME, claim, section, document, interval, scale=scale,
                   bound=config.metric_tolerance, side="below", note=note, min_n=1)


# ---------------------------------------------------------------- Flatten heads

def per_image(results: pd.DataFrame, metric: str, output: str, head: str = FLATTEN
              ) -> pd.DataFrame:
    """(model_id, sample_id) × method: a metric's per-image values of ``head`` models averaged
    over its factor levels (heatmap sizes, radii)."""
    rows = results[(results["head"] == head) & (results.metric == metric)
                   & (results.output == output)]
    if rows.empty:
        return pd.DataFrame(columns=[GRADCAM, HIRESCAM])
    return rows.groupby(["model_id", "sample_id", "method"]).value.mean().unstack("method")


def per_model(results: pd.DataFrame, values: pd.Series) -> str:
    """"ResNet-34 +0.012, VGG-19 (BN) −0.004": a per-(model, image) series averaged per model."""
    means = values.groupby(level="model_id").mean()
    return ", ".join(f"{model_name(m, results)} {v:+.3g}" for m, v in means.items())


def gated(config: CamFaithfulnessConfig, summaries: pd.DataFrame, models: Sequence[str]) -> Gate:
    return gate(summaries, config.accuracy_gate, GATE_OUTPUT, models=models)


def aopc_higher(results, summaries, config, scale) -> Finding:
    claim = ("HiResCAM attribution maps are at least as good (informative) as the Grad-CAM "
             "attribution maps: AOPC favours HiResCAM on Conv–Flatten models")
    section = "sections 4.3 and 5.2, tables 5 and 10"
    models = trained_models(summaries, FLATTEN)
    frame = per_image(results, "aopc", "aopc")
    if not models or frame.empty:
        return not_testable(NAME, claim, section, DOCUMENT_AOPC, "no AOPC rows of a "
                            "Conv–Flatten model", scale=scale)
    interval = paired_difference(frame[HIRESCAM], frame[GRADCAM],
                                 rng_for(NAME, claim, seed=config.seed))
    diff = frame[HIRESCAM] - frame[GRADCAM]
    note = (f"mean over correctly classified test images and the {len(config.aopc_regions)} "
            f"heatmap sizes of AOPC(HiResCAM) − AOPC(Grad-CAM), uniform noise "
            f"{config.aopc_noise}, class probability; per model {per_model(results, diff)}"
            f"; {setting(config)}")
    return finding(NAME, claim, section, DOCUMENT_AOPC, interval, scale=scale, bound=0.0,
                   side="above", note=note, gate_=gated(config, summaries, models),
                   models=models)


def sensitivity_lower(results, summaries, config, scale) -> Finding:
    claim = ("HiResCAM has always lower Max-Sensitivity than Grad-CAM, for all models and radii "
             "tested")
    section = "sections 4.4 and 5.2, table 6, figure 15, table 10"
    models = trained_models(summaries, FLATTEN)
    frame = per_image(results, "max_sensitivity", "max_sensitivity")
    if not models or frame.empty:
        return not_testable(NAME, claim, section, DOCUMENT_SENSITIVITY, "no max-sensitivity "
                            "rows of a Conv–Flatten model", scale=scale)
    frame = frame.dropna()
    interval = statistic_interval(lambda h, g: h.mean() / g.mean(), frame[HIRESCAM].to_numpy(),
                                  frame[GRADCAM].to_numpy(),
                                  rng=rng_for(NAME, claim, seed=config.seed))
    ratio = (frame[HIRESCAM].groupby(level="model_id").mean()
             / frame[GRADCAM].groupby(level="model_id").mean())
    by_radius = results[(results["head"] == FLATTEN) & (results.metric == "max_sensitivity")]
    cells = by_radius.pivot_table(index=["model_id", "document_radius"], columns="method",
                                  values="value", aggfunc="mean").dropna()
    lower = int((cells[HIRESCAM] < cells[GRADCAM]).sum())
    note = ("ratio of the mean max-sensitivity of HiResCAM to Grad-CAM's over the Conv–Flatten "
            "models' images and the radii of table 6 (unnormalised Frobenius distance of "
            "min–max scaled maps); per model "
            + ", ".join(f"{model_name(m, results)} {v:.3g}" for m, v in ratio.items())
            + f"; HiResCAM lower in {lower} of {len(cells)} (model, radius) cells; "
            f"{setting(config)}")
    return finding(NAME, claim, section, DOCUMENT_SENSITIVITY, interval, scale=scale, bound=1.0,
                   side="below", note=note, gate_=gated(config, summaries, models),
                   models=models)


def haas_frame(results: pd.DataFrame) -> pd.DataFrame:
    """(model_id, method, sample_id) × (correct_x, correct_ha) of the Conv–Flatten models."""
    rows = results[(results["head"] == FLATTEN) & (results.metric == "haas")]
    if rows.empty:
        return pd.DataFrame(columns=["correct_x", "correct_ha"])
    return rows.pivot_table(index=["model_id", "method", "sample_id"], columns="output",
                            values="value").dropna()


def haas_below_one(results, summaries, config, scale) -> Finding:
    claim = ("HAAS values below 1 were quite common (15 out of 16): the HA images do not "
             "improve the accuracy")
    section = "sections 4.5 and 5.3, table 7"
    models = trained_models(summaries, FLATTEN)
    frame = haas_frame(results)
    if not models or frame.empty:
        return not_testable(NAME, claim, section, DOCUMENT_HAAS, "no HAAS rows of a "
                            "Conv–Flatten model", scale=scale)
    interval = statistic_interval(lambda ha, x: ha.sum() / x.sum(), frame.correct_ha.to_numpy(),
                                  frame.correct_x.to_numpy(),
                                  rng=rng_for(NAME, claim, seed=config.seed))
    each = frame.groupby(level=["model_id", "method"]).sum()
    values = each.correct_ha / each.correct_x
    note = (f"Σ Acc(HA) / Σ Acc(x) over the first {config.n_haas} test images of each "
            f"Conv–Flatten model and both methods (maps of the predicted class, accuracy against "
            f"the true class); {int((values < 1).sum())} of {len(values)} (model, method) HAAS "
            f"values below 1 ({values.min():.3g}–{values.max():.3g}); {setting(config)}")
    return finding(NAME, claim, section, DOCUMENT_HAAS, interval, scale=scale, bound=1.0,
                   side="below", note=note, gate_=gated(config, summaries, models),
                   models=models)


def haas_neither(results, summaries, config, scale) -> Finding:
    claim = "HAAS gives scores that do not favour any algorithm"
    section = "sections 4.5 and 5.4, table 7"
    models = trained_models(summaries, FLATTEN)
    frame = haas_frame(results)
    if not models or frame.empty:
        return not_testable(NAME, claim, section, DOCUMENT_HAAS_DIFFERENCE, "no HAAS rows of a "
                            "Conv–Flatten model", scale=scale)
    wide = frame.unstack("method").dropna()
    gain = (wide["correct_ha", HIRESCAM] - wide["correct_ha", GRADCAM]).to_numpy()
    correct = wide["correct_x", HIRESCAM].to_numpy()
    interval = statistic_interval(lambda d, x: abs(d.sum() / x.sum()), gain, correct,
                                  rng=rng_for(NAME, claim, seed=config.seed))
    signed = gain.sum() / correct.sum() if correct.sum() else np.nan
    note = (f"|HAAS(HiResCAM) − HAAS(Grad-CAM)| pooled over the Conv–Flatten models' images "
            f"(signed {signed:+.3g}); 'favours neither' when the interval lies below the "
            f"equivalence margin {config.haas_margin:g}, favours one when above; "
            f"{setting(config)}")
    return finding(NAME, claim, section, DOCUMENT_HAAS_DIFFERENCE, interval, scale=scale,
                   bound=config.haas_margin, side="below", note=note,
                   gate_=gated(config, summaries, models), models=models)


def aopc_with_accuracy(results, summaries, config, scale) -> Finding:
    claim = ("Models with higher balanced accuracy have higher (HiResCAM) AOPC: an almost "
             "monotonous increasing relationship")
    section = "sections 4.6 and 5.5, figure 16"
    models = trained_models(summaries)
    rows = results[(results.metric == "aopc") & (results.output == "aopc")
                   & (results.method == HIRESCAM) & results.model_id.isin(models)]
    if rows.empty:
        return not_testable(NAME, claim, section, DOCUMENT_RHO, "no HiResCAM AOPC rows of a "
                            "trained model", scale=scale)
    aopc = rows.groupby(["model_id", "heatmap"]).value.mean().groupby(level="model_id").mean()
    scores = summaries[(summaries.metric == "classification")
                       & (summaries.output == GATE_OUTPUT)].groupby("model_id").value.mean()
    both = pd.concat([scores.rename("accuracy"), aopc.rename("aopc")], axis=1,
                     join="inner").dropna()
    interval = statistic_interval(spearman, both.accuracy.to_numpy(), both.aopc.to_numpy(),
                                  rng=rng_for(NAME, claim, seed=config.seed))
    heads = summaries.groupby("model_id")["head"].first()
    points = ", ".join(f"{model_name(m, results)} {HEAD_LABELS.get(heads.get(m), '')} "
                       f"({a:.3f}, {v:.3f})" for m, a, v in zip(both.index, both.accuracy,
                                                                 both.aopc))
    note = (f"Spearman's ρ across the trained models (both heads; the document's 8 are "
            f"Conv–Flatten) between balanced accuracy and HiResCAM's mean AOPC over heatmap "
            f"sizes, n = models: (balanced accuracy, AOPC) {points}; {setting(config)}")
    return finding(NAME, claim, section, DOCUMENT_RHO, interval, scale=scale, bound=0.0,
                   side="above", note=note, gate_=gated(config, summaries, models),
                   models=models)


# ---------------------------------------------------------------- entry points

def claims(tables: dict[str, pd.DataFrame], config: CamFaithfulnessConfig, scale: str
           ) -> list[Finding]:
    """Every finding of document 003 from this study's ``results`` and ``summaries`` frames."""
    results, summaries = tables["results"], tables["summaries"]
    out = table_1(results, config, scale)
    out.append(gap_metrics_equal(results, config, scale))
    out += [f(results, summaries, config, scale) for f in (
        aopc_higher, sensitivity_lower, haas_below_one, haas_neither, aopc_with_accuracy)]
    return out


def model_gate(tables: dict[str, pd.DataFrame], config: CamFaithfulnessConfig) -> Gate:
    """The accuracy gate of every trained model of the run (the report's gate table)."""
    return gated(config, tables["summaries"], trained_models(tables["summaries"]))


def study_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """This study's rows of the run's ``results`` and ``summaries`` tables."""
    return {t: frame[frame.study == NAME].reset_index(drop=True)
            for t, frame in ((t, read_results(run_dir, t)) for t in TABLES)}


def findings(run_dir: Path, scale: str) -> list[Finding]:
    """The findings of a cam-faithfulness run (``Study.findings``)."""
    config = CamFaithfulnessConfig.from_yaml(Path(run_dir) / "config.yaml")
    return claims(study_tables(Path(run_dir)), config, scale)
