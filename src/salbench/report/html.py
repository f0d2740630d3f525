"""Render a run's report: one self-contained HTML file (CSS inline, figures as inline SVG or base64
PNG, no network access) at ``<run>/report/index.html``, plus every figure as PNG and SVG under
``report/figures/`` and every table as CSV under ``report/tables/``.

Sections, in order: a warning when the run's store has missing or unreadable parts, the sections
the caller passes (the studies' ``report_section(run_dir)``:
:func:`salbench.studies.report_sections`), the leaderboard per dataset, metric agreement, the
per-sample gallery, and failed jobs if any.
The report stage knows no study: it renders what it is given and what the results hold.
"""

from __future__ import annotations

import base64
import html as html_lib
import io
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from salbench.report import gallery as G
from salbench.report.sections import Figure, Section, Table, as_sections, results_sections
from salbench.results import TABLES, ResultStore, connect

PNG_DPI = 110


@dataclass
class _Block:
    """A section ready for the template: anchors, rendered figures and tables."""

    id: str
    title: str
    level: int
    paragraphs: list[str]
    figures: list[dict] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)
    lead_tables: list[dict] = field(default_factory=list)
    details: list[dict] = field(default_factory=list)
    children: list[_Block] = field(default_factory=list)
    error: str = ""


def render_report(run_dir: str | Path, sections: Sequence[Section] = (), *,
                  errors: Mapping[str, str] | None = None, gallery_limit: int = 12,
                  n_boot: int = 2000, seed: int = 0, title: str | None = None) -> Path:
    """Write ``<run_dir>/report/index.html`` (and its figure and table files); return its path.

    ``sections``: the study sections to show first; ``errors``: name -> message of sections that
    could not be built (shown as error boxes). ``gallery_limit``: items shown per study;
    ``n_boot``, ``seed``: passed to the leaderboard.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run_dir {str(run_dir)!r} is not a folder")
    if not isinstance(gallery_limit, int) or gallery_limit < 0:
        raise ValueError(f"gallery_limit must be a non-negative integer, got {gallery_limit!r}")
    con, status = connect(run_dir)
    try:
        results = con.execute("select * from results").df()
        counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}
    finally:
        con.close()
    all_sections = as_sections(list(sections), "sections")
    all_sections += results_sections(results, n_boot=n_boot, seed=seed)
    out = run_dir / "report"
    writer = _Writer(out)
    blocks = []
    if status.problems():
        block = writer.block(Section("Incomplete results"), level=2)
        block.error = "Some results of this run could not be read:\n" + "\n".join(
            status.problems())
        blocks.append(block)
    blocks += [writer.block(s, level=2) for s in all_sections]
    blocks += [_error_block(writer, name, message) for name, message in (errors or {}).items()]
    gallery = G.gallery_files(run_dir)
    if gallery:
        blocks.append(writer.gallery_block(gallery, gallery_limit))
    failures = _failures(run_dir)
    if failures is not None:
        blocks.append(writer.block(Section("Failed jobs", "Jobs that failed and have not "
                                           "finished since; they wrote no rows.",
                                           tables=[Table(failures, name="failed-jobs")]),
                                   level=2))
    return _write_index(out, title or f"salbench report: {run_dir.resolve().name}",
                        _summary(run_dir, results, counts), blocks)


def render_page(out: str | Path, sections: Sequence[Section], *, title: str,
                summary: Sequence[tuple[str, str]] = ()) -> Path:
    """Write the self-contained page ``<out>/index.html`` of ``sections`` (figure and table
    files beside it, as :func:`render_report`) for outputs that are no run folder, e.g. ``salbench
    meta``'s; ``summary``: (key, value) lines under the title. Returns its path."""
    out = Path(out)
    writer = _Writer(out)
    blocks = [writer.block(s, level=2) for s in as_sections(list(sections), "sections")]
    return _write_index(out, title, list(summary), blocks)


def _write_index(out: Path, title: str, summary: list[tuple[str, str]],
                 blocks: list[_Block]) -> Path:
    env = Environment(loader=PackageLoader("salbench.report", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    page = env.get_template("report.html").render(
        title=title, summary=summary,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), blocks=blocks)
    index = out / "index.html"
    tmp = out / f".index.{os.getpid()}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return index


def _failures(run_dir: Path) -> pd.DataFrame | None:
    failed = ResultStore(run_dir).failed()
    if not failed:
        return None
    return pd.DataFrame({"job": list(failed),
                         "error": [m.strip().splitlines()[-1][:300] if m.strip() else ""
                                   for m in failed.values()]})


def _summary(run_dir: Path, results: pd.DataFrame,
             counts: Mapping[str, int]) -> list[tuple[str, str]]:
    def names(column: str) -> str:
        values = sorted(results[column].unique())
        shown = ", ".join(values[:12]) + (f", … ({len(values)} in all)" if len(values) > 12 else "")
        return shown or "–"

    rows = ", ".join(f"{t} {n:,}" for t, n in counts.items())
    return [("run folder", str(run_dir.resolve())), ("rows", rows),
            ("studies", names("study")), ("datasets", names("dataset")),
            ("models", str(results["model_id"].nunique())), ("methods", names("method")),
            ("metrics", names("metric"))]


def _error_block(writer: _Writer, name: str, message: str) -> _Block:
    block = writer.block(Section(f"Study {name}"), level=2)
    block.error = f"The report section of study {name!r} failed:\n{message}"
    return block


class _Writer:
    """Turns sections into template blocks, writing figure and table files as it goes."""

    def __init__(self, out: Path):
        self.out = out
        self.fig_dir = out / "figures"
        self.table_dir = out / "tables"
        for folder in (self.fig_dir, self.table_dir):  # derived files: rebuilt every time
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        self.ids: set[str] = set()
        self.figure_names: set[str] = set()
        self.table_names: set[str] = set()

    def block(self, section: Section, level: int) -> _Block:
        block = _Block(id=self._unique(_slug(section.title), self.ids), title=section.title,
                       level=min(level, 4), paragraphs=_paragraphs(section.text))
        for table in section.lead_tables:
            block.lead_tables.append(self.table(table, default=f"{block.id}-table"))
        for figure in section.figures:
            block.figures.append(self.figure(figure, default=f"{block.id}-fig"))
        for table in section.tables:
            block.tables.append(self.table(table, default=f"{block.id}-table"))
        block.children = [self.block(sub, level + 1) for sub in section.subsections]
        return block

    def figure(self, figure: Figure, default: str, embed: str | None = None) -> dict:
        name = self._unique(_slug(figure.name or figure.caption[:40] or default),
                            self.figure_names)
        fig = figure.figure
        embed = embed or figure.embed
        if embed == "auto":
            embed = "png" if any(ax.images for ax in fig.axes) else "svg"
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": None})
        (self.fig_dir / f"{name}.png").write_bytes(png.getvalue())
        if fig.get_layout_engine() is not None:  # laid out by the PNG's draw: keep, not redo
            fig.set_layout_engine("none")
        with matplotlib.rc_context({"svg.hashsalt": name, "svg.fonttype": "path"}):
            svg = io.StringIO()
            fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
        (self.fig_dir / f"{name}.svg").write_text(svg.getvalue(), encoding="utf-8")
        if "matplotlib.pyplot" in sys.modules:  # a pyplot-made figure would otherwise leak
            sys.modules["matplotlib.pyplot"].close(fig)
        if embed == "svg":
            content = Markup(_inline_svg(svg.getvalue()))
        else:
            data = base64.b64encode(png.getvalue()).decode("ascii")
            content = Markup(f'<img alt="{html_lib.escape(figure.caption or name)}" '
                             f'src="data:image/png;base64,{data}">')
        return {"content": content, "caption": figure.caption, "png": f"figures/{name}.png",
                "svg": f"figures/{name}.svg"}

    def table(self, table: Table, default: str) -> dict:
        name = self._unique(_slug(table.name or table.caption[:40] or default), self.table_names)
        data = table.data
        data.to_csv(self.table_dir / f"{name}.csv")
        show_index = not (isinstance(data.index, pd.RangeIndex) and data.index.name is None)
        header = ([_label(n) or "" for n in data.index.names] if show_index else [])
        header += [_label(c) for c in data.columns]
        bold = table.bold.to_numpy(dtype=bool) if table.bold is not None else None
        rows = []
        for i, (index, values) in enumerate(zip(data.index, data.itertuples(index=False))):
            cells = []
            if show_index:
                keys = index if isinstance(index, tuple) else (index,)
                cells += [{"text": _format(k, table.digits), "bold": False, "head": True}
                          for k in keys]
            cells += [{"text": _format(v, table.digits), "num": _is_number(v),
                       "bold": bool(bold[i, j]) if bold is not None else False, "head": False}
                      for j, v in enumerate(values)]
            rows.append(cells)
        return {"caption": table.caption, "header": header, "rows": rows,
                "csv": f"tables/{name}.csv", "collapsed": len(rows) > table.collapse_after}

    def gallery_block(self, gallery: dict[str, list[Path]], limit: int) -> _Block:
        block = self.block(Section("Gallery", "Per-sample drill-down: the input, its ground "
                                   "truth and every method's map (channels summed, divided by "
                                   "max|h|; red positive, blue negative; green: ground-truth "
                                   "outline). Click a sample to open it."), level=2)
        for study, files in gallery.items():
            child = self.block(Section(f"Gallery: {study}", f"{min(limit, len(files))} of "
                                       f"{len(files)} stored samples."), level=3)
            for k, path in enumerate(files[:limit]):
                item = G.load_gallery_item(path)
                fig = Figure(G.item_figure(item), G.item_caption(item),
                             name=f"gallery-{study}-{path.stem}")
                child.details.append({"summary": G.item_caption(item), "open": k == 0,
                                      "figure": self.figure(fig, "gallery", embed="png")})
            block.children.append(child)
        return block

    @staticmethod
    def _unique(base: str, taken: set[str]) -> str:
        name, k = base, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name)
        return name


def _inline_svg(svg: str) -> str:
    """Matplotlib's SVG made fit for inline HTML: no XML prolog, DOCTYPE, metadata or namespace
    URLs (the HTML parser puts ``<svg>`` in the SVG namespace itself); CSS scales it down to fit."""
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    return svg.replace("<svg ", '<svg class="plot" ', 1).strip()


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text or "") if p.strip()]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "section"


def _label(value) -> str:
    if isinstance(value, tuple):
        return " / ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _format(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)
