"""``salbench report``: the run's HTML report, with every study's section."""

from __future__ import annotations

from pathlib import Path

import typer

from salbench.cli.common import fail, warn


def write_report(run: Path, *, gallery_limit: int = 12, n_boot: int = 2000, seed: int = 0,
                 strict: bool = False) -> Path:
    """Render ``run``'s report with the sections of the studies it holds; warn (one line each)
    about results the store could not read."""
    from salbench.report import render_report
    from salbench.results import ResultStore
    from salbench.studies import report_sections

    for problem in ResultStore(run).problems():
        warn(problem)
    sections, errors = report_sections(run, strict=strict)
    return render_report(run, sections, errors=errors, gallery_limit=gallery_limit,
                         n_boot=n_boot, seed=seed)


def report(
    run: Path = typer.Argument(..., help="Run folder (holding results/), e.g. runs/quickstart."),
    gallery_limit: int = typer.Option(12, "--gallery-limit", min=0,
                                      help="Samples shown per study in the gallery."),
    n_boot: int = typer.Option(2000, "--n-boot", min=1,
                               help="Bootstrap resamples for the leaderboard's 95 % CIs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    strict: bool = typer.Option(False, "--strict",
                                help="Fail when a study's section fails instead of showing the "
                                     "error in the report."),
) -> None:
    """Write a run's self-contained HTML report to RUN/report/index.html.

    One page (no network needed) with a section per study, the leaderboard, metric agreement and
    a per-sample gallery; figures also as PNG and SVG in RUN/report/figures/, tables as CSV in
    RUN/report/tables/.

    Example: salbench report runs/quickstart
    """
    if not (run / "results").is_dir():
        fail(f"RUN {str(run)!r} is not a run folder (no results/ inside)")
    try:
        path = write_report(run, gallery_limit=gallery_limit, n_boot=n_boot, seed=seed,
                            strict=strict)
    except (ValueError, OSError) as err:
        fail(f"report: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    typer.echo(str(path))
