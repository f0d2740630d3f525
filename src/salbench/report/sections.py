"""What a report is made of: sections holding text, figures and tables, and the generic sections
built from a run's results alone (leaderboard, paired tests, metric agreement).

A study contributes its part as a :class:`Section` from its ``report_section(run_dir)`` callable
(``salbench.studies.base.Study.report_section``); :func:`salbench.report.render_report` calls it
for every study that has rows in the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
from matplotlib.figure import Figure as MplFigure

from salbench.report import figures as F
from salbench.results.stats import Leaderboard, leaderboard, metric_agreement, ranked_rows


@dataclass
class Figure:
    """A matplotlib figure with its caption.

    ``embed``: how the HTML carries it: ``svg`` (inline vector, best for plots), ``png`` (base64
    raster, best for image grids) or ``auto`` (png when the figure shows an image, else svg).
    Both files are written to ``report/figures/`` either way. ``name`` names those files
    (default: from the caption).
    """

    figure: MplFigure
    caption: str = ""
    name: str | None = None
    embed: Literal["auto", "svg", "png"] = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.figure, MplFigure):
            raise TypeError(f"figure must be a matplotlib Figure, got {type(self.figure).__name__}")
        if self.embed not in ("auto", "svg", "png"):
            raise ValueError(f"embed must be 'auto', 'svg' or 'png', got {self.embed!r}")


@dataclass
class Table:
    """A table with its caption: ``data`` is shown with its index unless that is a plain range.

    ``digits``: significant digits of floats; ``bold``: a boolean frame of ``data``'s shape marking
    cells to emphasise (e.g. the best method). Written to ``report/tables/<name>.csv`` too.
    Tables longer than ``collapse_after`` rows start folded.
    """

    data: pd.DataFrame
    caption: str = ""
    name: str | None = None
    digits: int = 4
    bold: pd.DataFrame | None = None
    collapse_after: int = 40

    def __post_init__(self) -> None:
        if isinstance(self.data, pd.Series):
            self.data = self.data.to_frame()
        if not isinstance(self.data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, got {type(self.data).__name__}")
        if self.bold is not None and self.bold.shape != self.data.shape:
            raise ValueError(f"bold must have data's shape {self.data.shape}, "
                             f"got {self.bold.shape}")


@dataclass
class Section:
    """One part of the report: a title, plain-text paragraphs (blank-line separated), figures,
    tables, and nested subsections. ``lead_tables`` come right after the text, before the figures
    (a study's findings open its section). ``figures``/``tables`` accept bare matplotlib figures
    and DataFrames too (wrapped without caption)."""

    title: str
    text: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)
    lead_tables: list[Table] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError("title must be a non-empty string")
        self.figures = [f if isinstance(f, Figure) else Figure(f) for f in self.figures]
        self.tables = [t if isinstance(t, Table) else Table(t) for t in self.tables]
        self.lead_tables = [t if isinstance(t, Table) else Table(t) for t in self.lead_tables]
        for sub in self.subsections:
            if not isinstance(sub, Section):
                raise TypeError(f"subsections must be Sections, got {type(sub).__name__}")


def results_sections(results: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0
                     ) -> list[Section]:
    """The generic sections every report has: the leaderboard (one subsection per dataset) and
    metric agreement, built from the ``results`` table alone: its rows that rank methods
    (:func:`salbench.results.stats.ranked_rows`, each row's direction from the registry)."""
    results = ranked_rows(results)
    if results.empty:
        return [Section("Leaderboard", "This run has no per-sample explanation scores yet.")]
    board = leaderboard(results, n_boot=n_boot, seed=seed)
    return [leaderboard_section(board, results), agreement_section(results)]


def leaderboard_section(board: Leaderboard, results: pd.DataFrame) -> Section:
    """Per dataset: the methods × metrics table, the forest plot and the Holm-corrected tests."""
    pct = round(board.confidence * 100)
    text = (f"Every method on every metric, per dataset: the mean over all scored samples and "
            f"models with its {pct} % percentile-bootstrap confidence interval, and the rank "
            f"(#1 = best; ↑ higher is better, ↓ lower is better). Pairs of methods are compared "
            f"with two-sided Wilcoxon signed-rank tests on the samples both were scored on, "
            f"Holm-corrected over all pairs of one metric (α = {board.alpha}).")
    subsections = []
    for dataset in sorted(board.scores["dataset"].unique()):
        scores = board.scores[board.scores["dataset"] == dataset]
        table = board.table(dataset)
        best = table.apply(lambda col: col.astype(str).str.endswith(" #1"))
        tests = board.tests[board.tests["dataset"] == dataset]
        models = results.loc[results["dataset"] == dataset, "model_id"].nunique()
        sub = Section(
            f"Leaderboard: {dataset}",
            f"{scores['method'].nunique()} methods, {scores['score'].nunique()} scores, "
            f"{models} model(s).",
            figures=[Figure(F.forest_plot(scores), f"Mean and {pct} % CI per metric on "
                            f"{dataset}; red: rank 1.", name=f"leaderboard-{dataset}")],
            tables=[Table(table, f"Leaderboard on {dataset}: mean [CI] #rank.",
                          name=f"leaderboard-{dataset}", bold=best)],
        )
        if not tests.empty:
            sub.tables.append(_tests_table(tests, board.alpha, dataset))
        subsections.append(sub)
    return Section("Leaderboard", text, subsections=subsections)


def _tests_table(tests: pd.DataFrame, alpha: float, dataset: str) -> Table:
    pair = tests["method_a"] + " vs " + tests["method_b"]
    cell = [("–" if pd.isna(p) else f"{p:.2g}") + (f" ({b})" if b else "")
            for p, b in zip(tests["p_holm"], tests["better"])]
    frame = pd.DataFrame({"pair": pair, "score": tests["score"], "cell": cell,
                          "sig": tests["p_holm"] <= alpha})
    wide = frame.pivot(index="pair", columns="score", values="cell").fillna("")
    sig = frame.pivot(index="pair", columns="score", values="sig")
    sig = sig.reindex_like(wide).astype("boolean").fillna(False).astype(bool)
    wide.columns.name = None
    return Table(wide, f"Holm-adjusted Wilcoxon p-values on {dataset}; bold: p ≤ {alpha}, "
                       "with the better method in brackets.", name=f"tests-{dataset}", bold=sig)


def agreement_section(results: pd.DataFrame) -> Section:
    """Spearman correlation between scores over (dataset, model, method) means."""
    rho = metric_agreement(results)
    text = ("Spearman rank correlation between every pair of metrics over the per-(dataset, "
            "model, method) means, with lower-is-better metrics negated so that a positive value "
            "means two metrics agree on which method is better. Grey: fewer than 3 shared "
            "(dataset, model, method) units, or a constant metric.")
    section = Section("Metric agreement", text)
    if len(rho) >= 2:
        section.figures.append(Figure(
            F.heatmap(rho, colorbar_label="Spearman ρ (oriented)"),
            "Metric agreement: Spearman ρ between metrics.", name="metric-agreement",
            embed="svg"))
    section.tables.append(Table(rho, "Metric agreement (Spearman ρ).", name="metric-agreement",
                                digits=3))
    return section


def as_sections(value: Section | Sequence[Section] | None, source: str) -> list[Section]:
    """A provider's return value as a list of sections (checks the type)."""
    if value is None:
        return []
    items = [value] if isinstance(value, Section) else list(value)
    for item in items:
        if not isinstance(item, Section):
            raise TypeError(f"{source} must return a Section or a list of Sections, "
                            f"got {type(item).__name__}")
    return items
