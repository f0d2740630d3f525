"""The benchmark's report section and printed summary: the recommendation, the model's accuracy,
per score the ranked methods with 95 % intervals, the sanity check and the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from salbench.report import Section, Table
from salbench.results import read_results
from salbench.studies.benchmark import analysis

PLAN_FILE = "plan.json"


def summary(run_dir: Path, n_boot: int = 2000) -> dict:
    """Everything the benchmark concludes from a run's tables: ``scores``, ``checks``,
    ``support``, ``accuracy``, ``chance``, ``recommendation`` (lines) and the stored ``plan``."""
    results = read_results(run_dir)
    summaries = read_results(run_dir, "summaries")
    predictions = read_results(run_dir, "predictions")
    accuracy = summaries[(summaries.metric == "classification")
                         & (summaries.output == "accuracy")].value
    scores = analysis.ranked_scores(results, n_boot=n_boot)
    checks = analysis.sanity(results)
    plan_path = Path(run_dir) / PLAN_FILE
    plan = json.loads(plan_path.read_text()) if plan_path.is_file() else {}
    chance = analysis.chance_level(predictions)
    acc = float(accuracy.iloc[0]) if len(accuracy) else None
    lines = analysis.recommendation(scores, checks, acc, chance, len(predictions))
    return {"scores": scores, "checks": checks, "support": analysis.support(scores),
            "accuracy": acc, "chance": chance, "recommendation": lines, "plan": plan}


def summary_lines(found: dict, top: int = 3) -> list[str]:
    """The printed summary: the recommendation, then per score the ``top`` methods."""
    lines = list(found["recommendation"]) + [""]
    scores = found["scores"]
    for score, part in scores.groupby("score", sort=True):
        arrow = "lower is better" if bool(part.lower_is_better.iloc[0]) else "higher is better"
        best = ", ".join(f"{r.method} {r['mean']:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]"
                         for _, r in part.head(top).iterrows())
        lines.append(f"{score} ({arrow}): {best}")
    return lines


def report_section(run_dir: Path) -> Section:
    found = summary(Path(run_dir))
    plan = found["plan"]
    text = "\n\n".join([" ".join(found["recommendation"]),
                        "Which saliency method to trust for this model on these images: every "
                        "method that runs on the model, scored by every metric that applies "
                        "(higher or lower is better as each metric's registry entry says), with "
                        "95 % bootstrap intervals over the images. A method is among the best on "
                        "a score when its interval overlaps the best one's."])
    scores = found["scores"].copy()
    tables = [Table(scores.drop(columns=["dataset"], errors="ignore"),
                    "Per score: each method's mean, 95 % interval, n and rank (1 = best).",
                    name="benchmark-scores", digits=3)]
    if len(found["support"]):
        tables.insert(0, Table(found["support"], "Methods by the number of scores on which "
                               "they are among the best (null baselines left out).",
                               name="benchmark-support", digits=3))
    if len(found["checks"]):
        tables.append(Table(found["checks"], "Randomisation sanity check: mean Spearman "
                            "correlation between each map and the randomised model's (fails "
                            f"above {analysis.SANITY_BOUND} with its whole interval).",
                            name="benchmark-sanity", digits=3))
    skipped = [{"kind": kind, "name": n, "reason": r}
               for kind in ("method", "metric") for n, r in plan.get(f"skipped_{kind}s",
                                                                     {}).items()]
    if skipped:
        tables.append(Table(pd.DataFrame(skipped), "Skipped, with the reason.",
                            name="benchmark-skipped"))
    return Section("Benchmark of your model", text, tables=tables)
