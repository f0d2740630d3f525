"""Five-band scores (document 001, sections 3.3, 4.1): hand cases, literal loops, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from salbench.metrics import fiveband as fb


def test_schedules_follow_the_document():
    assert len(fb.STANDARD.t1) == 56 and len(fb.CLAMPED.t1) == 41
    assert fb.STANDARD.t1[0] == 0.3 and fb.STANDARD.t2[0] == 0.5
    assert fb.STANDARD.t1[55] == pytest.approx(0.025) and fb.STANDARD.t2[55] == pytest.approx(0.225)
    assert fb.CLAMPED.t1[40] == pytest.approx(0.1) and fb.CLAMPED.t2[40] == pytest.approx(0.5)
    assert fb.CLAMPED.clamp == (-0.1, 0.1) and fb.STANDARD.clamp is None


def test_stratify_band_edges():
    h = torch.tensor([0.6, 0.5, 0.4, 0.3, 0.0, -0.3, -0.4, -0.5, -0.6])
    # 2 if h > t2; 1 if t1 < h <= t2; 0 if -t1 <= h <= t1; -1 if -t2 < h < -t1; -2 if h <= -t2
    assert fb.stratify(h, 0.3, 0.5).tolist() == [2, 1, 1, 0, 0, 0, -1, -2, -2]


def test_hand_counts():
    h0 = torch.tensor([[[0.0, 0.0, 0.0, 0.4], [0.4, 0.4, 0.9, 0.9]]])
    h = torch.tensor([[[0.0, 0.35, -0.9, 0.35], [0.0, 0.9, 0.9, 0.35]]])
    # bands h: [0, 1, -2, 1], [0, 2, 2, 1]; h0: [0, 0, 0, 1], [1, 1, 2, 2]
    # TP: (0,3) 1=1, (1,2) 2=2 -> 2; FN: (1,0) -> 1; FP: (0,1), (0,2) on h0=0 -> 2,
    # plus h0!=0 and h not in {0, h0}: (1,1) 2 vs 1, (1,3) 1 vs 2 -> 2; FP = 4; TN: (0,0) -> 1.
    s = fb.stratify(h, 0.3, 0.5)
    c = fb.five_band_counts(s, fb.stratify_ground_truth(h0))
    assert [int(t) for t in c] == [2, 4, 1, 1]
    sc = fb.five_band_score(h, h0, 0.3, 0.5)
    assert sc.accuracy.item() == pytest.approx(3 / 8)
    assert sc.precision.item() == pytest.approx(2 / (6 + 1e-6))
    assert sc.recall.item() == pytest.approx(2 / (3 + 1e-6))
    assert sc.fpr.item() == pytest.approx(4 / (5 + 1e-6))


def test_channel_adjustment_hand_case():
    h = torch.tensor([[[[1.0, -2.0]], [[1.0, 0.0]], [[0.0, 0.5]]]])  # C=3, H=1, W=2
    # sum over channels: [2, -1.5] -> / max|.| = 2 -> [1, -0.75]
    assert fb.channel_adjust(h).tolist() == [[[1.0, -0.75]]]
    # clamped: /max|h| (2) -> [[.5,-1],[.5,0],[0,.25]] -> clamp [-.1,.1] -> sum [.2, -.1+0+.1]
    # = [0.2, 0.0] -> / 0.2 -> [1, 0]
    np.testing.assert_allclose(fb.channel_adjust(h, (-0.1, 0.1)).numpy(), [[[1.0, 0.0]]])
    assert torch.equal(fb.channel_adjust(torch.zeros(1, 3, 2, 2)), torch.zeros(1, 2, 2))


def literal_soft(h_adj: torch.Tensor, h0: torch.Tensor, sched: fb.FiveBandSchedule):
    """Per sample, per threshold, per pixel: the definitions of section 3.3 as plain Python."""
    eps = 1e-6
    band0 = {0.0: 0, 0.4: 1, 0.9: 2}
    rows = []
    for k in range(len(h_adj)):
        per = []
        for t1, t2 in zip(sched.t1, sched.t2):
            t1f = float(torch.tensor(t1, dtype=h_adj.dtype))
            t2f = float(torch.tensor(t2, dtype=h_adj.dtype))
            tp = fp = fn = tn = correct = 0
            for v, g in zip(h_adj[k].flatten().tolist(), h0[k].flatten().tolist()):
                s = 2 if v > t2f else 1 if v > t1f else 0 if v >= -t1f else -1 if v > -t2f else -2
                s0 = band0[round(g, 1)]
                correct += s == s0
                if s0 != 0 and s == s0:
                    tp += 1
                elif s0 == 0 and s != 0 or s0 != 0 and s not in (0, s0):
                    fp += 1
                elif s0 != 0 and s == 0:
                    fn += 1
                else:
                    tn += 1
            n = h_adj[k].numel()
            per.append((correct / n, tp / (tp + fp + eps), tp / (tp + fn + eps),
                        fp / (fp + tn + eps)))
        rows.append(per)
    return torch.tensor(rows, dtype=torch.float64)  # [B, M, 4]


@st.composite
def heatmaps(draw):
    b, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 7)), draw(st.integers(2, 7))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    raw = torch.randn(b, 3, h, w, generator=g)
    if draw(st.booleans()):  # values exactly on thresholds
        raw = (raw * 20).round() / 20
    h0 = torch.tensor([0.0, 0.4, 0.9])[torch.randint(0, 3, (b, h, w), generator=g)]
    return raw, h0


@settings(max_examples=25, deadline=None)
@given(heatmaps(), st.sampled_from(["standard", "clamped"]))
def test_soft_five_band_matches_literal_loop(case, name):
    raw, h0 = case
    sched = fb.SCHEDULES[name]
    out = fb.soft_five_band(raw, h0, name)
    ref = literal_soft(fb.channel_adjust(raw, sched.clamp), h0, sched)
    per = torch.stack(list(out.per_threshold), -1)
    np.testing.assert_allclose(per.numpy(), ref.numpy(), atol=1e-12)
    np.testing.assert_allclose(out.precision_avg.numpy(), ref[..., 1].mean(1).numpy(), atol=1e-12)
    np.testing.assert_allclose(out.recall_best.numpy(), ref[..., 2].amax(1).numpy(), atol=1e-12)
    np.testing.assert_allclose(out.roc_fpr.numpy(), ref[..., 3].mean(0).numpy(), atol=1e-12)
    np.testing.assert_allclose(out.roc_recall.numpy(), ref[..., 2].mean(0).numpy(), atol=1e-12)


def test_perfect_heatmap_scores_one():
    h0 = torch.tensor([0.0, 0.4, 0.9])[torch.randint(0, 3, (2, 6, 6))]
    h0[:, 0, 0] = 0.9
    # adjusted map equal to h0 (max 0.9 -> 1.0 after normalisation): 0.4/0.9 = 0.44 lies in the
    # 1-band and 1.0 in the 2-band at the first standard threshold (0.3, 0.5)
    out = fb.soft_five_band(h0[:, None], h0, "standard")
    assert out.accuracy_best.tolist() == [1.0, 1.0]
    np.testing.assert_allclose(out.precision_best.numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(out.recall_best.numpy(), 1.0, atol=1e-5)


def test_zero_heatmap_no_nan():
    h0 = torch.full((2, 4, 4), 0.4)
    out = fb.soft_five_band(torch.zeros(2, 3, 4, 4), h0)
    assert out.recall_avg.tolist() == [0.0, 0.0] and out.precision_avg.tolist() == [0.0, 0.0]


def test_bad_input():
    with pytest.raises(ValueError, match="h0 must hold only the ground-truth levels"):
        fb.soft_five_band(torch.zeros(1, 3, 2, 2), torch.full((1, 2, 2), 0.5))
    with pytest.raises(ValueError, match="same \\[B, H, W\\] shape"):
        fb.soft_five_band(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="h contains NaN"):
        fb.soft_five_band(torch.full((1, 3, 2, 2), float("nan")), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="schedule must be one of"):
        fb.soft_five_band(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2), "fast")
