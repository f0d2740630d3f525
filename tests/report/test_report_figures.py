"""Figure helpers: channel reductions and map display against their definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from salbench.report import figures as F


def test_reduce_channels_definitions():
    a = np.array([[[1.0, -2.0]], [[-3.0, 0.5]]])  # [C=2, H=1, W=2]
    np.testing.assert_allclose(F.reduce_channels(a, "sum"), [[-2.0, -1.5]])
    np.testing.assert_allclose(F.reduce_channels(a, "abs-sum"), [[4.0, 2.5]])
    np.testing.assert_allclose(F.reduce_channels(a, "max-abs"), [[3.0, 2.0]])
    np.testing.assert_allclose(F.reduce_channels(a, "l2"), [[np.sqrt(10), np.sqrt(4.25)]])
    np.testing.assert_allclose(F.reduce_channels(torch.tensor(a), "sum"), [[-2.0, -1.5]])
    assert F.reduce_channels(a[0]).shape == (1, 2)  # [H, W] passes through
    with pytest.raises(ValueError, match="reduce"):
        F.reduce_channels(a, "mean")
    with pytest.raises(ValueError, match="shape"):
        F.reduce_channels(np.zeros((1, 1, 2, 2)))


def test_normalise_and_image_display():
    np.testing.assert_allclose(F.normalise_max_abs(np.array([2.0, -4.0])), [0.5, -1.0])
    assert not F.normalise_max_abs(np.zeros(3)).any()
    rgb = F.image_for_display(np.stack([np.full((2, 2), v) for v in (0.0, 1.0, 3.0)]))
    assert rgb.shape == (2, 2, 3) and rgb.min() == 0 and rgb.max() == 1
    assert F.image_for_display(np.ones((1, 4, 4))).shape == (4, 4)
    with pytest.raises(ValueError, match="channels"):
        F.image_for_display(np.zeros((2, 4, 4)))


def test_mask_levels():
    assert F.mask_levels(np.array([[0.0, 1.0]])) == [0.5]
    np.testing.assert_allclose(F.mask_levels(np.array([0.0, 0.4, 0.9])), [0.2, 0.65])  # cells
    assert F.mask_levels(np.zeros((3, 3))) == []


def test_show_map_is_symmetric_around_zero_with_contours():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 8, 8)) + 0.3
    mask = np.zeros((8, 8))
    mask[2:5, 2:6] = 1
    fig = F.map_grid([[a, None]], col_labels=["m1", "m2"], images=[rng.random((3, 8, 8))],
                     masks=[mask])
    axes = fig.axes
    art = axes[2].images[0]  # input, ground truth, then the first map
    assert (art.norm.vmin, art.norm.vmax) == (-1.0, 1.0)
    h = a.sum(axis=0)
    np.testing.assert_allclose(art.get_array(), h / np.abs(h).max())
    assert art.get_cmap().name == F.MAP_CMAP
    assert len(axes[2].collections) > 0            # ground-truth contour drawn on the map
    assert axes[2].get_title() == "m1" and not axes[3].axison  # None leaves a blank panel
    with pytest.raises(ValueError, match="masks"):
        F.map_grid([[a]], masks=[mask, mask])


def test_forest_plot_and_heatmap_carry_the_numbers():
    scores = pd.DataFrame({"score": ["p", "p"], "method": ["a", "b"], "mean": [0.8, 0.4],
                           "ci_low": [0.7, 0.3], "ci_high": [0.9, 0.5], "rank": [1, 2],
                           "lower_is_better": [False, False]})
    fig = F.forest_plot(scores)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.collections[-1].get_offsets()[:, 0], [0.8, 0.4])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    rho = pd.DataFrame([[1.0, -0.5], [-0.5, 1.0]], index=["p", "q"], columns=["p", "q"])
    texts = [t.get_text() for t in F.heatmap(rho).axes[0].texts]
    assert texts == ["1.00", "-0.50", "-0.50", "1.00"]


def test_study_plot_helpers_check_columns():
    df = pd.DataFrame({"x": [1, 2, 3, 1, 2, 3], "y": [0.1, 0.5, 0.9, 0.2, 0.4, 0.8],
                       "g": list("aaabbb"), "z": [1.0, 2, 3, 4, 5, 6]})
    box = F.box_plot(df, "x", "y", hue="g", line=df.groupby("x", as_index=False).y.mean())
    assert len(box.axes) == 2  # boxes and the twin axis of the line
    assert "r = " in F.scatter_plot(df, "x", "y", hue="g", correlation=True).axes[0] \
        .get_legend().get_texts()[0].get_text()
    assert len(F.line_plot(df, "x", "y", hue="g").axes[0].lines) == 2
    grid = pd.DataFrame([(a, b, a + 2 * b) for a in (0, 1e-4, 1e-2, 1) for b in (0, 1e-3, 1)],
                        columns=["g1", "g2", "auc"])
    contour = F.contour_plot(grid, "g1", "g2", "auc")
    star = contour.axes[0].lines[-1]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (1, 1)  # the maximum of a + 2b
    with pytest.raises(ValueError, match="missing columns"):
        F.box_plot(df, "x", "nope")
