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
    field_of_view: str = typer.Option(
        "crop", help="crop: a size-px window of the 270 px slice, lesions at their drawn size; "
                     "scale: the whole slice resampled to size px, lesions with it."),
    w: float = typer.Option(0.5, help="Lesion peak intensity in (0, 1] (sets the SNR)."),
    placement: str = typer.Option("brain", help="Where lesions go: brain or white_matter."),
    backgrounds: Path | None = typer.Option(
        None, help="Folder of brain-extracted NIfTI volumes (default: MNI152 pseudo-subjects)."),
    demographics: Path | None = typer.Option(
        None, help="CSV with columns subject, sex (for --lesion-free --label sex)."),
    slices_per_subject: int = typer.Option(41, min=1, help="Template slices per pseudo-subject."),
    split_fractions: tuple[float, float, float] = typer.Option(
        (0.6, 0.2, 0.2), help="Train, val and test shares of the subjects."),
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

    params = {"size": size, "field_of_view": field_of_view, "placement": placement,
              "backgrounds": backgrounds, "demographics": demographics,
              "slices_per_subject": slices_per_subject, "split_fractions": split_fractions}
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
    split_fractions: tuple[float, float, float] = typer.Option(
        (32 / 48, 8 / 48, 8 / 48), show_default="32/48 8/48 8/48",
        help="Train, val and test shares of the shards (document 001: 32/8/8 shards)."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
) -> None:
    """Generate ten-class synthetic cell images with 0/0.4/0.9 heatmaps (document 001).

    Example: salbench data cells --n 9600 --out data/cells --workers 2
    """
    from salbench.data import cells

    try:
        path = cells.write(n, out, seed=seed, size=size, shard_size=shard_size,
                           split_fractions=split_fractions, workers=workers)
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


@app.command("import")
def import_command(
    source: Path = typer.Argument(..., help="An image folder (root/<class>/<image>, optionally "
                                            "root/{train,val,test}/<class>/<image>) or an .npz "
                                            "with x, y (and masks)."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (must not exist)."),
    masks: Path | None = typer.Option(None, "--masks", help="Parallel mask folder "
                                      "(masks/<class>/<stem>.png; white = relevant)."),
    size: int | None = typer.Option(None, "--size", min=8, help="Resize images to SIZE px."),
    channels: int = typer.Option(3, "--channels", min=1, max=3, help="3 (RGB) or 1 (grey)."),
) -> None:
    """Import your own images (and ground-truth masks) as a salbench dataset folder that
    `salbench train`, `explain`, `evaluate` and `benchmark` read.

    Example: salbench data import images/ --masks masks/ --out data/mine --size 128
    """
    from salbench.data import save
    from salbench.data.sources import load_source

    if out.exists():
        fail(f"--out {str(out)!r} exists; choose a new folder")
    try:
        dataset = load_source(source, masks, size, channels)
        save(dataset, out)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    with_masks = int(dataset.meta["has_mask"].sum()) if "has_mask" in dataset.meta else 0
    counts = dataset.meta["split"].value_counts().to_dict()
    console.print(f"wrote {len(dataset)} images ({with_masks} with masks; splits {counts}) to "
                  f"{out}")
