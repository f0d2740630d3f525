"""The lrp-grid analysis: pure functions from the result tables to tidy frames (one row per
composite / stabiliser / order / grid point with the measured value and its n).

Inputs are the frames of :func:`salbench.results.read_results` (``results``, ``curves``,
``summaries``) with the factor columns the grid writes: ``composite``, ``stabiliser``, ``first``,
``second`` on every row, ``order`` on region-perturbation rows, ``setting`` on the layer-relevance
curves. Nothing here reads files or draws.
"""

from __future__ import annotations

import pandas as pd

GRID_COLUMNS = ["composite", "stabiliser", "order", "first", "second", "auc", "n", "direction"]
BEST = {"lower": "idxmin", "higher": "idxmax"}


def model_scores(summaries: pd.DataFrame) -> pd.DataFrame:
    """Test-set classification scores of the explained model: model × score (accuracy, …)."""
    rows = summaries[summaries.metric == "classification"]
    return rows.pivot_table(index="model_id", columns="output", values="value")


def auc_grid(results: pd.DataFrame) -> pd.DataFrame:
    """Mean region-perturbation AUC over the explained images per grid point and order
    (document 002, figures 4.1, 4.2): columns composite, stabiliser, order, first, second,
    ``auc`` (the mean), ``n`` (images) and ``direction`` (from the rows: MoRF lower is better,
    LRF higher, random none)."""
    rows = results[(results.metric == "region_perturbation") & (results.output == "auc")]
    if rows.empty:
        return pd.DataFrame(columns=GRID_COLUMNS)
    keys = ["composite", "stabiliser", "order", "first", "second"]
    clash = rows.groupby(keys).direction.nunique()
    if bool((clash > 1).any()):
        raise ValueError(f"grid points {list(clash[clash > 1].index)} carry both directions")
    grid = rows.groupby([*keys, "direction"]).value.agg(auc="mean", n="count").reset_index()
    return grid[GRID_COLUMNS]


def optima(grid: pd.DataFrame) -> pd.DataFrame:
    """Per composite, stabiliser and order: the grid point with the best mean AUC in the
    direction its rows carry (lowest for MoRF, highest for LRF; section 4.1); an order whose AUC
    ranks nothing (random) has no optimum. Columns as :func:`auc_grid`."""
    out = []
    for _, part in grid.dropna(subset=["auc"]).groupby(["composite", "stabiliser", "order"]):
        pick = BEST.get(part.direction.iloc[0])
        if pick is not None:
            out.append(part.loc[getattr(part.auc, pick)()])
    return pd.DataFrame(out, columns=GRID_COLUMNS).reset_index(drop=True)


def auc_spread(grid: pd.DataFrame) -> pd.DataFrame:
    """Per composite, stabiliser and order: the lowest and highest mean AUC over the grid and
    their difference ``spread`` (section 4.1: the random order ignores the map, so its contour
    should be constant, spread 0), with ``points`` the number of grid points."""
    columns = ["composite", "stabiliser", "order", "lowest", "highest", "spread", "points"]
    if grid.empty:
        return pd.DataFrame(columns=columns)
    out = grid.groupby(["composite", "stabiliser", "order"]).auc.agg(
        lowest="min", highest="max", points="count").reset_index()
    out["spread"] = out.highest - out.lowest
    return out[columns]


def map_checks(results: pd.DataFrame) -> pd.DataFrame:
    """Figure 3.2's quantities per composite and stabiliser over all grid points and images:
    mean relevance minimum and maximum, median and maximum conservation error
    |Σ R − f_y(x)| / |f_y(x)| (of the finite maps), the share of finite maps and ``maps``, the
    number of maps (vanilla stabiliser: zero denominators give NaN, fig. 2.5)."""
    keys = ["composite", "stabiliser"]
    finite = results[(results.metric == "finite") & (results.output == "finite")]
    if finite.empty:
        return pd.DataFrame(columns=[*keys, "finite_share", "maps"])
    out = finite.groupby(keys).value.agg(finite_share="mean", maps="count")
    rows = results[results.metric == "conservation"]
    if not rows.empty:
        values = {name: rows[rows.output == name].groupby(keys).value
                  for name in ("relevance_min", "relevance_max", "conservation_error")}
        out = pd.DataFrame({"relevance_min": values["relevance_min"].mean(),
                            "relevance_max": values["relevance_max"].mean(),
                            "conservation_error_median": values["conservation_error"].median(),
                            "conservation_error_max": values["conservation_error"].max()}
                           ).join(out, how="outer")
    return out.reset_index()


def layer_ratios(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean Σ R / f_y(x) over the explained images per composite, stabiliser, ``setting``
    (default, best MoRF, best LRF) and position from the output (figure 3.2; 1 = conserved):
    columns composite, stabiliser, setting, first, second, position, layer, ratio, n (finite
    ratios behind the mean)."""
    keys = ["composite", "stabiliser", "setting", "first", "second"]
    columns = [*keys, "position", "layer", "ratio", "n"]
    rows = curves[(curves.metric == "layer_conservation") & (curves.curve == "relevance_ratio")]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = rows.groupby([*keys, "x", "label"]).value.agg(ratio="mean", n="count").reset_index()
    out = out.rename(columns={"x": "position", "label": "layer"})
    return out.sort_values([*keys, "position"])[columns].reset_index(drop=True)
