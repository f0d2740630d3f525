"""The HTML page of ``salbench meta``: the trust table, the intervals behind it and the metrics'
agreement matrix (``OUT/report/index.html``, tables also as CSV in ``OUT/report/tables/``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from salbench.report import Figure, Section, Table, figures, render_page
from salbench.studies.meta.maps import DEGRADED

KIND_HEADINGS = {"noise_0.25": "noise σ=.25", "noise_0.5": "noise σ=.5", "noise_1": "noise σ=1",
                 "shuffled": "shuffled", "uniform_random": "random map",
                 "random_model": "random model"}


def trust_frame(trust: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trust table as shown: per score its direction, the paired dominance δ of the
    ground-truth map over each degraded kind, resilience, seed spread, cost and verdict; and the
    cells to bold (δ whose 95 % interval lies above 0, the trusted verdicts)."""
    kinds = [k for k in DEGRADED if f"effect:{k}" in trust.columns]
    shown = pd.DataFrame({"metric / output": trust["score"], "direction": trust["direction"]})
    for kind in kinds:
        shown[f"δ {KIND_HEADINGS[kind]}"] = trust[f"effect:{kind}"]
    shown["resilience"] = trust["resilience"]
    shown["seed sd"] = trust["seed_sd"]
    shown["forward passes / map"] = trust["forward"]
    shown["ms / map"] = 1000 * trust["seconds_per_map"]
    shown["verdict"] = trust["verdict"]
    shown["reason"] = trust["reason"]
    bold = shown.assign(**dict.fromkeys(shown.columns, False))
    for kind in kinds:
        bold[f"δ {KIND_HEADINGS[kind]}"] = trust[f"low:{kind}"] > 0
    bold["verdict"] = trust["verdict"] == "trust"
    return shown, bold


GOOD_MAPS = {"mask": "the ground-truth mask as a map (good for the data by construction)",
             "linear": "a linear model fitted to the samples, its exact map for each metric as "
                       "the good map (good for that model by construction)"}


def meta_section(result, title: str = "Which metrics to trust") -> Section:
    """One section of the page from a :class:`~salbench.studies.meta.MetaResult`."""
    trust, discrimination, settings = result.trust, result.discrimination, result.settings
    reference = settings.get("reference", "mask")
    shown, bold = trust_frame(trust)
    counts = trust["verdict"].value_counts()
    text = (f"{len(trust)} metric outputs scored on {settings.get('n_samples')} samples × "
            f"{len(settings.get('seeds', []))} seeds, on {GOOD_MAPS[reference]} and on degraded "
            "maps: "
            + ", ".join(KIND_HEADINGS[k] for k in DEGRADED if k in settings.get("kinds", []))
            + ". Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".")
    if reference == "mask" and "model_accuracy" in settings:
        accuracy, gate = settings["model_accuracy"], settings["accuracy_gate"]
        text += f" The model classifies {accuracy:.0%} of these samples correctly (gate {gate:.0%})"
        text += (": under its accuracy gate, so the metrics that read the model are not testable "
                 "here (a model that has not learned makes every perturbation curve look blind)."
                 if accuracy < gate else ".")
    if reference == "linear":
        text += (f" The linear model classifies {settings['linear_train_accuracy']:.0%} of the "
                 "samples it was fitted to correctly; its maps are exact whatever its accuracy."
                 " Good map per metric: " + "; ".join(
                     f"{name}: {how}" for name, how in settings.get("good_maps", {}).items())
                 + " (r: the image the metric puts where it removes a pixel).")
    if result.skipped:
        text += "\n\nSkipped: " + "; ".join(f"{k}: {v}" for k, v in result.skipped.items())
    good = "good" if reference == "linear" else "ground-truth"
    intervals = discrimination.assign(kind=discrimination["kind"].map(KIND_HEADINGS))
    name = "" if reference == "mask" else f"-{reference}"
    tables = [Table(shown, f"{title}. δ: paired dominance of the {good} map over each degraded "
                    "map (bold: its 95 % bootstrap interval lies above 0); resilience: 1 − the "
                    f"mean change under the worse of rescaling and jitter over the gap between "
                    f"the {good} and the random map (at least 0); seed sd: the largest standard "
                    "deviation of δ over the seeds.",
                    name=f"trust{name}", digits=3, bold=bold, collapse_after=100),
              Table(intervals, "δ per score and degraded kind with its 95 % interval over n "
                    f"samples; share: the fraction of (sample, seed) pairs the {good} map wins.",
                    name=f"discrimination{name}", digits=3)]
    fig = figures.heatmap(result.agreement,
                          title="Spearman ρ between the metrics over every scored map",
                          colorbar_label="ρ (lower-is-better negated: ρ > 0 agrees)")
    return Section(title, text, tables=tables,
                   figures=[Figure(fig, "Agreement between the metrics over all scored maps.",
                                   name=f"agreement{name}", embed="svg")])


def write_page(out: str | Path, result) -> Path:
    """Render ``result`` (a :class:`~salbench.studies.meta.MetaResult`, with its linear
    reference as a second section when run) into ``out``; returns the path of its
    ``index.html``."""
    settings = result.settings
    summary = [(key, str(settings[key])) for key in ("model", "data", "masks")
               if settings.get(key) is not None]
    sections = [meta_section(result)]
    if result.linear is not None:
        sections.append(meta_section(result.linear, "On a linear reference model"))
    return render_page(out, sections, title="salbench meta: which metrics to trust",
                       summary=summary)
