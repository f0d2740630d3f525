"""The ``salbench report`` command (registered on the main app by ``salbench.cli``)."""

from __future__ import annotations

from pathlib import Path

import typer


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
    from salbench.report.html import render_report

    if not run.is_dir():
        raise typer.BadParameter(f"{str(run)!r} is not a folder", param_hint="RUN")
    path = render_report(run, gallery_limit=gallery_limit, n_boot=n_boot, seed=seed,
                         strict=strict)
    typer.echo(str(path))
