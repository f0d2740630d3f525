"""``salbench evaluate``: score saved attribution maps with registered metrics and store the rows.

Reads what ``salbench explain`` writes (``METHOD.npy`` with ``METHOD.json``, or
``METHOD.safetensors`` with ``maps``, ``targets``, ``indices``), or any ``.safetensors`` / ``.pt``
holding a tensor ``a`` (and optionally ``index``) or a bare tensor.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer

from salbench.cli.common import fail, parse_params


def read_maps(path: Path) -> tuple[torch.Tensor, dict[str, Any]]:
    """Attributions ``[N, C, H, W]`` and what is known about them: ``sample_ids`` and
    ``targets`` (from ``salbench explain``'s metadata) or ``index`` rows into the dataset."""
    if not path.is_file():
        raise FileNotFoundError(f"--maps {str(path)!r} does not exist")
    info: dict[str, Any] = {}
    if path.suffix == ".npy":
        try:
            maps = torch.from_numpy(np.load(path, allow_pickle=False))
        except ValueError as err:
            raise ValueError(f"--maps {str(path)!r} is not a numeric .npy array ({err})") from None
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            info = json.loads(sidecar.read_text())
    elif path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                content = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
                meta = f.metadata() or {}
        except SafetensorError as err:
            raise ValueError(f"--maps {str(path)!r} is not a readable safetensors file "
                             f"({err})") from None
        info = json.loads(meta["salbench"]) if "salbench" in meta else {}
        key = "maps" if "maps" in content else "a"
        if key not in content:
            raise ValueError(f"--maps {str(path)!r} holds no tensor 'maps' or 'a' (keys: "
                             f"{sorted(content)})")
        maps = content[key]
        if "index" in content:
            info["index"] = content["index"].long().tolist()
    else:
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"--maps {str(path)!r} is not a readable torch file "
                             f"({type(err).__name__})") from None
        if isinstance(content, dict):
            if "a" not in content:
                raise ValueError(f"--maps {str(path)!r} holds no tensor 'a' (keys: "
                                 f"{sorted(content)})")
            if "index" in content:
                info["index"] = torch.as_tensor(content["index"]).long().tolist()
            content = content["a"]
        maps = content
    if not isinstance(maps, torch.Tensor) or maps.ndim not in (3, 4):
        raise ValueError(f"--maps must hold attributions [N, C, H, W], got "
                         f"{getattr(maps, 'shape', type(maps).__name__)}")
    return (maps[:, None] if maps.ndim == 3 else maps).float(), info


def dataset_rows(info: dict[str, Any], n_maps: int, dataset) -> np.ndarray:
    """Rows of ``dataset`` the maps belong to: by sample id, by index, or the first ``n_maps``."""
    if "sample_ids" in info:
        position = {str(s): i for i, s in enumerate(dataset.meta["sample_id"].astype(str))}
        missing = [s for s in info["sample_ids"] if str(s) not in position]
        if missing:
            raise ValueError(f"--maps: sample ids {missing[:5]} are not in --data")
        rows = np.array([position[str(s)] for s in info["sample_ids"]])
    elif "index" in info:
        rows = np.asarray(info["index"], dtype=np.int64)
    else:
        rows = np.arange(n_maps)
    if len(rows) != n_maps or (len(rows) and (rows.max() >= len(dataset) or rows.min() < 0)):
        raise ValueError(f"--maps: {n_maps} maps do not match the {len(dataset)} samples of "
                         "--data (give sample ids or an index with the maps)")
    return rows


def evaluate(
    maps: Annotated[Path, typer.Option("--maps", help="Attributions written by `salbench "
                                       "explain` (.npy + .json, or .safetensors), or a "
                                       ".safetensors/.pt holding 'a' [N, C, H, W].")],
    data: Annotated[Path, typer.Option("--data", help="Dataset: a salbench dataset folder, an "
                                       "image folder or an .npz.")],
    metric: Annotated[list[str], typer.Option("--metric", help="A registered metric (`salbench "
                                              "metrics`); repeat for several.")],
    run: Annotated[Path, typer.Option("--run", help="Run folder whose results receive the rows.")],
    model: Annotated[str | None, typer.Option(
        "--model", help="Model for model-based metrics: a salbench checkpoint, a torch.save'd "
        "module or state dict (with --arch), a TorchScript file or package.module:factory.")
    ] = None,
    arch: Annotated[str | None, typer.Option(
        "--arch", help="Architecture of a state dict.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Metric parameter key=value, repeatable, for every --metric "
        "(e.g. --param patch=8 --param fill=inpaint-fast).")] = None,
    method: Annotated[str | None, typer.Option(
        "--method", help="Method name for the rows (default: from the maps file).")] = None,
    study: Annotated[str, typer.Option("--study", help="Study name for the rows.")] = "adhoc",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
) -> None:
    """Score saved attribution maps with registered metrics and add the rows to a run's results.

    Directions (higher or lower is better) come from the metric registry and travel with every
    row, so `salbench report RUN` ranks each metric the right way round.

    Example: salbench evaluate --maps maps/saliency.npy --data data/mri --metric top_k_precision
    --metric pixel_flipping --model runs/m/model.safetensors --run runs/demo
    """
    from salbench.data.sources import load_source
    from salbench.metrics import get_metric, score
    from salbench.results import ResultStore, RunLockedError, concat, metric_rows
    from salbench.runtime import resolve_device

    try:
        specs = [get_metric(name) for name in metric]
        params = parse_params(param or [], "--param")
        for spec in specs:
            spec.resolve(params)
        a, info = read_maps(maps)
        dataset = load_source(data)
        rows = dataset_rows(info, len(a), dataset)
        dev = resolve_device(device)
    except (ValueError, TypeError, FileNotFoundError) as err:
        fail(str(err))
    net = None
    if any("model" in spec.inputs for spec in specs):
        if model is None:
            fail(f"metrics {[s.name for s in specs if 'model' in s.inputs]} need --model")
        from salbench.models.loading import load_model

        try:
            net = load_model(model, arch=arch, device=dev).model
        except (ValueError, OSError) as err:
            fail(str(err))
    explainers = [s.name for s in specs if s.kind in ("explainer", "map_pair", "model_pair")]
    if explainers:
        fail(f"metrics {explainers} need an explanation function or a second map; run them "
             "in a study or from Python (salbench.metrics.score)")
    method = method or info.get("method", "unknown")
    x = dataset.x[rows].to(dev)
    y = torch.as_tensor(info["targets"]) if "targets" in info else dataset.y[rows]
    y, m = y.long().to(dev), dataset.masks[rows].to(dev)
    ids = dataset.meta["sample_id"].astype(str).to_numpy()[rows].tolist()
    meta = [{"true": int(t)} for t in dataset.y[rows].tolist()]
    key_text = json.dumps([str(maps.resolve()), str(data.resolve()), metric, params, method,
                           model, arch], sort_keys=True, default=str)
    job_key = "evaluate-" + hashlib.sha256(key_text.encode()).hexdigest()[:16]
    for spec in specs:  # what each metric costs, before the work starts
        cost = spec.estimate(params, tuple(x.shape[1:]), net)
        if cost.forward:
            typer.echo(f"{spec.name}: {cost.forward:g} model passes per image "
                       f"({len(x)} images)")
    store = ResultStore(run)
    try:
        with store.lock():
            if job_key in store.finished():
                typer.echo(f"already evaluated ({job_key}); nothing to do")
                return
            inputs = {"a": a.to(dev), "m": m, "model": net, "x": x, "y": y}
            parts = []
            for spec in specs:
                result = score(spec.name, **{k: inputs[k] for k in spec.inputs}, **params)
                parts.append(metric_rows(result, dataset=dataset.name, model_id=str(model or ""),
                                         method=method, sample_ids=ids,
                                         method_params=info.get("params", {}), meta=meta,
                                         factors=params))
            counts = store.write(job_key, concat(parts),
                                 defaults={"study": study, "run": Path(run).name})
    except RunLockedError as err:
        fail(str(err))
    except (ValueError, TypeError) as err:
        store.record_failure(job_key, str(err))
        fail(str(err))
    shown = ", ".join(f"{n} {t}" for t, n in counts.items())
    typer.echo(f"wrote {shown} rows to {run} ({job_key})")
