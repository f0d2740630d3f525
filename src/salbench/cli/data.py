"""``salbench data``: generate the ground-truth datasets to disk and preview them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from salbench.cli.common import fail

app = typer.Typer(help="Generate the ground-truth datasets (MRI lesions, synthetic cells) and "
                       "preview them.", no_args_is_help=True)
console = Console()


@app.command("mri-lesions")
def mri_lesions_command(
    n: int = typer.Option(..., "--n", min=1, help="Number of slices."),
    out: Path = typer.Option(..., "--out",
                             help="Output folder (resumed if it holds this dataset)."),
    seed: int = typer.Option(0, min=0, help="Seed: sample i depends only on (seed, i, options)."),
    size: int = typer.Option(270, min=8, help="Slice side in pixels (document 000: 270)."),
    w: float = typer.Option(0.5, help="Lesion peak intensity in (0, 1] (sets the SNR)."),
    placement: str = typer.Option("brain", help="Where lesions go: brain or white_matter."),
    backgrounds: Path | None = typer.Option(
        None, help="Folder of brain-extracted NIfTI volumes (default: MNI152 pseudo-subjects)."),
    demographics: Path | None = typer.Option(
        None, help="CSV with columns subject, sex (for --lesion-free --label sex)."),
    slices_per_subject: int = typer.Option(41, min=1, help="Template slices per pseudo-subject."),
    lesion_free: bool = typer.Option(False, help="Slices without lesions (pre-training corpus)."),
    label: str = typer.Option("slice_position",
                              help="Target of --lesion-free data: slice_position or sex."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
    shard_size: int = typer.Option(256, min=1, help="Samples per on-disk shard."),
) -> None:
    """Generate MRI slices with regular/irregular lesions and their masks (document 000).

    Example: salbench data mri-lesions --n 2000 --out data/mri --size 128 --workers 2
    """
    from salbench.data import mri_lesions

    params = {"size": size, "placement": placement, "backgrounds": backgrounds,
              "demographics": demographics, "slices_per_subject": slices_per_subject}
    if lesion_free:
        params["label"] = label
    else:
        params["w"] = w
    try:
        path = mri_lesions.write(n, out, seed=seed, workers=workers, shard_size=shard_size,
                                 lesion_free=lesion_free, **params)
    except ValueError as err:
        fail(str(err))
    console.print(f"wrote {n} slices to {path}")


@app.command("cells")
def cells_command(
    n: int = typer.Option(..., "--n", min=1, help="Number of images."),
    out: Path = typer.Option(..., "--out",
                             help="Output folder (resumed if it holds this dataset)."),
    seed: int = typer.Option(0, min=0, help="Seed: sample i depends only on (seed, i, options)."),
    size: int = typer.Option(224, min=32, help="Image side in pixels (document 001: 224 or 512)."),
    shard_size: int = typer.Option(200, min=1, help="Samples per shard (document 001: 200)."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
) -> None:
    """Generate ten-class synthetic cell images with 0/0.4/0.9 heatmaps (document 001).

    Example: salbench data cells --n 9600 --out data/cells --workers 2
    """
    from salbench.data import cells

    try:
        path = cells.write(n, out, seed=seed, size=size, shard_size=shard_size, workers=workers)
    except ValueError as err:
        fail(str(err))
    console.print(f"wrote {n} images to {path}")


@app.command("preview")
def preview_command(
    path: Path = typer.Argument(..., help="A dataset folder written by `salbench data ...`."),
    out: Path | None = typer.Option(None, help="PNG to write (default: DIR/preview.png)."),
    count: int = typer.Option(16, min=1, max=100, help="Number of samples shown."),
    split: str | None = typer.Option(None, help="Show only this split (train, val, test)."),
) -> None:
    """Write a PNG grid of samples with ground-truth contours (figure 1 of document 000, figure 2
    of document 001).

    Example: salbench data preview data/mri --count 8
    """
    from salbench.data import load
    from salbench.data.preview import preview_grid

    try:
        dataset = load(path)
        if split is not None:
            dataset = dataset.split(split)
        target = preview_grid(dataset, out or Path(path) / "preview.png", count)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    console.print(f"wrote {target}")
