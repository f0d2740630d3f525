"""The quickstart's report section: model scores, and per dataset each method's mean on every
metric, its oriented rank and the randomisation sanity check."""

from __future__ import annotations

from pathlib import Path

from salbench.report import Figure, Section, Table, figures
from salbench.results import read_results
from salbench.studies.quickstart import analysis
from salbench.studies.quickstart.grid import NAME

TEXT = ("The end-to-end demo: both ground-truth datasets, a small ResNet-18 trained on each, "
        "the documents' methods and metrics. It tests the pipeline with real numbers; the "
        "documents' findings are tested by the studies.")


def report_section(run_dir: Path) -> Section:
    tables = {t: read_results(run_dir, t) for t in ("results", "curves", "summaries")}
    results, curves, summaries = (tables[t][tables[t].study == NAME]
                                  for t in ("results", "curves", "summaries"))
    subsections = []
    for dataset in sorted(results.dataset.unique()):
        rows = results[results.dataset == dataset]
        sums = summaries[summaries.dataset == dataset]
        means = analysis.method_means(rows, sums)
        ranks = analysis.oriented_ranks(means, analysis.directions(rows, sums))
        sanity = analysis.randomisation_curves(curves[curves.dataset == dataset])
        figs = [Figure(figures.heatmap(ranks, vmin=0.0, title=f"{dataset}: percentile rank of "
                                       "each method's mean (per score; 1 = best)"),
                       f"{dataset}: method ranks per score, oriented by each score's direction.",
                       name=f"qs-{dataset}")]
        if not sanity.empty:
            figs.append(Figure(figures.line_plot(sanity, "layers randomised", "spearman",
                                                 hue="method",
                                                 title=f"{dataset}: cascading randomisation"),
                               f"{dataset}: Spearman correlation of each map with the map after "
                               "randomising the first k layers from the output side (a method "
                               "that depends on the model drops towards 0).",
                               name=f"qs-{dataset}-randomisation"))
        subsections.append(Section(
            f"Quickstart: {dataset}",
            "Mean over the explained test samples (the predicted class is explained); HAAS is "
            "Acc(HA)/Acc(x) over those samples.",
            figures=figs, tables=[Table(means, f"{dataset}: mean score per method",
                                        name=f"quickstart-{dataset}")]))
    models = analysis.model_scores(summaries[summaries.study == NAME])
    return Section("Quickstart", TEXT,
                   tables=[Table(models, "Test-set classification scores of the models",
                                 name="quickstart-models")],
                   subsections=subsections)
