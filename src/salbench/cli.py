"""The ``salbench`` command line (Typer). Every command's ``--help`` shows an example."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from salbench.config import ConfigError
from salbench.data.cli import app as data_app
from salbench.explain.cli import explain, methods
from salbench.metrics.cli import evaluate
from salbench.models.cli import train
from salbench.report.cli import report
from salbench.runtime import EXECUTORS, set_quiet

app = typer.Typer(
    name="salbench",
    help="Benchmark saliency (XAI) methods for PyTorch image classifiers against ground truth.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
study_app = typer.Typer(help="List and run the source documents' studies.", no_args_is_help=True)
app.add_typer(study_app, name="study")
app.add_typer(data_app, name="data")
app.command("train")(train)
app.command("explain")(explain)
app.command("methods")(methods)
app.command("evaluate")(evaluate)
app.command("report")(report)
console = Console()


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2 (bad input)."""
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


@app.command("results")
def results_command(
    sql: str = typer.Argument(..., help="DuckDB SQL over the table `results`."),
    run: Path = typer.Option(..., "--run", help="Run folder (e.g. runs/quickstart)."),
    limit: int = typer.Option(50, min=1, help="Print at most this many rows."),
) -> None:
    """Run a DuckDB SQL query over a run's results and print a table.

    Example: salbench results --run runs/quickstart "select metric, count(*) from results group by 1"
    """
    import duckdb

    from salbench.results import query

    try:
        frame = query(run, sql)
    except FileNotFoundError as err:
        fail(str(err))
    except duckdb.Error as err:
        fail(f"sql: {str(err).splitlines()[0]}")
    table = Table(show_lines=False)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.head(limit).itertuples(index=False):
        table.add_row(*[f"{v:.6g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    if len(frame) > limit:
        console.print(f"({len(frame)} rows, {limit} shown; raise --limit to see more)")


@study_app.command("list")
def study_list() -> None:
    """List the studies with one line each.

    Example: salbench study list
    """
    from salbench.studies import all_studies

    for name, study in sorted(all_studies().items()):
        console.print(f"[bold]{name}[/]: {study.summary}", highlight=False)


@study_app.command("run")
def study_run(
    name: str = typer.Argument(..., help="Study name (see `salbench study list`)."),
    preset: str = typer.Option("tiny", help="Scale preset: tiny (CPU, minutes), small, paper."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: key=value (repeat)."),
    config: Path | None = typer.Option(None, help="YAML config replacing the preset."),
    out: Path | None = typer.Option(None, help="Run folder (default runs/NAME-PRESET)."),
    executor: str = typer.Option("local", help=f"Job executor: one of {', '.join(EXECUTORS)}."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    report: bool = typer.Option(True, help="Write the HTML report when the study finishes."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run a study end to end into a run folder (resumable: rerun to continue).

    Example: salbench study run cells --preset tiny --set seed=1 --out runs/cells-tiny
    """
    from salbench.studies import get_study, run_study

    set_quiet(quiet)
    try:
        study = get_study(name)
        cfg = (study.config_class.from_yaml(config).with_overrides(set_) if config
               else study.config(preset, set_))
        if executor not in EXECUTORS:
            raise ConfigError(f"--executor must be one of {list(EXECUTORS)}, got {executor!r}")
    except ConfigError as err:
        fail(str(err))
    run_dir = out or Path("runs") / f"{name}-{preset}"
    try:
        summaries = run_study(study, cfg, run_dir, executor=executor, device=device)
    except (ConfigError, ValueError) as err:
        fail(str(err))
    failed = {k: v for s in summaries.values() for k, v in s.failed.items()}
    for stage, summary in summaries.items():
        console.print(f"{stage}: {len(summary.done)} done, {len(summary.skipped)} already done, "
                      f"{len(summary.failed)} failed", highlight=False)
    if failed:
        for key, message in failed.items():
            Console(stderr=True, soft_wrap=True).print(f"[red]job {key} failed:[/] {message}",
                                                       highlight=False)
        console.print(f"details: {run_dir / 'logs' / 'salbench.log'}")
        raise typer.Exit(1)
    if report:
        _write_report(run_dir)


def _write_report(run_dir: Path) -> None:
    from salbench.report import render_report

    path = render_report(run_dir)
    console.print(f"report: {path}", highlight=False)


@app.command("quickstart")
def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), help="Run folder to write."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """The end-to-end demo at tiny scale: data, models, every method, every metric, the report.

    Example: salbench quickstart --out runs/quickstart
    """
    study_run("quickstart", preset="tiny", set_=[], config=None, out=out, executor="local",
              device=device, report=True, quiet=quiet)
