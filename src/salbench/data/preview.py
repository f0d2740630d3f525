"""A PNG grid of samples with their ground-truth contours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from salbench.data.dataset import GroundTruthDataset


def preview_grid(dataset: GroundTruthDataset, out: str | Path, count: int = 16) -> Path:
    """Show the first ``count`` samples, each with the contours of its mask levels, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(count, len(dataset))
    if count < 1:
        raise ValueError("the dataset has no samples to preview")
    cols = min(count, 8)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in zip(range(count), axes.flat):
        x, y, mask = (t.numpy() for t in dataset[i])
        image = x[0] if x.shape[0] == 1 else np.clip(x.transpose(1, 2, 0), 0, 1)
        ax.imshow(image, cmap="gray" if x.shape[0] == 1 else None, vmin=0, vmax=1)
        levels = sorted(float(v) for v in np.unique(mask) if v > 0)
        if levels:  # a contour between each pair of adjacent levels
            bounds = [(a + b) / 2 for a, b in zip([0.0] + levels[:-1], levels)]
            ax.contour(mask, levels=bounds, colors=["cyan", "yellow"][: len(bounds)],
                       linewidths=0.7)
        ax.set_title(dataset.classes[int(y)], fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
