"""The ``salbench`` command line (Typer). Every command's ``--help`` shows an example.

The command modules live here, above every stage: a command may use any stage (the stages never
import the CLI).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from salbench.cli.common import fail, warn
from salbench.cli.data import app as data_app
from salbench.cli.evaluate import evaluate
from salbench.cli.explain import explain, methods
from salbench.cli.meta import meta
from salbench.cli.report import report, write_report
from salbench.cli.train import train
from salbench.config import ConfigError

EXECUTORS = ("local", "ray")

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
app.command("meta")(meta)
console = Console()


@app.command("metrics")
def metrics_command() -> None:
    """List every metric: what it needs, its outputs (↑ higher / ↓ lower is better, range), its
    cost in model passes per sample and its source.

    Example: salbench metrics
    """
    from salbench.metrics import available

    table = Table()
    for column in ("metric", "kind", "outputs", "cost / sample (defaults, 3×224²)", "source"):
        table.add_column(column)
    arrows = {"higher": "↑", "lower": "↓", "none": "·"}
    for spec in available():
        outputs = []
        for out in spec.outputs:
            lo, hi = out.resolve_range(spec.params)
            level = " (set)" if out.level == "set" else ""
            outputs.append(f"{out.name} {arrows[out.resolve_direction(spec.params)]} "
                           f"[{lo:g}, {hi:g}]{level}")
        cost = spec.estimate(shape=(3, 224, 224))
        parts = [f"{cost.forward:g} fwd"] if cost.forward else []
        parts += [f"{cost.explanations:g} explanations"] if cost.explanations else []
        table.add_row(spec.name, spec.kind, "\n".join(outputs), ", ".join(parts) or "none",
                      spec.source)
    console.print(table)
    console.print("↑ higher is better, ↓ lower is better, · ranks nothing; directions that depend "
                  "on parameters are shown at the defaults (region_perturbation: ↓ for MoRF, ↑ "
                  "for LRF). Parameters: salbench.metrics.get_metric(NAME).params")


@app.command("results")
def results_command(
    sql: str = typer.Argument(..., help="DuckDB SQL over the tables results, curves, summaries, "
                                        "predictions."),
    run: Path = typer.Option(..., "--run", help="Run folder (e.g. runs/quickstart)."),
    limit: int = typer.Option(50, min=1, help="Print at most this many rows."),
) -> None:
    """Run a DuckDB SQL query over a run's result tables and print a table.

    Example: salbench results --run runs/quickstart "select metric, output, direction, count(*)
    from results group by all"
    """
    import duckdb

    from salbench.results import connect

    try:
        con, status = connect(run)
    except FileNotFoundError as err:
        fail(str(err))
    try:
        frame = con.execute(sql).df()
    except duckdb.Error as err:
        fail(f"sql: {str(err).splitlines()[0]}")
    finally:
        con.close()
    for problem in status.problems():
        warn(problem)
    table = Table(show_lines=False)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.head(limit).itertuples(index=False):
        table.add_row(*[f"{v:.6g}" if isinstance(v, float) else escape(str(v)) for v in row])
    console.print(table)
    if len(frame) > limit:
        console.print(f"({len(frame)} rows, {limit} shown; raise --limit to see more)")


@app.command("benchmark")
def benchmark_command(
    model: Path = typer.Option(..., "--model", help="Your model: a salbench checkpoint, a "
                               "torch.save'd module or state dict (with --arch), a TorchScript "
                               "file, or package.module:factory."),
    data: Path = typer.Option(..., "--data", help="Your images: an image folder (root/<class>/"
                              "<image>), a salbench dataset folder, or an .npz with x, y, masks."),
    masks: Path | None = typer.Option(None, "--masks", help="Ground-truth masks beside an image "
                                      "folder (masks/<class>/<stem>.png; white = relevant)."),
    arch: str | None = typer.Option(None, "--arch", help="Architecture of a state dict (zoo or "
                                    "torchvision name, e.g. resnet18)."),
    num_classes: int | None = typer.Option(None, "--num-classes", min=1,
                                           help="Classes of a state dict (default: its last "
                                                "layer's)."),
    normalize: str = typer.Option("none", "--normalize", help="Input normalisation the model "
                                  "expects: none or imagenet."),
    size: int | None = typer.Option(None, "--size", min=8, help="Resize folder images to SIZE."),
    preset: str = typer.Option("fast", "--preset", help="fast (12 methods, cheap settings) or "
                               "full (every method, the documents' settings)."),
    methods: str | None = typer.Option(None, "--methods", help="Comma-separated methods "
                                       "(default: the preset's that apply)."),
    metrics: str | None = typer.Option(None, "--metrics", help="Comma-separated metrics "
                                       "(default: every one that applies)."),
    n_samples: int | None = typer.Option(None, "--n-samples", min=1,
                                         help="Explain at most this many images."),
    target: str = typer.Option("true", "--target", help="Explain the true or the predicted "
                               "class."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default "
                                    "runs/benchmark-MODEL)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and its estimated "
                                 "cost; run nothing."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Which saliency method can you trust for YOUR model on YOUR images? Runs every method that
    applies, scores it with every metric that applies (ground-truth metrics where masks exist),
    and prints per metric the best methods with 95 % intervals and one recommendation; writes a
    run folder with the results and an HTML report.

    Example: salbench benchmark --model model.pt --data images/ --masks masks/ --preset fast
    """
    from salbench.config import ConfigError
    from salbench.results import RunLockedError
    from salbench.runtime import set_quiet
    from salbench.studies.benchmark import run_benchmark
    from salbench.studies.benchmark.report import summary, summary_lines

    set_quiet(quiet)
    if preset not in ("fast", "full"):
        fail(f"--preset must be fast or full, got {preset!r}")
    if normalize not in ("none", "imagenet"):
        fail(f"--normalize must be none or imagenet, got {normalize!r}")
    if target not in ("true", "predicted"):
        fail(f"--target must be true or predicted, got {target!r}")
    run_dir = out or Path("runs") / f"benchmark-{model.stem}"
    options = {"masks": masks, "arch": arch, "num_classes": num_classes,
               "normalize": normalize, "size": size, "preset": preset, "n_samples": n_samples,
               "target": target, "out": run_dir, "device": device,
               "methods": None if methods is None else [m.strip() for m in methods.split(",")],
               "metrics": None if metrics is None else [m.strip() for m in metrics.split(",")]}
    try:
        plan = run_benchmark(model, data, dry_run=True, **options)
    except (ValueError, TypeError, FileNotFoundError, ConfigError) as err:
        fail(str(err).splitlines()[0])
    for line in plan.describe():
        console.print(line, highlight=False, markup=False)
    if dry_run:
        return
    try:
        run_benchmark(model, data, plan=plan, **options)
    except (ValueError, TypeError, FileNotFoundError, ConfigError, RunLockedError,
            RuntimeError) as err:
        fail(str(err).splitlines()[0])
    console.print("")
    for line in summary_lines(summary(run_dir)):
        console.print(line, highlight=False, markup=False)
    console.print(f"report: {write_report(run_dir)}", highlight=False)


@app.command("findings")
def findings_command(
    run: Path = typer.Argument(..., help="Run folder of a study run, e.g. runs/cells-small."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of findings."),
) -> None:
    """Print the findings of a study run: each claim of the document with its section, the
    document's number, the measured value with its 95 % bootstrap interval and n, and the
    verdict (agrees, disagrees, inconclusive, not testable here), computed from the results.

    Example: salbench findings runs/cells-small --json
    """
    import json

    from salbench.results import ResultStore
    from salbench.results.findings import verdict_counts
    from salbench.studies import run_findings

    if not (run / "results").is_dir():
        fail(f"RUN {str(run)!r} is not a run folder (no results/ inside)")
    for problem in ResultStore(run).problems():
        warn(problem)
    found = run_findings(run)
    if as_json:
        typer.echo(json.dumps([f.to_dict() for f in found], indent=1))
        return
    if not found:
        fail(f"RUN {str(run)!r} holds no study with findings")
    for f in found:  # one block per claim: readable in a terminal of any width and in logs
        measured = ("–" if f.measured is None else f"{f.measured:.3g}"
                    + ("" if f.low is None else f" [{f.low:.3g}, {f.high:.3g}]"))
        console.print(f"[bold]{escape(f.verdict)}[/bold]  {escape(f.study)} {escape(f.section)}: "
                      f"{escape(f.claim)}", highlight=False)
        console.print(f"    document {escape(str(f.document))}; measured {measured}, n = {f.n}",
                      highlight=False)
        if f.note:
            console.print(f"    {escape(f.note)}", highlight=False, style="dim")
    counts = verdict_counts(found)
    console.print(", ".join(f"{n} {v}" for v, n in counts.items()) + f" ({found[0].scale})")


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
    from salbench.results import RunLockedError
    from salbench.runtime import set_quiet
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
        summaries = run_study(study, cfg, run_dir, executor=executor, device=device,
                              scale="custom" if config else preset)
    except (ConfigError, ValueError, RunLockedError) as err:
        fail(str(err))
    failed = {k: v for s in summaries.values() for k, v in s.failed.items()}
    for stage, summary in summaries.items():
        console.print(f"{stage}: {len(summary.done)} done, {len(summary.skipped)} already done, "
                      f"{len(summary.failed)} failed in {summary.seconds:.0f} s", highlight=False)
    if failed:
        for key, message in failed.items():
            Console(stderr=True, soft_wrap=True).print(f"[red]job {key} failed:[/] {message}",
                                                       highlight=False)
        console.print(f"details: {run_dir / 'logs' / 'salbench.log'}")
        raise typer.Exit(1)
    if report:
        console.print(f"report: {write_report(run_dir)}", highlight=False)


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
