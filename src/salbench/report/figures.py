"""Matplotlib figures for the report: attribution maps, galleries, and the study plots.

Every helper returns a :class:`matplotlib.figure.Figure` built without pyplot (no global figure
state, nothing to close), ready to wrap in :class:`salbench.report.Figure`. Inputs are numpy
arrays or tidy pandas frames; torch tensors are accepted where an array is expected.

Maps are shown as the documents show them: channels reduced by a named step (``reduce``), divided
by their maximum absolute value, and drawn with a diverging colormap symmetric around 0 (red
positive, blue negative, white 0), so the sign of the relevance is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

MAP_CMAP = "RdBu_r"
"""Diverging colormap for attribution maps: blue negative, white 0, red positive."""
CORRELATION_CMAP = "PuOr_r"
REDUCTIONS = ("sum", "abs-sum", "max-abs", "l2")
MASK_COLOR = "#1a9850"


def to_numpy(array: Any, name: str = "array") -> np.ndarray:
    """A float64 numpy copy of ``array`` (numpy, torch tensor on any device, or nested lists)."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    try:
        return np.array(array, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array or tensor of numbers: {err}") from None


def reduce_channels(a: Any, reduce: str = "sum") -> np.ndarray:
    """Channel reduction of a map ``[C, H, W]`` (or ``[H, W]``, returned as is) to ``[H, W]``.

    ``sum``: Σ_c a_c (keeps the sign; the cells document's channel adjustment, document 001,
    section 3.3); ``abs-sum``: Σ_c |a_c|; ``max-abs``: max_c |a_c|; ``l2``: (Σ_c a_c²)^½.
    """
    h = to_numpy(a, "map")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if h.ndim == 2:
        return h
    if h.ndim != 3:
        raise ValueError(f"map must have shape [C, H, W] or [H, W], got {list(h.shape)}")
    if reduce == "sum":
        return h.sum(axis=0)
    if reduce == "abs-sum":
        return np.abs(h).sum(axis=0)
    if reduce == "max-abs":
        return np.abs(h).max(axis=0)
    return np.sqrt((h * h).sum(axis=0))


def normalise_max_abs(h: np.ndarray) -> np.ndarray:
    """``h / max|h|`` in [−1, 1]; an all-zero map stays zero."""
    scale = np.abs(h).max() if h.size else 0.0
    return h / scale if scale > 0 else np.zeros_like(h)


def image_for_display(image: Any) -> np.ndarray:
    """An input image ``[C, H, W]`` (C = 1 or 3) or ``[H, W]`` as ``[H, W]`` or ``[H, W, 3]``
    scaled to [0, 1] by its own minimum and maximum."""
    x = to_numpy(image, "image")
    if x.ndim == 3:
        if x.shape[0] == 1:
            x = x[0]
        elif x.shape[0] == 3:
            x = np.moveaxis(x, 0, -1)
        else:
            raise ValueError(f"image must have 1 or 3 channels, got shape {list(x.shape)}")
    elif x.ndim != 2:
        raise ValueError(f"image must have shape [C, H, W] or [H, W], got {list(x.shape)}")
    low, high = x.min(), x.max()
    return (x - low) / (high - low) if high > low else np.zeros_like(x)


def mask_levels(mask: np.ndarray) -> list[float]:
    """Contour levels between the distinct values of a ground-truth mask: midpoints of the sorted
    values when there are at most five (binary masks: 0.5; cells' 0/0.4/0.9: 0.2 and 0.65), else
    half the maximum."""
    values = np.unique(mask)
    if values.size < 2:
        return []
    if values.size <= 5:
        return list((values[:-1] + values[1:]) / 2.0)
    return [float(values.max()) / 2.0]


def draw_mask_contours(ax, mask: Any, color: str = MASK_COLOR, linewidth: float = 0.9) -> None:
    """Ground-truth outline(s) of ``mask [H, W]`` on ``ax``."""
    m = to_numpy(mask, "mask")
    levels = mask_levels(m)
    if levels:
        ax.contour(m, levels=levels, colors=color, linewidths=linewidth)


def show_map(ax, a: Any, mask: Any = None, reduce: str = "sum", cmap: str = MAP_CMAP):
    """Draw a map ``[C, H, W]``/``[H, W]``: reduced, divided by max|h|, colour limits ±1, with the
    ground-truth contours of ``mask`` on top. Returns the image artist."""
    h = normalise_max_abs(reduce_channels(a, reduce))
    artist = ax.imshow(h, cmap=cmap, norm=Normalize(-1.0, 1.0), interpolation="nearest")
    if mask is not None:
        draw_mask_contours(ax, mask)
    _bare(ax)
    return artist


def show_image(ax, image: Any, mask: Any = None):
    """Draw an input image (grey for one channel) with optional ground-truth contours."""
    x = image_for_display(image)
    artist = ax.imshow(x, cmap="gray" if x.ndim == 2 else None, vmin=0.0, vmax=1.0,
                       interpolation="nearest")
    if mask is not None:
        draw_mask_contours(ax, mask)
    _bare(ax)
    return artist


def map_grid(maps: Sequence[Sequence[Any]], *, row_labels: Sequence[str] = (),
             col_labels: Sequence[str] = (), titles: Sequence[Sequence[str]] | None = None,
             images: Sequence[Any] | None = None,
             masks: Sequence[Any] | None = None, reduce: str = "sum", panel: float = 1.5,
             title: str | None = None) -> Figure:
    """A grid of attribution maps: row r, column c shows ``maps[r][c]`` (``None`` leaves a blank).

    With ``images`` (one per row, ``None`` allowed) an "input" column comes first; with ``masks``
    (one per row) a "ground truth" column follows (left blank on rows whose image is ``None``)
    and every map of the row gets its contours.
    ``col_labels`` title the first row's maps; ``titles[r][c]`` titles each map instead.
    One colorbar labelled h / max|h| serves all maps. ``panel``: inches per panel.
    """
    rows = [list(r) for r in maps]
    if not rows:
        raise ValueError("maps must hold at least one row")
    for name, seq in (("images", images), ("masks", masks), ("row_labels", row_labels or None)):
        if seq is not None and len(seq) != len(rows):
            raise ValueError(f"{name} must have one entry per row ({len(rows)}), got {len(seq)}")
    lead = [("input", "image")] if images is not None else []
    lead += [("ground truth", "mask")] if masks is not None else []
    ncols = len(lead) + max(len(r) for r in rows)
    fig = Figure(figsize=(panel * ncols + 0.9, panel * len(rows) + (0.45 if title else 0.2)),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), ncols, squeeze=False))
    artist = None
    for r, row in enumerate(rows):
        mask = None if masks is None else masks[r]
        for c, (label, kind) in enumerate(lead):
            ax = axes[r, c]
            if kind == "image" and images[r] is not None:
                show_image(ax, images[r])
            elif kind == "mask" and mask is not None and (images is None or images[r] is not None):
                ax.imshow(to_numpy(mask, "mask"), cmap="Greens", vmin=0.0, interpolation="nearest")
                _bare(ax)
            else:
                ax.axis("off")
            if r == 0:
                ax.set_title(label, fontsize=8)
        for c in range(len(lead), ncols):
            ax, j = axes[r, c], c - len(lead)
            if j < len(row) and row[j] is not None:
                artist = show_map(ax, row[j], mask=mask, reduce=reduce)
                if titles is not None and j < len(titles[r]):
                    ax.set_title(titles[r][j], fontsize=8)
                elif titles is None and r == 0 and j < len(col_labels):
                    ax.set_title(col_labels[j], fontsize=8)
            else:
                ax.axis("off")
        if r < len(row_labels):
            axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
            axes[r, 0].axis("on")
            _bare(axes[r, 0])
    if artist is not None:
        bar = fig.colorbar(artist, ax=axes, shrink=0.8, ticks=[-1, 0, 1], aspect=25)
        bar.set_label("h / max|h|", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def heatmap(matrix: pd.DataFrame, *, title: str | None = None, cmap: str = CORRELATION_CMAP,
            vmin: float | None = -1.0, vmax: float | None = 1.0, annotate: bool = True,
            fmt: str = "{:.2f}", colorbar_label: str = "") -> Figure:
    """A labelled matrix (rows × columns of ``matrix``), NaN cells left grey, values written in
    the cells when ``annotate`` and the matrix has at most 20 columns."""
    values = matrix.to_numpy(dtype=np.float64)
    n_rows, n_cols = values.shape
    fig = Figure(figsize=(max(3.5, 0.55 * n_cols + 2.2), max(2.5, 0.45 * n_rows + 1.4)),
                 layout="constrained")
    ax = fig.subplots()
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap=colormaps[cmap].with_extremes(bad="#dddddd"), vmin=vmin,
                      vmax=vmax, aspect="auto")
    ax.set_xticks(range(n_cols), [str(c) for c in matrix.columns], rotation=40, ha="right",
                  fontsize=8)
    ax.set_yticks(range(n_rows), [str(i) for i in matrix.index], fontsize=8)
    if annotate and n_cols <= 20:
        low, high = image.norm.vmin, image.norm.vmax
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                strong = abs((v - (low + high) / 2) / ((high - low) / 2 or 1)) > 0.7
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                        color="white" if strong else "black")
    bar = fig.colorbar(image, ax=ax, shrink=0.85)
    bar.set_label(colorbar_label, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def forest_plot(scores: pd.DataFrame, *, label: str = "method", order: Sequence[str] | None = None,
                ncols: int = 4, title: str | None = None) -> Figure:
    """One panel per metric: each method's mean (dot) with its CI (bar), best rank marked.

    ``scores``: rows of one dataset from :attr:`salbench.results.stats.Leaderboard.scores`
    (columns ``score``, ``label``, ``mean``, ``ci_low``, ``ci_high``, ``rank``,
    ``lower_is_better``). Methods keep one order across panels (``order`` or by mean rank).
    """
    metrics = sorted(scores["score"].unique())
    if not metrics:
        raise ValueError("scores is empty")
    if order is None:
        order = list(scores.groupby(label)["rank"].mean().sort_values(kind="stable").index)
    ncols = min(ncols, len(metrics))
    nrows = -(-len(metrics) // ncols)
    height = max(1.6, 0.22 * len(order) + 0.9)
    fig = Figure(figsize=(3.0 * ncols + 0.6, height * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    ypos = {m: i for i, m in enumerate(order)}
    for ax, metric in zip(axes, metrics):
        part = scores[scores["score"] == metric]
        y = part[label].map(ypos).to_numpy(dtype=float)
        best = (part["rank"] == 1).to_numpy()
        err = np.vstack([part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]])
        ax.errorbar(part["mean"], y, xerr=err, fmt="none", ecolor="#555555", elinewidth=1,
                    capsize=2)
        ax.scatter(part["mean"], y, c=np.where(best, "#d7301f", "#2b6cb0"), s=18, zorder=3)
        arrow = "↓ better" if bool(part["lower_is_better"].iloc[0]) else "↑ better"
        ax.set_title(f"{metric} ({arrow})", fontsize=8)
        ax.set_yticks(range(len(order)), order if ax in axes[::ncols] else [""] * len(order),
                      fontsize=7)
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    for ax in axes[len(metrics):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def box_plot(df: pd.DataFrame, x: str, y: str, *, hue: str | None = None,
             order: Sequence | None = None, hue_order: Sequence | None = None,
             line: pd.DataFrame | None = None, line_label: str = "",
             xlabel: str | None = None, ylabel: str | None = None,
             title: str | None = None) -> Figure:
    """Box plots of ``y`` per ``x`` category (side by side per ``hue``), optionally with a line on
    a second axis: ``line`` has columns ``x`` and ``y`` (e.g. mean accuracy per fine-tuning
    degree, document 000, figure 4), drawn per ``hue`` when it has that column."""
    _need(df, [x, y] + ([hue] if hue else []), "df")
    order = list(order) if order is not None else _levels(df[x])
    hues = (list(hue_order) if hue_order is not None else _levels(df[hue])) if hue else [None]
    fig = Figure(figsize=(max(4.0, 0.5 * len(order) * len(hues) + 1.5), 3.2),
                 layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(hues)
    colors = _palette(len(hues))
    for k, level in enumerate(hues):
        part = df if level is None else df[df[hue] == level]
        data = [part.loc[part[x] == cat, y].dropna().to_numpy() for cat in order]
        pos = np.arange(len(order)) - 0.4 + width * (k + 0.5)
        keep = [i for i, d in enumerate(data) if d.size]
        if keep:
            box = ax.boxplot([data[i] for i in keep], positions=pos[keep], widths=width * 0.85,
                             patch_artist=True, showfliers=True,
                             flierprops={"markersize": 2})
            for patch in box["boxes"]:
                patch.set(facecolor=colors[k], alpha=0.55)
        if level is not None:
            ax.plot([], [], color=colors[k], linewidth=6, alpha=0.55, label=str(level))
    ax.set_xticks(range(len(order)), [str(c) for c in order], fontsize=8)
    ax.set_xlabel(xlabel if xlabel is not None else x, fontsize=8)
    ax.set_ylabel(ylabel if ylabel is not None else y, fontsize=8)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    if line is not None:
        _need(line, [x, y], "line")
        twin = ax.twinx()
        for k, level in enumerate(hues):
            part = line if level is None or hue not in line.columns else line[line[hue] == level]
            pos = [order.index(v) for v in part[x] if v in order]
            vals = [v for c, v in zip(part[x], part[y]) if c in order]
            twin.plot(pos, vals, marker="o", markersize=3, color=colors[k] if level else "black",
                      linestyle="--")
        twin.set_ylabel(line_label or y, fontsize=8)
    if hue:
        ax.legend(fontsize=7, title=hue, title_fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _panel_axes(df: pd.DataFrame, panel: str | None, width: float, height: float
                ) -> tuple[Figure, list[tuple[Any, pd.DataFrame, str | None]]]:
    """A figure with one subplot per ``panel`` value (at most 3 per row), or one subplot, and the
    (axes, rows, panel value) of each."""
    values = _levels(df[panel]) if panel else [None]
    cols = min(3, len(values))
    rows = -(-len(values) // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes[len(values):]:
        ax.axis("off")
    return fig, [(ax, df if v is None else df[df[panel] == v], v)
                 for ax, v in zip(axes, values)]


def _finish(ax, x: str, y: str, xlabel: str | None, ylabel: str | None, title: str | None,
            legend: str | None, show_legend: bool) -> None:
    ax.set_xlabel(xlabel if xlabel is not None else x, fontsize=8)
    ax.set_ylabel(ylabel if ylabel is not None else y, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(color="#eeeeee", linewidth=0.6)
    if show_legend:
        ax.legend(fontsize=7, title=legend, title_fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)


def scatter_plot(df: pd.DataFrame, x: str, y: str, *, hue: str | None = None,
                 panel: str | None = None, xerr: str | None = None, yerr: str | None = None,
                 xlabel: str | None = None, ylabel: str | None = None, title: str | None = None,
                 diagonal: bool = False, correlation: bool = False) -> Figure:
    """Scatter of ``y`` against ``x``, coloured per ``hue``, one panel per ``panel`` value;
    ``xerr``/``yerr`` columns draw error bars (document 001, figure 3); ``correlation`` writes
    Pearson's r per hue level in the legend (document 000, figure 8); ``diagonal`` draws y = x."""
    _need(df, [c for c in (x, y, hue, panel, xerr, yerr) if c], "df")
    fig, panels = _panel_axes(df, panel, 4.6, 3.6)
    levels = _levels(df[hue]) if hue else [None]
    colors = dict(zip(levels, _palette(len(levels))))
    for ax, rows, value in panels:
        for level in levels:
            part = rows if level is None else rows[rows[hue] == level]
            if part.empty:
                continue
            label = "" if level is None else str(level)
            if correlation and len(part) >= 3 and part[x].nunique() > 1 and part[y].nunique() > 1:
                label += f" r = {np.corrcoef(part[x], part[y])[0, 1]:.2f}"
            if xerr or yerr:
                ax.errorbar(part[x], part[y], xerr=part[xerr].fillna(0) if xerr else None,
                            yerr=part[yerr].fillna(0) if yerr else None, fmt="none",
                            elinewidth=0.5, alpha=0.6, color=colors[level])
            ax.scatter(part[x], part[y], s=10, alpha=0.75, color=colors[level],
                       label=label.strip() or None)
        if diagonal:
            low = min(df[x].min(), df[y].min())
            high = max(df[x].max(), df[y].max())
            ax.plot([low, high], [low, high], color="#999999", linewidth=0.8, linestyle=":")
        _finish(ax, x, y, xlabel, ylabel, title if panel is None else str(value), hue,
                bool(hue or correlation))
    if panel and title:
        fig.suptitle(title, fontsize=9)
    return fig


def line_plot(df: pd.DataFrame, x: str, y: str, *, hue: str | None = None,
              panel: str | None = None, group: str | None = None,
              band: tuple[str, str] | None = None, xlabel: str | None = None,
              ylabel: str | None = None, title: str | None = None, logx: bool = False,
              diagonal: bool = False, markers: bool = True, dashed: Sequence[str] = ()) -> Figure:
    """Lines of ``y`` over ``x`` per ``hue`` (ROC curves, perturbation curves, metric against a
    parameter), one panel per ``panel`` value; ``group``: a column whose values each get their
    own line in the hue's colour (several branches of one method); ``band = (low, high)`` columns
    shade an interval; ``diagonal`` draws y = x (the chance line of a ROC); hue levels in
    ``dashed`` are drawn dashed and on top (visible where two lines coincide)."""
    cols = [c for c in (x, y, hue, panel, group) if c] + (list(band) if band else [])
    _need(df, cols, "df")
    fig, panels = _panel_axes(df, panel, 4.8, 3.4)
    levels = _levels(df[hue]) if hue else [None]
    colors = dict(zip(levels, _palette(len(levels))))
    for ax, rows, value in panels:
        for level in levels:
            part = rows if level is None else rows[rows[hue] == level]
            lines = part.groupby(group, sort=False) if group else [(None, part)]
            for k, (_, line) in enumerate(lines):
                line = line.sort_values(x)
                style = "--" if level in dashed else "-"
                ax.plot(line[x], line[y], color=colors[level], linewidth=1.2, linestyle=style,
                        marker="o" if markers else None, markersize=2.5, zorder=3 if
                        level in dashed else 2,
                        label=None if level is None or k else str(level))
                if band:
                    ax.fill_between(line[x], line[band[0]], line[band[1]], color=colors[level],
                                    alpha=0.18, linewidth=0)
        if diagonal:
            ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle=":")
        if logx:
            ax.set_xscale("log")
        _finish(ax, x, y, xlabel, ylabel, title if panel is None else str(value), hue,
                bool(hue))
    if panel and title:
        fig.suptitle(title, fontsize=9)
    return fig


def contour_plot(df: pd.DataFrame, x: str, y: str, z: str, *, levels: int = 12,
                 symlog: bool = True, xlabel: str | None = None, ylabel: str | None = None,
                 title: str | None = None, mark: str | None = "max",
                 cmap: str = "viridis") -> Figure:
    """Filled contours of ``z`` over a grid of ``x`` × ``y`` values (document 002, figures
    4.1–4.2: AUC over the two layer groups' hyperparameters). ``symlog`` draws axes on a
    symmetric log scale so the grid's 0 and 10⁻⁴…10⁰ values are all visible; ``mark`` ("max",
    "min" or None) marks the best grid point."""
    _need(df, [x, y, z], "df")
    grid = df.pivot_table(index=y, columns=x, values=z, aggfunc="mean").sort_index()
    grid = grid.reindex(sorted(grid.columns), axis=1)
    xs, ys = grid.columns.to_numpy(float), grid.index.to_numpy(float)
    fig = Figure(figsize=(4.6, 3.8), layout="constrained")
    ax = fig.subplots()
    if len(xs) >= 2 and len(ys) >= 2:
        filled = ax.contourf(xs, ys, grid.to_numpy(float), levels=levels, cmap=cmap)
    else:
        filled = ax.scatter(np.repeat(xs, len(ys)), np.tile(ys, len(xs)),
                            c=grid.to_numpy(float).T.ravel(), cmap=cmap)
    bar = fig.colorbar(filled, ax=ax)
    bar.set_label(z, fontsize=8)
    if mark in ("max", "min"):
        values = grid.to_numpy(float)
        i, j = np.unravel_index(np.nanargmax(values) if mark == "max" else np.nanargmin(values),
                                values.shape)
        ax.plot(xs[j], ys[i], marker="*", color="red", markersize=10, markeredgecolor="white")
    if symlog:
        positive = np.concatenate([xs[xs > 0], ys[ys > 0]])
        linthresh = float(positive.min()) if positive.size else 1.0
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_yscale("symlog", linthresh=linthresh)
    ax.set_xlabel(xlabel if xlabel is not None else x, fontsize=8)
    ax.set_ylabel(ylabel if ylabel is not None else y, fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _levels(series: pd.Series) -> list:
    return list(pd.unique(series.dropna()))


def _palette(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _need(df: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}; it has {list(df.columns)}")


__all__ = ["MAP_CMAP", "REDUCTIONS", "box_plot", "contour_plot", "draw_mask_contours",
           "forest_plot", "heatmap", "image_for_display", "line_plot", "map_grid",
           "mask_levels", "normalise_max_abs", "reduce_channels", "scatter_plot", "show_image",
           "show_map", "to_numpy"]


def mask_contour_grid(images: Sequence[Any], masks: Sequence[Sequence[Sequence[Any]]], *,
                      colors: Sequence[str], labels: Sequence[str] = (),
                      row_labels: Sequence[str] = (), col_labels: Sequence[str] = (),
                      linewidth: float = 1.0, panel: float = 1.5,
                      title: str | None = None) -> Figure:
    """A grid of input images with mask outlines: row r, column c shows ``images[r]`` with the
    outline of every mask ``masks[r][c][k]`` ``[H, W]`` in ``colors[k]`` (``None`` draws none),
    e.g. the convex hulls of an original and a GAD map (document 004, figure 6). ``labels`` name
    the colours in a legend; ``col_labels`` title the first row, ``row_labels`` the first
    column. ``panel``: inches per panel."""
    if not images:
        raise ValueError("images must hold at least one image")
    if len(masks) != len(images):
        raise ValueError(f"masks must have one row per image ({len(images)}), got {len(masks)}")
    if labels and len(labels) != len(colors):
        raise ValueError(f"labels must name every colour ({len(colors)}), got {len(labels)}")
    ncols = max(len(row) for row in masks)
    fig = Figure(figsize=(panel * ncols + 0.4, panel * len(images) + (0.7 if title else 0.4)),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(images), ncols, squeeze=False))
    for r, (image, row) in enumerate(zip(images, masks)):
        for c in range(ncols):
            ax = axes[r, c]
            if c >= len(row):
                ax.axis("off")
                continue
            show_image(ax, image)
            if len(row[c]) > len(colors):
                raise ValueError(f"masks[{r}][{c}] holds {len(row[c])} masks for "
                                 f"{len(colors)} colours")
            for mask, color in zip(row[c], colors):
                if mask is not None:
                    draw_mask_contours(ax, mask, color=color, linewidth=linewidth)
            if r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=7)
    if labels:
        handles = [Line2D([], [], color=color, linewidth=linewidth) for color in colors]
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=7,
                   frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
