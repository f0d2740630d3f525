"""The lrp-grid findings: document 002's claims, each computed from the run's result tables
(sections 2.1.4–2.1.5, 3, 4.1 and 4.3; equation 2.2; figures 2.5, 3.2, 4.1, 4.2 and 4.6).

**Where the optimum lies.** A claim such as "the optimal γ is near 0" is a claim about the grid
point with the best mean AUC over the explained images (lowest for MoRF, highest for LRF: the
direction each row carries). Its interval is a percentile bootstrap over images: the images are
resampled with replacement (2000 times), every grid point's mean AUC is recomputed on each
resample and that resample's optimum taken; the interval holds the 2.5 % and 97.5 % empirical
quantiles (inverted CDF, so both ends are grid values) of the optimum's coordinate. A claim that
the optimum lies in a range ``[lo, hi]`` (bounds included) agrees when the whole interval lies in
it, disagrees when the interval lies wholly outside, and is inconclusive otherwise; a grid with no
value inside the range, or none outside it, cannot tell, and the claim is not testable there.
"Near 0" is the range [0, 0.3], 0.3 being the upper end of section 4.3's refined ranges.

The other statistics over the grid (the median of the per-point mean AUCs, the spread of the
random order, the best point with γ = 0 against the best with γ > 0) are bootstrapped the same
way, images resampled jointly across grid points, composites and orders. Every γ/ε claim reads
the ``zennit`` stabiliser: the document's own LRP divides by Zennit's ``stabilize`` (its public
code, ``lrp/rules.py``). Every claim depends on the explained model, so each goes through the
accuracy gate (``gate``, issue 12: 0.80 test accuracy) unless the model is a user's pre-trained
one (``folder`` mode: nothing is trained here).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from salbench.results import read_results
from salbench.results.findings import (
    CONFIDENCE,
    N_BOOT,
    Finding,
    Gate,
    finding,
    gate,
    mean_interval,
    not_testable,
    paired_difference,
    rng_for,
)
from salbench.studies.lrp_grid.config import LrpGridConfig
from salbench.studies.lrp_grid.grid import NAME

STABILISER = "zennit"
NEAR_ZERO = (0.0, 0.3)
"""Section 4.3's "near zero", read as at most 0.3: the upper end of its refined ranges."""
REFINED = {("decreasing_gamma", "first"): (0.05, 0.3), ("decreasing_gamma", "second"): (0.01, 0.2),
           ("tutorial", "first"): (0.1, 1.0), ("tutorial", "second"): (0.4, 1.0)}
"""Section 4.3: decreasing-γ "0.05 ≤ γ ≤ 0.3 for VGG-16 layers 1-17 and 0.01 ≤ γ ≤ 0.2 for
layers 18-24" (fig. 4.1d); tutorial "roughly 0.1 ≤ γ ≤ 1 and 0.4 ≤ ε ≤ 1" (fig. 4.2a)."""
FLAT = 0.1
"""The random order is "constant" over the grid when its spread of mean AUCs is under 10 % of
the MoRF order's spread on the same images (figs. 4.1c, 4.2c)."""
EXPLODED = 10.0
"""An unstable map (section 2.1.4: relevance "concentrated by several orders of magnitude",
conservation violated): not finite, or |Σ R − f_y(x)| > 10 |f_y(x)|."""
CONSERVED = 0.1
"""Conservation (eq. 2.2) holds when the mean |Σ_i R_i / f_y(x) − 1| is under 0.1."""
AXES = {("decreasing_gamma", "first"): "γ₁", ("decreasing_gamma", "second"): "γ₂",
        ("tutorial", "first"): "γ", ("tutorial", "second"): "ε"}
FACTORS = ("composite", "stabiliser", "first", "second", "order", "setting")


# ---------------------------------------------------------------- grids of AUC per image


@dataclass(frozen=True)
class GridAUC:
    """Region-perturbation AUC of each explained image (rows, ``samples``) at each grid point
    (columns, coordinates ``first`` and ``second``) for one composite, stabiliser and order;
    ``direction``: the rows' (``lower``, ``higher`` or ``none``)."""

    values: np.ndarray
    first: np.ndarray
    second: np.ndarray
    samples: list[str]
    direction: str

    @property
    def n(self) -> int:
        return len(self.samples)


def auc_grid(results: pd.DataFrame, composite: str, order: str,
             stabiliser: str = STABILISER) -> GridAUC | None:
    """The :class:`GridAUC` of ``composite``/``order``/``stabiliser``, the images scored at every
    grid point only; ``None`` when no row matches."""
    rows = results[(results.metric == "region_perturbation") & (results.output == "auc")
                   & (results.composite == composite) & (results.stabiliser == stabiliser)
                   & (results.order == order)]
    if rows.empty:
        return None
    directions = rows.direction.unique()
    if len(directions) != 1:
        raise ValueError(f"{composite} {order} rows carry directions {sorted(directions)}")
    table = rows.pivot_table(index="sample_id", columns=["first", "second"], values="value",
                             aggfunc="mean").dropna()
    first, second = (np.asarray(table.columns.get_level_values(k), dtype=np.float64)
                     for k in ("first", "second"))
    return GridAUC(table.to_numpy(np.float64), first, second, [str(s) for s in table.index],
                   str(directions[0]))


def aligned(*grids: GridAUC) -> tuple[GridAUC, ...]:
    """The grids restricted to the images they all hold (same row order)."""
    common = sorted(set.intersection(*(set(g.samples) for g in grids)))
    out = []
    for g in grids:
        rows = [g.samples.index(s) for s in common]
        out.append(replace(g, values=g.values[rows], samples=common))
    return tuple(out)


def oriented(means: np.ndarray, direction: str) -> np.ndarray:
    """Mean AUCs turned so that higher is better (negated where lower is better)."""
    if direction not in ("lower", "higher"):
        raise ValueError(f"an AUC that ranks nothing (direction {direction!r}) has no optimum")
    return -means if direction == "lower" else means


# ---------------------------------------------------------------- bootstrap over images


def bootstrap_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    """``[N_BOOT, n]`` resampling weights: entry (b, i) is how often resample b draws image i,
    over n, so ``weights @ values`` holds each resample's mean per grid point. Resample b draws
    ⌊u·n⌋ with u = ``rng.random(n)``, as :func:`salbench.results.stats.bootstrap_ci` does."""
    idx = (rng.random((N_BOOT, n)) * n).astype(np.intp)
    weights = np.zeros((N_BOOT, n))
    np.add.at(weights, (np.arange(N_BOOT)[:, None], idx), 1.0)
    return weights / n


def quantile_interval(value: float, draws: np.ndarray, n: int
                      ) -> tuple[float, float, float, int]:
    """(value, low, high, n) with the 95 % empirical quantiles (inverted CDF) of ``draws``."""
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0 or not np.isfinite(value):
        return (float(value), np.nan, np.nan, n)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha], method="inverted_cdf")
    return (float(value), float(low), float(high), n)


def grid_interval(statistic, grids: tuple[GridAUC, ...], rng: np.random.Generator
                  ) -> tuple[float, float, float, int]:
    """``statistic`` of the grids' per-point mean AUCs (one ``[..., P]`` array per grid,
    vectorised over the leading axes) with its bootstrap interval, images resampled jointly
    across the grids (which must hold the same images)."""
    n = grids[0].n
    if n < 2:
        return (np.nan, np.nan, np.nan, n)
    value = float(statistic(*(g.values.mean(0) for g in grids)))
    weights = bootstrap_weights(n, rng)
    return quantile_interval(value, statistic(*(weights @ g.values for g in grids)), n)


@dataclass(frozen=True)
class Optimum:
    """The best grid point on all images (``index``) and on each bootstrap resample
    (``draws``)."""

    grid: GridAUC
    index: int
    draws: np.ndarray

    def coordinate(self, axis: str) -> tuple[float, float, float, int]:
        """(value, low, high, n) of the optimum's ``first`` or ``second`` coordinate."""
        values = getattr(self.grid, axis)
        return quantile_interval(values[self.index], values[self.draws], self.grid.n)

    def largest(self) -> tuple[float, float, float, int]:
        """(value, low, high, n) of max(first, second) at the optimum."""
        values = np.maximum(self.grid.first, self.grid.second)
        return quantile_interval(values[self.index], values[self.draws], self.grid.n)

    def describe(self) -> str:
        """The optimum, its mean AUC and the most frequent optima of the resamples."""
        g = self.grid
        mean = g.values.mean(0)[self.index]
        points, counts = np.unique(self.draws, return_counts=True)
        top = np.argsort(-counts)[:3]
        shares = ", ".join(f"({g.first[points[k]]:.3g}, {g.second[points[k]]:.3g}) "
                           f"{counts[k] / len(self.draws):.0%}" for k in top)
        return (f"optimum ({g.first[self.index]:.3g}, {g.second[self.index]:.3g}), mean AUC "
                f"{mean:.4g} over {g.n} images; bootstrap optima {shares}")


def optimum(grid: GridAUC, rng: np.random.Generator) -> Optimum:
    """The grid's :class:`Optimum` in the direction its rows carry."""
    weights = bootstrap_weights(grid.n, rng) if grid.n >= 2 else np.zeros((0, grid.n))
    return Optimum(grid, int(np.argmax(oriented(grid.values.mean(0), grid.direction))),
                   np.argmax(oriented(weights @ grid.values, grid.direction), axis=1))


# ---------------------------------------------------------------- verdicts


def in_range(low: float, high: float, lo: float, hi: float) -> str:
    """The verdict of an interval [low, high] for "the value lies in [lo, hi]"."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not testable here"
    if lo <= low and high <= hi:
        return "agrees"
    if high < lo or low > hi:
        return "disagrees"
    return "inconclusive"


def range_finding(claim: str, section: str, document: str, interval, bounds: tuple[float, float],
                  values: np.ndarray, *, scale: str, note: str, gate_: Gate | None,
                  models: list[str]) -> Finding:
    """A :func:`finding` for "the value lies in ``bounds``", decided by :func:`in_range`; not
    testable when the grid ``values`` hold nothing inside the range or nothing outside it."""
    lo, hi = bounds
    inside = (values >= lo) & (values <= hi)
    if not inside.any() or inside.all():
        where = "inside" if not inside.any() else "outside"
        return not_testable(NAME, claim, section, document,
                            f"{note}; the grid {sorted(set(values.round(6)))} holds no value "
                            f"{where} [{lo:g}, {hi:g}]", scale=scale)
    out = finding(NAME, claim, section, document, interval, scale=scale, note=note,
                  gate_=gate_, models=models)
    if out.verdict == "not testable here":
        return out
    return replace(out, verdict=in_range(out.low, out.high, lo, hi))


# ---------------------------------------------------------------- what the run used


def model_gate(summaries: pd.DataFrame, config: LrpGridConfig) -> Gate | None:
    """The explained model's accuracy gate; none for a user's pre-trained model (folder)."""
    if config.folder is not None:
        return None
    return gate(summaries, config.gate, "accuracy", models=[config.arch])


def setting_note(summaries: pd.DataFrame, config: LrpGridConfig) -> str:
    """The substitutes for the document's setting (ImageNet VGG-16 on 50 axolotl images)."""
    pf = (f"region perturbation: {config.patch}×{config.patch} patches, {config.fill}, "
          f"{config.steps} schedule, {config.score}")
    if config.folder is not None:
        return (f"{config.arch} with weights {config.weights} on the images of {config.folder} "
                f"(no accuracy gate: nothing trained here); {pf}")
    rows = summaries[(summaries.metric == "classification") & (summaries.model_id == config.arch)]
    init = (str(rows["init"].dropna().iloc[0]) if "init" in rows and rows["init"].notna().any()
            else "none")
    start = "from ImageNet weights" if init == "imagenet" else "from scratch (no ImageNet weights)"
    bn = ", batch norm merged into the convolutions by Zennit's canonizer" \
        if config.arch.endswith("_bn") else ""
    return (f"substitutes: the embedded synthetic cells ({config.data.size} px, "
            f"{config.n_samples} test images of class {config.explain_class}) for the 50 ImageNet "
            f"axolotl images, a {config.arch} (width {config.width:g}) trained here {start}{bn} "
            f"for torchvision's ImageNet VGG-16; {pf}")


# ---------------------------------------------------------------- the claims


def stability_findings(results: pd.DataFrame, config: LrpGridConfig, common: dict
                       ) -> list[Finding]:
    """Section 2.1.4 / fig. 2.5: the vanilla stabiliser is unstable; eq. 2.2 / fig. 3.2: each
    composite conserves relevance at its published default."""
    claim = ("Without heuristics in the denominator (vanilla: z + ε) LRP is numerically unstable "
             "in a grid search: patches where relevance concentrates by orders of magnitude, "
             "conservation violated")
    section, document = "2.1.4–2.1.5, fig. 2.5", "vanilla unstable, zennit stable"
    out = []
    present = sorted(results[results.metric == "finite"].stabiliser.dropna().unique())
    if not {"vanilla", STABILISER} <= set(present):
        out.append(not_testable(NAME, claim, section, document,
                                f"needs maps with the vanilla and {STABILISER} stabilisers; this "
                                f"run has {present}", scale=common["scale"]))
    else:
        share = unstable_share(results)
        interval = paired_difference(share.get("vanilla", pd.Series(dtype=float)),
                                     share.get(STABILISER, pd.Series(dtype=float)),
                                     rng_for(NAME, "vanilla"))
        detail = ", ".join(f"{k} {v.mean():.1%}" for k, v in share.items())
        out.append(finding(NAME, claim, section, document, interval, bound=0.0, side="above",
                           note=f"measured: share of unstable maps (not finite, or |ΣR − f| > "
                                f"{EXPLODED:g}|f|) per image over every grid point of both "
                                f"composites, vanilla minus {STABILISER}, paired over images "
                                f"(per stabiliser: {detail}); {common['note']}",
                           **common["gated"]))
    for composite in config.composites:
        claim = (f"Relevance is conserved, Σ_i R_i = f(x) (eq. 2.2), verified for LRP "
                 f"{composite.replace('_', '-')} at its published hyperparameters")
        ratios = results[(results.metric == "layer_conservation")
                         & (results.output == "input_ratio") & (results.composite == composite)
                         & (results.stabiliser == STABILISER)
                         & (results.setting == "default")]
        interval = mean_interval((ratios.value - 1).abs().to_numpy(),
                                 rng_for(NAME, "conservation", composite))
        out.append(finding(NAME, claim, "3, eq. 2.2, fig. 3.2", "Σ R = f(x)", interval,
                           bound=CONSERVED, side="below",
                           note=f"measured: mean |Σ_i R_i / f_y(x) − 1| over the explained "
                                f"images, {STABILISER} stabiliser (agrees below {CONSERVED:g}); "
                                f"{common['note']}", **common["gated"]))
    return out


def unstable_share(results: pd.DataFrame) -> dict[str, pd.Series]:
    """Per stabiliser, each image's share of unstable maps (see :data:`EXPLODED`) over the grid
    points of every composite."""
    keys = ["stabiliser", "composite", "first", "second", "sample_id"]
    finite = results[(results.metric == "finite") & (results.output == "finite")][
        [*keys, "value"]].rename(columns={"value": "finite"})
    error = results[(results.metric == "conservation")
                    & (results.output == "conservation_error")][[*keys, "value"]]
    maps = finite.merge(error.rename(columns={"value": "error"}), on=keys, how="left")
    maps["unstable"] = ((maps.finite < 1) | (maps.error > EXPLODED)).astype(float)
    return {s: part.groupby("sample_id").unstable.mean()
            for s, part in maps.groupby("stabiliser")}


def morf_optimum_findings(results: pd.DataFrame, config: LrpGridConfig, common: dict
                          ) -> list[Finding]:
    """Section 4.3, figs. 4.1a/4.1d and 4.2a: where the MoRF optimum of each composite lies, and
    that γ > 0 beats LRP-0 (γ = 0) in the tutorial composite."""
    out = []
    layers = ("11-17" if config.decreasing_gamma_layers == "table" else "1-17")
    dg = auc_grid(results, "decreasing_gamma", "morf")
    if dg is not None and dg.n:
        best = optimum(dg, rng_for(NAME, "optimum", "decreasing_gamma", "morf"))
        note = (f"{best.describe()}; γ₁ acts on VGG-16 modules {layers}; {common['note']}")
        out.append(range_finding(
            "For LRP decreasing-γ and PF MoRF, the optimal hyperparameters are found near zero",
            "4.3, fig. 4.1a", "near 0 (≤ 0.3 here)", best.largest(), NEAR_ZERO,
            np.maximum(dg.first, dg.second),
            note=f"measured: max(γ₁, γ₂) at the MoRF optimum; {note}", **common["gated"]))
        for axis, modules in (("first", "1-17"), ("second", "18-24")):
            lo, hi = REFINED[("decreasing_gamma", axis)]
            name = AXES[("decreasing_gamma", axis)]
            out.append(range_finding(
                f"According to fig. 4.1d, the precise optimal values for γ are {lo:g} ≤ γ ≤ "
                f"{hi:g} for VGG-16 layers {modules}", "4.3, fig. 4.1d",
                f"{lo:g} ≤ {name} ≤ {hi:g}", best.coordinate(axis), (lo, hi),
                getattr(dg, axis), note=f"measured: {name} of the MoRF optimum; {note}",
                **common["gated"]))
    tu = auc_grid(results, "tutorial", "morf")
    if tu is not None and tu.n:
        best = optimum(tu, rng_for(NAME, "optimum", "tutorial", "morf"))
        for axis in ("first", "second"):
            lo, hi = REFINED[("tutorial", axis)]
            name = AXES[("tutorial", axis)]
            out.append(range_finding(
                "For LRP tutorial and PF MoRF, the optimal hyperparameters are roughly "
                "0.1 ≤ γ ≤ 1 and 0.4 ≤ ε ≤ 1", "4.3, fig. 4.2a", f"{lo:g} ≤ {name} ≤ {hi:g}",
                best.coordinate(axis), (lo, hi), getattr(tu, axis),
                note=f"measured: {name} of the MoRF optimum; {best.describe()}; "
                     f"{common['note']}", **common["gated"]))
        out.append(gamma_improvement(tu, common))
    return out


def gamma_improvement(tu: GridAUC, common: dict) -> Finding:
    """Section 4.3: "LRP_γ provides a measurable improvement over LRP_0, which is equivalent to
    LRP_γ=0" (tutorial composite, MoRF)."""
    claim = ("LRP-γ provides a measurable improvement over LRP-0, which is equivalent to "
             "LRP-γ with γ = 0 (tutorial composite, PF MoRF)")
    zero, positive = tu.first == 0, tu.first > 0
    if not zero.any() or not positive.any():
        return not_testable(NAME, claim, "4.3, fig. 4.2a", "γ > 0 better",
                            "the grid needs γ = 0 and γ > 0", scale=common["scale"])

    def gain(means: np.ndarray) -> np.ndarray:
        better = oriented(means, tu.direction)
        return better[..., positive].max(-1) - better[..., zero].max(-1)

    interval = grid_interval(gain, (tu,), rng_for(NAME, "gamma-gain"))
    return finding(NAME, claim, "4.3, fig. 4.2a", "γ > 0 better", interval, bound=0.0,
                   side="above",
                   note=f"measured: best mean MoRF AUC over the points with γ = 0 minus the best "
                        f"over γ > 0 (> 0: γ > 0 better; the γ > 0 side has more points to pick "
                        f"from), bootstrap over {tu.n} images; {common['note']}",
                   **common["gated"])


def lrf_findings(results: pd.DataFrame, config: LrpGridConfig, common: dict) -> list[Finding]:
    """Section 4.3, figs. 4.1b and 4.2b: γ = 0 is optimal for PF LRF."""
    out = []
    for composite, figure in (("decreasing_gamma", "4.1b"), ("tutorial", "4.2b")):
        grid = auc_grid(results, composite, "lrf")
        if grid is None or not grid.n:
            continue
        best = optimum(grid, rng_for(NAME, "optimum", composite, "lrf"))
        if composite == "decreasing_gamma":
            interval, values = best.largest(), np.maximum(grid.first, grid.second)
            what, document = "max(γ₁, γ₂)", "γ₁ = γ₂ = 0"
        else:
            interval, values, what, document = best.coordinate("first"), grid.first, "γ", "γ = 0"
        out.append(range_finding(
            f"The optimal scores for PF LRF are where the least positive contributions are "
            f"preferred, which is when γ = 0 (LRP {composite.replace('_', '-')})",
            f"4.3, fig. {figure}", document, interval, (0.0, 0.0), values,
            note=f"measured: {what} at the LRF optimum (highest AUC); {best.describe()}; "
                 f"{common['note']}", **common["gated"]))
    return out


def random_findings(results: pd.DataFrame, config: LrpGridConfig, common: dict
                    ) -> list[Finding]:
    """Section 4.3, figs. 4.1c and 4.2c: the random order is constant over the grid."""
    out = []
    for composite, figure in (("decreasing_gamma", "4.1c"), ("tutorial", "4.2c")):
        claim = (f"Plots for PF random are constant: the choice of hyperparameters is independent "
                 f"of the performance of PF random (LRP {composite.replace('_', '-')})")
        random, morf = (auc_grid(results, composite, order) for order in ("random", "morf"))
        if random is None or morf is None:
            continue
        interval = grid_interval(relative_spread, aligned(random, morf),
                                 rng_for(NAME, "random-flat", composite))
        out.append(finding(NAME, claim, f"4.1, 4.3, fig. {figure}", "constant", interval,
                           bound=FLAT, side="below",
                           note=f"measured: spread (max − min over the grid) of the mean random "
                                f"AUC over the spread of the mean MoRF AUC on the same images "
                                f"(agrees below {FLAT:g}); the random order's patch permutation "
                                f"comes from the seed, not the map, so each image's random curve "
                                f"is the same at every grid point by construction; "
                                f"{common['note']}", **common["gated"]))
    return out


def relative_spread(random: np.ndarray, morf: np.ndarray) -> np.ndarray:
    """Spread (max − min over the grid) of the random order's mean AUCs over the MoRF order's
    (NaN where MoRF's is 0)."""
    scale = np.ptp(morf, axis=-1)
    return np.ptp(random, axis=-1) / np.where(scale > 0, scale, np.nan)


def median_advantage(first: np.ndarray, second: np.ndarray, direction: str) -> np.ndarray:
    """Median over the grid of the first composite's mean AUCs minus the second's, signed so that
    > 0 means the first is better in ``direction``."""
    return (np.median(oriented(first, direction), axis=-1)
            - np.median(oriented(second, direction), axis=-1))


def composite_findings(results: pd.DataFrame, config: LrpGridConfig, common: dict
                       ) -> list[Finding]:
    """Section 4.3 / fig. 4.6: LRP tutorial has the better AUC distribution than decreasing-γ,
    for MoRF and for LRF."""
    out = []
    for order, label in (("morf", "MoRF"), ("lrf", "LRF")):
        grids = [auc_grid(results, c, order) for c in ("tutorial", "decreasing_gamma")]
        if any(g is None for g in grids):
            continue
        tu, dg = aligned(*grids)
        if tu.direction != dg.direction:
            raise ValueError(f"{order} rows carry directions {tu.direction} and {dg.direction}")
        interval = grid_interval(partial(median_advantage, direction=tu.direction), (tu, dg),
                                 rng_for(NAME, "composites", order))
        out.append(finding(
            NAME, f"For PF {label}, LRP tutorial achieves the best quantitative results compared "
                  f"to LRP decreasing-γ", "4.3, fig. 4.6", "tutorial better", interval,
            bound=0.0, side="above",
            note=f"measured: median over the grid of the per-point mean {label} AUC, tutorial "
                 f"minus decreasing-γ, signed so that > 0 means tutorial better (lower MoRF, "
                 f"higher LRF AUC), bootstrap over {tu.n} images; {common['note']}",
            **common["gated"]))
    return out


def claims(tables: dict[str, pd.DataFrame], config: LrpGridConfig, scale: str) -> list[Finding]:
    """Every claim of document 002 tested on the run's ``results`` and ``summaries`` tables (the
    frames of :func:`salbench.results.read_results`, this study's rows)."""
    results, summaries = tables["results"], tables["summaries"]
    results = results.reindex(columns=[*results.columns,
                                       *(f for f in FACTORS if f not in results.columns)])
    gate_ = model_gate(summaries, config)
    note = setting_note(summaries, config)
    common = {"scale": scale, "note": note,
              "gated": {"scale": scale, "gate_": gate_, "models": [config.arch]}}
    if results.empty:
        return [not_testable(NAME, "document 002's claims", "4", "", "no result rows",
                             scale=scale)]
    return (stability_findings(results, config, common)
            + morf_optimum_findings(results, config, common)
            + lrf_findings(results, config, common)
            + random_findings(results, config, common)
            + composite_findings(results, config, common))


def findings(run_dir: Path, scale: str) -> list[Finding]:
    """The findings of the lrp-grid run in ``run_dir`` (its config and result tables)."""
    config = LrpGridConfig.from_yaml(Path(run_dir) / "config.yaml")
    tables = {t: read_results(run_dir, t) for t in ("results", "summaries")}
    return claims({t: f[f.study == NAME] for t, f in tables.items()}, config, scale)
