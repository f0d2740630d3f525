"""``salbench explain`` (attribution maps of a checkpoint on a dataset, saved to disk) and
``salbench methods`` (the registry)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from salbench.cli.common import fail, parse_params

FORMATS = ("npy", "safetensors")
TARGETS = ("true", "predicted")


def explain(
    checkpoint: str = typer.Argument(..., help="Model: a salbench checkpoint, a torch.save'd "
                                     "module or state dict (with --arch), a TorchScript file or "
                                     "package.module:factory."),
    data: Path = typer.Argument(..., help="Dataset: a salbench dataset folder, an image folder "
                                "or an .npz (`salbench data import`)."),
    arch: str | None = typer.Option(None, "--arch", help="Architecture of a state dict."),
    method: str = typer.Option("saliency", "--method", "-m", help="Method (`salbench methods`)."),
    out: Path = typer.Option(Path("maps"), help="Folder to write the maps to."),
    split: str = typer.Option("test", help="train, val, test or all."),
    target: str = typer.Option("true", help="Explain the true class or the predicted one."),
    set_: list[str] = typer.Option([], "--set", help="Method parameter key=value (repeat)."),
    limit: int | None = typer.Option(None, min=1, help="Explain at most this many samples."),
    batch_size: int = typer.Option(16, min=1, help="Images per explain call."),
    fmt: str = typer.Option("npy", "--format", help="npy or safetensors."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Compute one method's attribution maps ``[N, C, H, W]`` and save them with their sample ids.

    Writes OUT/METHOD.npy plus OUT/METHOD.json (method, parameters, targets, sample ids), or one
    OUT/METHOD.safetensors holding ``maps``, ``targets`` and ``indices`` with the same metadata.

    Example: salbench explain runs/m.safetensors data/cells --method lrp_tutorial --set epsilon=0.1
    """
    from salbench.data.sources import load_source
    from salbench.explain.registry import explain as run_method
    from salbench.explain.registry import get_method
    from salbench.models.loading import load_model
    from salbench.runtime import resolve_device, set_quiet, track

    set_quiet(quiet)
    try:
        spec = get_method(method)
        params = parse_params(set_)
        unknown = sorted(set(params) - set(spec.params))
        if unknown:
            raise ValueError(f"--set: method {method!r} has no parameters {unknown}; it takes "
                             f"{sorted(spec.params)}")
        if fmt not in FORMATS:
            raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
        if target not in TARGETS:
            raise ValueError(f"--target must be one of {TARGETS}, got {target!r}")
        dev = resolve_device(device)
        model = load_model(checkpoint, arch=arch, device=dev).model
        dataset = load_source(data)
        if split != "all":
            dataset = dataset.split(split)
    except (ValueError, FileNotFoundError, TypeError) as err:
        fail(str(err))
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        fail(f"split {split!r} of {data} holds no samples")
    maps, targets = [], []
    starts = range(0, n, batch_size)
    for start in track(starts, f"{method}", total=len(starts)):
        stop = min(start + batch_size, n)
        x = dataset.x[start:stop].to(dev, torch.float32)
        y = dataset.y[start:stop].to(dev)
        if target == "predicted":
            with torch.no_grad():
                y = model(x).argmax(1)
        try:
            maps.append(run_method(model, x, y, method, **params).cpu())
        except ValueError as err:
            fail(str(err))
        targets.append(y.cpu())
    result, labels = torch.cat(maps).float(), torch.cat(targets)
    sample_ids = [str(s) for s in dataset.meta["sample_id"].iloc[:n]]
    meta = {"method": method, "params": dict(params),
            "checkpoint": str(checkpoint), "data": str(data), "split": split, "target": target,
            "sample_ids": sample_ids, "targets": labels.tolist()}
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        path = out / f"{method}.npy"
        np.save(path, result.numpy())
        (out / f"{method}.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    else:
        from safetensors.torch import save_file

        path = out / f"{method}.safetensors"
        save_file({"maps": result.contiguous(), "targets": labels,
                   "indices": torch.arange(n)}, str(path),
                  metadata={"salbench": json.dumps(meta, default=str)})
    Console().print(f"{n} maps {tuple(result.shape[1:])} -> {path}", highlight=False)


def methods() -> None:
    """List every attribution method with its backend and default parameters.

    Example: salbench methods
    """
    from salbench.explain.registry import available

    table = Table()
    for column in ("method", "backend", "parameters (defaults)", "summary"):
        table.add_column(column)
    for spec in available():
        params = ", ".join(f"{k}={v!r}" for k, v in spec.params.items())
        table.add_row(spec.name, spec.backend, params, spec.summary)
    Console().print(table)
