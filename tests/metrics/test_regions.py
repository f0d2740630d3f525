"""GAD region metrics (document 004, sections 5-6): hull selection, RC, RS."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from salbench.metrics import regions as rg


def test_important_pixels_keep_and_threshold():
    a = torch.tensor([[[[0.0, 0.05, 0.2], [0.5, 1.0, 0.0], [0.0, 0.0, 0.11]]]])
    keep = rg.important_pixels(a, keep=3 / 9)
    assert keep[0].nonzero().tolist() == [[0, 2], [1, 0], [1, 1]]
    thr = rg.important_pixels(a, keep=None, threshold=0.1)  # > 10 % of the maximum
    assert thr[0].nonzero().tolist() == [[0, 2], [1, 0], [1, 1], [2, 2]]
    # zero-importance pixels are never selected even when keep asks for more
    assert rg.important_pixels(a, keep=1.0).sum() == 5


def test_hull_of_two_corners_is_the_segment_and_triangle_area():
    a = torch.zeros(1, 1, 5, 5)
    a[0, 0, 0, 0] = a[0, 0, 4, 4] = 1.0
    diag = rg.hull_mask(a, keep=None, threshold=0.5)
    assert diag[0].diagonal().tolist() == [1.0] * 5 and diag.sum() == 5
    a[0, 0, 4, 0] = 1.0  # right triangle with legs 5 px: 15 pixel centres inside or on the hull
    assert rg.hull_mask(a, keep=None, threshold=0.5).sum() == 15


def test_complexity_ratio():
    orig = torch.zeros(2, 1, 6, 6)
    orig[:, 0, 0, 0] = orig[:, 0, 5, 5] = orig[:, 0, 0, 5] = orig[:, 0, 5, 0] = 1.0  # full square
    gad = torch.zeros(2, 1, 6, 6)
    gad[0, 0, 1:3, 1:3] = 1.0  # 2x2 block -> area 4
    gad[1] = orig[1]
    rc = rg.complexity_ratio(gad, orig, keep=None, threshold=0.5)
    assert rc.tolist() == pytest.approx([4 / 36, 1.0])
    empty = orig.clone()
    empty[1] = 0  # an all-zero original map has no important region: RC undefined
    rc = rg.complexity_ratio(gad, empty, keep=None, threshold=0.5)
    assert rc[0].item() == pytest.approx(4 / 36) and torch.isnan(rc[1])


class Linear(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = w  # [K, C, H, W]

    def forward(self, x):
        return torch.einsum("bchw,kchw->bk", x, self.w)


def test_occlusion_sensitivity_hand_case():
    w = torch.zeros(2, 1, 2, 2)
    w[1, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x = torch.ones(1, 1, 2, 2)
    m = torch.tensor([[[1, 0], [0, 1]]])
    # N_1(I) = 10, occluded (pixels 1 and 4 removed): 5 -> |10 - 5| / 2
    rs = rg.occlusion_sensitivity(Linear(w), x, torch.tensor([1]), m)
    assert rs.item() == pytest.approx(2.5)
    sup = rg.supplementary_mask(torch.tensor([[[1.0, 1.0], [0.0, 1.0]]]), m.float())
    assert sup.tolist() == [[[0.0, 1.0], [0.0, 0.0]]]
    with pytest.raises(ValueError, match="m is empty"):
        rg.occlusion_sensitivity(Linear(w), x, torch.tensor([1]), torch.zeros(1, 2, 2))
