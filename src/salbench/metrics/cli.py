"""``salbench evaluate``: score saved attribution maps on a dataset and write result rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

import torch
import typer
import yaml

from salbench.metrics.fiveband import soft_five_band
from salbench.metrics.groundtruth import GROUND_TRUTH_METRICS
from salbench.metrics.haas import haas
from salbench.metrics.perturbation import aopc, pixel_flipping, region_perturbation

MODEL_METRICS = {"region_perturbation": region_perturbation, "pixel_flipping": pixel_flipping,
                 "aopc": aopc, "haas": haas}
METRIC_NAMES = (*GROUND_TRUTH_METRICS, "soft_five_band", *MODEL_METRICS)


def _error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def read_maps(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attributions ``a`` ``[N, C, H, W]`` and optional row ``index`` ``[N]`` into the dataset
    from a ``.safetensors`` or ``.pt`` file (keys ``a`` and ``index``; a bare tensor is ``a``)."""
    if not path.is_file():
        raise FileNotFoundError(f"maps={str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        content = load_file(str(path))
    else:
        content = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(content, torch.Tensor):
        content = {"a": content}
    if "a" not in content:
        raise ValueError(f"maps={str(path)!r} has no tensor 'a' (keys: {sorted(content)})")
    return content["a"].float(), content.get("index")


def parse_params(items: list[str]) -> dict:
    """``key=value`` pairs, values parsed as YAML (``3`` -> int, ``[1, 2]`` -> list)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"param must look like key=value, got {item!r}")
        params[key] = yaml.safe_load(value)
    return params


def score_rows(metric: str, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               m: torch.Tensor, model, params: dict) -> dict[str, torch.Tensor]:
    """Per-sample scores of one metric on one batch, keyed by the metric row name."""
    if metric in GROUND_TRUTH_METRICS:
        return {metric: GROUND_TRUTH_METRICS[metric](a, (m > 0).float(), **params)}
    if metric == "soft_five_band":
        out = soft_five_band(a, m, **params)
        return {f"soft_five_band.{k}": getattr(out, k) for k in out._fields
                if k.endswith(("_avg", "_best"))}
    out = MODEL_METRICS[metric](model, x, y, a, **params)
    if metric == "haas":
        return {"haas.correct": out.correct, "haas.correct_ha": out.correct_ha}
    return {metric: out.scores}


def evaluate(
    maps: Annotated[Path, typer.Option("--maps", help="Attributions: .safetensors/.pt with 'a' "
                                       "[N, C, H, W] (and optional 'index' rows into --data).")],
    data: Annotated[Path, typer.Option("--data", help="salbench dataset folder.")],
    metric: Annotated[str, typer.Option("--metric", help=f"One of: {', '.join(METRIC_NAMES)}.")],
    run: Annotated[Path, typer.Option("--run", help="Run folder whose results receive the rows.")],
    model: Annotated[Path | None, typer.Option(
        "--model", help="Checkpoint (.safetensors) for model-based metrics.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Metric parameter key=value, repeatable "
        "(e.g. --param patch=8 --param fill=inpaint-fast).")] = None,
    method: Annotated[str, typer.Option("--method", help="Method name for the rows.")] = "unknown",
    study: Annotated[str, typer.Option("--study", help="Study name for the rows.")] = "adhoc",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1,
                                            help="Samples per metric call.")] = 64,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
) -> None:
    """Score saved attribution maps with one metric and append the rows to a run's results.

    Example: salbench evaluate --maps maps.safetensors --data data/mri --metric top_k_precision
    --run runs/demo --method saliency
    """
    from salbench.data.shards import load as load_dataset
    from salbench.results import ResultStore
    from salbench.runtime import resolve_device, track

    if metric not in METRIC_NAMES:
        _error(f"metric must be one of {', '.join(METRIC_NAMES)}; got {metric!r}")
    try:
        params = parse_params(param or [])
        a, index = read_maps(maps)
        dataset = load_dataset(data)
        dev = resolve_device(device)
    except (ValueError, FileNotFoundError) as err:
        _error(str(err))
    rows_idx = torch.arange(len(a)) if index is None else index.long()
    if len(rows_idx) != len(a) or (len(rows_idx) and int(rows_idx.max()) >= len(dataset)):
        _error(f"maps: {len(a)} maps do not match the {len(dataset)} samples of data "
               "(give 'index' rows in the maps file)")
    net = None
    if metric in MODEL_METRICS:
        if model is None:
            _error(f"metric {metric!r} needs --model")
        from salbench.models.checkpoints import load as load_model

        net, _ = load_model(model, dev)
    key_text = json.dumps([str(maps.resolve()), str(data.resolve()), metric, params, method,
                           str(model)], sort_keys=True, default=str)
    job_key = "evaluate-" + hashlib.sha256(key_text.encode()).hexdigest()[:16]
    store = ResultStore(run)
    if job_key in store.finished():
        typer.echo(f"already evaluated ({job_key}); nothing to do")
        return
    x_all, y_all, m_all = dataset.x, dataset.y, dataset.masks
    meta = dataset.meta
    rows = []
    starts = range(0, len(a), batch_size)
    try:
        for start in track(starts, f"evaluate {metric}"):
            idx = rows_idx[start:start + batch_size]
            x, y, m = x_all[idx].to(dev), y_all[idx].to(dev), m_all[idx].to(dev)
            scores = score_rows(metric, a[start:start + batch_size].to(dev), x, y, m, net, params)
            for name, values in scores.items():
                for i, v in zip(idx.tolist(), values.double().cpu().tolist()):
                    rows.append({"dataset": dataset.name, "model_id": str(model or ""),
                                 "method": method, "metric": name,
                                 "sample_id": str(meta["sample_id"].iloc[i]), "value": v,
                                 "params": params, "meta": {"y": int(y_all[i])}})
    except (ValueError, TypeError) as err:
        store.record_failure(job_key, str(err))
        _error(str(err))
    n = store.write_rows(job_key, rows, defaults={"study": study, "run": Path(run).name})
    typer.echo(f"wrote {n} rows to {run} ({job_key})")
