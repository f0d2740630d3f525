"""``salbench meta``: which metrics can you trust on your model and data (meta-evaluation)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from salbench.cli.common import fail

ARROWS = {"higher": "↑", "lower": "↓"}
TABLE_WIDTH = 240


def _number(value: float, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _effect(row: dict, kind: str) -> str:
    effect = row.get(f"effect:{kind}")
    if effect is None or not math.isfinite(effect):
        return "–"
    low, high = row[f"low:{kind}"], row[f"high:{kind}"]
    mark = "" if low > 0 else " ✗"
    return escape(f"{effect:.2f} [{low:.2f},{high:.2f}]{mark}")


def trust_lines(result, console: Console) -> None:
    """Print the "which metrics to trust" table, the reasons and the agreement matrix (and the
    same for the linear reference, when run)."""
    from salbench.studies.meta.maps import DEGRADED
    from salbench.studies.meta.report import KIND_HEADINGS

    settings = result.settings
    linear = settings.get("reference") == "linear"
    reference = (f"on a linear model fitted to the samples (accuracy "
                 f"{settings['linear_train_accuracy']:.2f}), its exact map for each metric as the "
                 "good map" if linear else "the ground-truth mask as the good map, model accuracy "
                 f"{settings['model_accuracy']:.2f} (gate {settings['accuracy_gate']:g})")
    console.print(f"meta-evaluation: {len(result.trust)} metric outputs on "
                  f"{settings['n_samples']} samples × {len(settings['seeds'])} seeds, {reference}; "
                  f"maps: {', '.join(settings['kinds'])}", highlight=False, markup=False)
    rows = result.trust.to_dict(orient="records")
    kinds = [k for k in DEGRADED if any(f"effect:{k}" in row for row in rows)]
    good = "linear contribution" if linear else "ground-truth"
    table = Table(title=f"Which metrics to trust{' (linear reference)' if linear else ''}: "
                        f"paired dominance δ of the {good} map over each degraded map, 95 % "
                        "interval (✗: includes 0 or below)")
    for column in ("#", "metric / output", "dir", *[KIND_HEADINGS[k] for k in kinds],
                   "resilience", "seed sd", "fwd / map", "ms / map", "verdict"):
        table.add_column(column, overflow="fold")
    for i, row in enumerate(rows, 1):
        table.add_row(str(i), escape(row["score"]), ARROWS[row["direction"]],
                      *[_effect(row, k) for k in kinds], _number(row["resilience"]),
                      _number(row["seed_sd"]), f"{row['forward']:g}",
                      _number(1000 * row["seconds_per_map"], 3), row["verdict"])
    console.print(table)
    for i, row in enumerate(rows, 1):
        if row["reason"]:
            console.print(f"  {i} {row['score']}: {row['verdict']}, {row['reason']}",
                          highlight=False, markup=False)
    rho = result.agreement
    matrix = Table(title="Agreement: Spearman ρ between the metrics over all scored maps "
                         "(lower-is-better negated: ρ > 0 agrees)")
    matrix.add_column("#")
    matrix.add_column("metric / output")
    numbers = {score: i for i, score in enumerate(result.trust["score"], 1)}
    for score in rho.columns:
        matrix.add_column(str(numbers.get(score, score)), justify="right")
    for score in rho.index:
        matrix.add_row(str(numbers.get(score, "")), escape(score),
                       *[_number(v, 1) for v in rho.loc[score].to_numpy()])
    console.print(matrix)
    for name, reason in result.skipped.items():
        console.print(f"  skipped {name}: {reason}", highlight=False, markup=False)
    if result.linear is not None:
        trust_lines(result.linear, console)


def meta(
    model: Path = typer.Option(..., "--model", help="Your model: a salbench checkpoint (e.g. "
                               "runs/quickstart/models/*.safetensors), a torch.save'd module or "
                               "state dict (with --arch), a TorchScript file, or "
                               "package.module:factory."),
    data: Path = typer.Option(..., "--data", help="Images with ground truth: a salbench dataset "
                              "folder (e.g. runs/quickstart/data/mri_lesions-*; its test split), "
                              "an image folder with --masks, or an .npz with x, y, masks."),
    masks: Path | None = typer.Option(None, "--masks", help="Ground-truth masks beside an image "
                                      "folder (masks/<class>/<stem>.png; white = relevant)."),
    arch: str | None = typer.Option(None, "--arch", help="Architecture of a state dict."),
    num_classes: int | None = typer.Option(None, "--num-classes", min=1,
                                           help="Classes of a state dict."),
    normalize: str = typer.Option("none", "--normalize", help="none or imagenet."),
    size: int | None = typer.Option(None, "--size", min=8, help="Resize folder images to SIZE."),
    metrics: str | None = typer.Option(None, "--metrics", help="Comma-separated metrics "
                                       "(default: every one that scores a given map, with "
                                       "cheap settings)."),
    n_samples: int = typer.Option(16, "--n-samples", help="Samples with a mask to score."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds 0..SEEDS-1 for the random maps and the "
                              "metrics' own draws."),
    accuracy_gate: float = typer.Option(0.8, "--accuracy-gate", help="Under this accuracy of "
                                        "the model on the scored samples, the metrics that read "
                                        "it are not testable (0 turns the gate off)."),
    linear: bool = typer.Option(False, "--linear", help="Also judge the metrics that read the "
                                "model on a linear model fitted to the samples, with its exact "
                                "map for each metric as the good map (W_y ⊙ (x − r), r the "
                                "metric's fill)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default "
                                    "runs/meta-MODEL)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
) -> None:
    """Which metrics can you trust? Scores every applicable metric on the ground-truth mask as a
    map (good by construction) and on degraded maps (mask + noise, shuffled mask, a random map, a
    randomised model's saliency) over several seeds, and prints per metric output its
    discrimination (δ with 95 % interval per degraded kind), resilience to changes that should
    not matter, seed spread, cost and a verdict (trust / weak / flagged; not testable for the
    metrics that read a model under --accuracy-gate on the samples), then the metrics'
    agreement matrix; writes Parquet tables, meta.json and an HTML page (report/index.html) to
    the output folder. With --linear, the metrics that read the model are judged again on a
    linear model fitted to the samples, whose exact map for each metric is known good for it.

    Example: salbench meta --model model.pt --data images/ --masks masks/ --seeds 3
    """
    from salbench.config import ConfigError
    from salbench.studies.meta import check_metrics, check_options, run_meta

    names = None if metrics is None else [m.strip() for m in metrics.split(",") if m.strip()]
    try:
        check_options(n_samples, seeds, normalize, accuracy_gate)
        check_metrics(names, linear)
    except ValueError as err:
        fail(str(err).splitlines()[0])
    run_dir = out or Path("runs") / f"meta-{model.stem}"
    try:
        result = run_meta(model, data, masks=masks, arch=arch, num_classes=num_classes,
                          normalize=normalize, size=size, metrics=names, n_samples=n_samples,
                          seeds=seeds, linear=linear, accuracy_gate=accuracy_gate,
                          out=run_dir, device=device)
    except (ValueError, TypeError, FileNotFoundError, ConfigError) as err:
        fail(str(err).splitlines()[0])
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "out": str(run_dir)}, indent=1))
        return
    console = Console(width=max(Console().width, TABLE_WIDTH))
    trust_lines(result, console)
    console.print(f"wrote: {run_dir} (page: {run_dir / 'report' / 'index.html'})",
                  highlight=False, markup=False)
