"""The HTML report: sections present, numbers as the statistics give them, self-contained, and
readable in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from salbench.cli import app
from salbench.report import Figure, Section, Table, figures, render_report, save_gallery_item
from salbench.results import ResultStore, read_results
from salbench.results.stats import leaderboard, ranked_rows

N_BOOT = 200
METHODS = {"saliency": 0.0, "integrated_gradients": 0.25, "guided_backprop": 0.1}
METRICS = {"top_k_precision": "higher", "max_sensitivity": "lower", "aopc": "higher"}


def write_store(run: Path) -> None:
    rng = np.random.default_rng(0)
    store = ResultStore(run)
    for dataset in ("mri-lesions", "cells"):
        records = [{"dataset": dataset, "model_id": model, "method": method, "metric": metric,
                    "output": metric, "sample_id": str(s), "value": rng.random() + shift,
                    "direction": direction, "meta": {"true": 1, "pred": int(rng.integers(2))}}
                   for model in ("vgg-a", "vgg-b") for s in range(10)
                   for method, shift in METHODS.items() for metric, direction in METRICS.items()]
        store.write(f"demo-{dataset}", pd.DataFrame(records), {"study": "demo", "run": "r0"})
    store.write("broken-0", [{"dataset": "cells", "model_id": "m", "method": "saliency",
                              "metric": "aopc", "output": "aopc", "sample_id": "0",
                              "value": 0.5, "direction": "higher"}],
                {"study": "broken", "run": "r0"})
    store.write("demo-models", {  # set-level rows and curves stay out of the leaderboard
        "summaries": [{"dataset": "cells", "model_id": "vgg-a", "method": "",
                       "metric": "classification", "output": "accuracy", "value": 0.9,
                       "direction": "higher", "n": 20}],
        "curves": [{"dataset": "cells", "model_id": "vgg-a", "method": "saliency",
                    "metric": "aopc", "curve": "score", "sample_id": "0", "point": 0, "x": 0.0,
                    "value": 0.3}]}, {"study": "demo", "run": "r0"})
    store.record_failure("demo-never", "RuntimeError: out of memory")
    for s in range(2):
        image = rng.random((3, 32, 32))
        mask = np.zeros((32, 32))
        mask[8:18, 10:22] = 1
        maps = {m: rng.normal(size=(3, 32, 32)) + 2 * mask for m in METHODS}
        save_gallery_item(run, s, image, mask, maps, {"true": 1, "pred": 1}, study="demo",
                          dataset="mri-lesions", model_id="vgg-a")


def demo_section(run_dir: Path) -> Section:
    frame = read_results(run_dir)
    frame = frame[frame.metric == "top_k_precision"]
    table = frame.groupby("method").value.agg(["mean", "count"])
    return Section("Demo study", "What the demo asks.\n\nSecond paragraph.",
                   figures=[Figure(figures.box_plot(frame, "method", "value", hue="dataset"),
                                   "Top-k precision per method.", name="demo-box")],
                   tables=[Table(table, "Top-k precision per method.", name="demo-table")],
                   subsections=[Section("Demo detail", "A nested part.")])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    write_store(run)
    return run


@pytest.fixture(scope="module")
def rendered(run_dir) -> Path:
    return render_report(run_dir, [demo_section(run_dir)], n_boot=N_BOOT)


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the run for tests that render again (the module's report stays put)."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


class Outline(HTMLParser):
    """Section ids, headings, and every src/href of a page."""

    def __init__(self):
        super().__init__()
        self.ids, self.headings, self.links, self.svgs = [], [], [], 0
        self._heading = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.ids.append(attrs.get("id"))
        if tag in ("h2", "h3", "h4"):
            self._heading = ""
        if tag == "svg":
            self.svgs += 1
        self.links += [attrs[k] for k in ("src", "href") if k in attrs]

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data

    def handle_endtag(self, tag):
        if tag in ("h2", "h3", "h4") and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


def test_sections_are_present_in_order(rendered):
    page = outline(rendered.read_text())
    top = ["Demo study", "Leaderboard", "Metric agreement", "Gallery", "Failed jobs"]
    assert [h for h in page.headings if h in top] == top
    for title in ("Demo detail", "Leaderboard: cells", "Leaderboard: mri-lesions",
                  "Gallery: demo"):
        assert title in page.headings
    assert len(page.ids) == len(set(page.ids))  # anchors are unique
    assert page.svgs >= 4  # box plot, two forest plots, agreement heatmap inline as SVG


def test_report_is_self_contained(rendered):
    html = rendered.read_text()
    assert not re.search(r"https?://", html), "the report must not reference any URL"
    assert "<link" not in html and "<script" not in html
    page = outline(html)
    for link in page.links:
        if link.startswith(("data:image/png;base64,", "#")):
            continue
        assert (rendered.parent / link).is_file(), link  # the PNG/SVG/CSV files beside it
    assert any(link.startswith("data:image/png") for link in page.links)  # gallery rasters
    names = {p.name for p in (rendered.parent / "figures").iterdir()}
    assert {"demo-box.png", "demo-box.svg", "metric-agreement.svg"} <= names
    assert (rendered.parent / "tables" / "demo-table.csv").is_file()


def test_leaderboard_numbers_match_the_statistics(rendered, run_dir):
    html = rendered.read_text()
    board = leaderboard(ranked_rows(read_results(run_dir)), n_boot=N_BOOT)
    shown = pd.read_csv(rendered.parent / "tables" / "leaderboard-cells.csv", index_col=0)
    assert sorted(shown.index) == sorted(METHODS)  # no model row
    assert not any(c.startswith(("accuracy", "classification")) for c in shown.columns)
    assert next(c for c in shown.columns if c.startswith("max_sensitivity")).endswith("↓")
    for dataset in ("cells", "mri-lesions"):
        table = board.table(dataset)
        for method in METHODS:
            for metric in METRICS:
                column = next(c for c in table.columns if c.startswith(metric))
                assert f">{table.loc[method, column]}<" in html
    best = board.table("cells").iloc[0]  # the best cell of a column is emphasised
    cell = next(v for v in best if isinstance(v, str) and v.endswith("#1"))
    assert f'class="bold">{cell}<' in html or f'class=" bold">{cell}<' in html
    failures = pd.read_csv(rendered.parent / "tables" / "failed-jobs.csv")
    assert failures["job"].tolist() == ["demo-never"]


def test_study_sections_come_from_the_registry(run_dir, tmp_path, monkeypatch):
    """``report_sections`` asks every study with rows for its section; one that raises becomes
    an error box (``strict``: the error propagates)."""
    from salbench.studies import base

    run_dir = copy_of(run_dir, tmp_path)

    def broken(run):
        raise RuntimeError("no figure today")

    registry = {"demo": SimpleNamespace(report_section=demo_section, findings=None),
                "broken": SimpleNamespace(report_section=broken, findings=None)}
    monkeypatch.setattr(base, "all_studies", lambda: registry)
    sections, errors = base.report_sections(run_dir)
    html = render_report(run_dir, sections, errors=errors, n_boot=N_BOOT,
                         gallery_limit=0).read_text()
    headings = outline(html).headings
    assert "Demo study" in headings and "Study broken" in headings
    assert "RuntimeError: no figure today" in html
    with pytest.raises(RuntimeError, match="no figure today"):
        base.report_sections(run_dir, strict=True)


def test_unreadable_parts_are_shown_not_dropped_silently(run_dir, tmp_path):
    run_dir = copy_of(run_dir, tmp_path)
    part = ResultStore(run_dir).part_path("results", "demo-cells")
    part.write_bytes(part.read_bytes()[:200])
    html = render_report(run_dir, n_boot=N_BOOT, gallery_limit=0).read_text()
    assert "Incomplete results" in html and "1 finished job(s)" in html
    assert "Leaderboard: cells" in outline(html).headings  # the broken study's row remains


def test_empty_run_and_bad_arguments(tmp_path):
    html = render_report(tmp_path, n_boot=N_BOOT).read_text()
    assert "This run has no per-sample explanation scores yet." in html
    with pytest.raises(FileNotFoundError, match="run_dir"):
        render_report(tmp_path / "missing")
    with pytest.raises(ValueError, match="gallery_limit"):
        render_report(tmp_path, gallery_limit=-1)
    with pytest.raises(TypeError, match="Section"):
        render_report(tmp_path, ["not a section"])


def test_cli_command_writes_the_report(run_dir, tmp_path):
    run_dir = copy_of(run_dir, tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(run_dir), "--n-boot", "50", "--gallery-limit",
                                 "1"])
    assert result.exit_code == 0, result.output
    index = Path(result.output.strip())
    assert index == run_dir / "report" / "index.html"
    assert index.read_text().count("<details") >= 1
    missing = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "is not a run folder" in missing.output
    assert len(missing.output.strip().splitlines()) == 1


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120,
                          check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get "
                                               "install chromium)")
def test_headless_chromium_renders_the_report(rendered, tmp_path):
    from PIL import Image

    url = rendered.resolve().as_uri()
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2000", url, profile=tmp_path / "p1")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280)
    assert pixels.var() > 500, "the screenshot is blank"
    assert (pixels < 200).mean() > 0.02, "too little drawn on the page"
    dom = chromium("--dump-dom", url, profile=tmp_path / "p2").stdout
    page = outline(dom)
    for title in ("Demo study", "Leaderboard", "Metric agreement", "Gallery",
                  "Leaderboard: cells"):
        assert title in page.headings
    assert page.svgs >= 4  # the browser parsed the inline SVG figures
