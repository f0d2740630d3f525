"""Ground-truth metrics: hand cases, sklearn/Quantus oracles, properties, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from salbench.metrics import available
from salbench.metrics import groundtruth as gt

GROUND_TRUTH = {m.name: m.function for m in available()
                if m.kind == "ground_truth" and m.mask == "support"}

METRICS_01 = ["top_k_precision", "relevance_rank_accuracy", "relevance_mass_accuracy",
              "pointing_game", "auroc", "average_precision"]


def random_case(seed: int, b: int = 5, h: int = 8, w: int = 8):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(b, 1, h, w, generator=g, dtype=torch.float64)
    m = (torch.rand(b, h, w, generator=g) < 0.3).double()
    m[:, 0, 0] = 1  # non-empty
    m[:, -1, -1] = 0  # has negatives
    return a, m


# ---------------------------------------------------------------- hand-computed


def test_top_k_precision_hand_case():
    # 2x3 map, mask of 2 pixels; the 2 most intense pixels are (0,2)=0.9 and (1,0)=0.8.
    a = torch.tensor([[[[0.1, 0.2, 0.9], [0.8, 0.3, 0.0]]]])
    m = torch.tensor([[[0, 0, 1], [0, 1, 0]]])
    assert gt.top_k_precision(a, m).item() == pytest.approx(0.5)
    # both hits
    m2 = torch.tensor([[[0, 0, 1], [1, 0, 0]]])
    assert gt.top_k_precision(a, m2).item() == pytest.approx(1.0)


def test_top_k_precision_ties_lower_index_first():
    a = torch.tensor([[[[1.0, 1.0, 1.0, 0.0]]]])
    m_first = torch.tensor([[[1, 0, 0, 0]]])
    m_last = torch.tensor([[[0, 0, 1, 0]]])
    assert gt.top_k_precision(a, m_first).item() == 1.0  # index 0 wins the tie
    assert gt.top_k_precision(a, m_last).item() == 0.0


def test_reduce_is_explicit():
    a = torch.zeros(1, 3, 1, 2)
    a[0, 0, 0, 0], a[0, 1, 0, 0] = 1.0, -1.0  # sums to 0, magnitude 2
    a[0, 0, 0, 1] = 0.5
    m = torch.tensor([[[1, 0]]])
    assert gt.top_k_precision(a, m, reduce="sum").item() == 0.0
    assert gt.top_k_precision(a, m, reduce="abs-sum").item() == 1.0
    assert gt.top_k_precision(a, m, reduce="max-abs").item() == 1.0


def test_pointing_game_tolerance():
    a = torch.zeros(1, 1, 5, 5)
    a[0, 0, 2, 2] = 1.0
    m = torch.zeros(1, 5, 5)
    m[0, 0, 0] = 1
    assert gt.pointing_game(a, m).item() == 0.0
    assert gt.pointing_game(a, m, tolerance=1).item() == 0.0
    assert gt.pointing_game(a, m, tolerance=2).item() == 1.0


def test_iou_threshold_and_quantile():
    a = torch.tensor([[[[0.0, 0.25, 0.5, 1.0]]]])
    m = torch.tensor([[[0, 0, 1, 1]]])
    assert gt.iou(a, m, threshold=0.5).item() == pytest.approx(1.0)
    assert gt.iou(a, m, threshold=0.2).item() == pytest.approx(2 / 3)
    assert gt.iou(a, m, threshold=0.9, relative=False).item() == pytest.approx(0.5)
    assert gt.iou(a, m, quantile=0.5).item() == pytest.approx(1.0)


# ---------------------------------------------------------------- oracles


@pytest.mark.parametrize("seed", range(3))
def test_auroc_and_ap_match_sklearn(seed):
    a, m = random_case(seed)
    a = (a * 4).round() / 4  # many ties
    ours_auc = gt.auroc(a, m)
    ours_ap = gt.average_precision(a, m)
    for i in range(len(a)):
        s, t = a[i].flatten().numpy(), m[i].flatten().numpy()
        assert ours_auc[i].item() == pytest.approx(roc_auc_score(t, s), abs=1e-12)
        assert ours_ap[i].item() == pytest.approx(average_precision_score(t, s), abs=1e-12)


def quantus_kwargs():
    return {"abs": False, "normalise": False, "disable_warnings": True}


@pytest.mark.parametrize("seed", range(2))
def test_agrees_with_quantus(seed):
    a, m = random_case(seed)  # continuous values: no ties
    x = np.zeros((len(a), 1, 8, 8), np.float32)
    y = np.zeros(len(a), int)
    a_np, s_np = a.numpy(), m[:, None].numpy()
    call = {"model": None, "x_batch": x, "y_batch": y, "a_batch": a_np, "s_batch": s_np,
            "channel_first": True}
    cases = {
        "relevance_mass_accuracy": (quantus.RelevanceMassAccuracy(**quantus_kwargs()), {}),
        "relevance_rank_accuracy": (quantus.RelevanceRankAccuracy(**quantus_kwargs()), {}),
        "pointing_game": (quantus.PointingGame(**quantus_kwargs()), {}),
        "top_k_intersection": (quantus.TopKIntersection(k=10, **quantus_kwargs()), {"k": 10}),
        "auroc": (quantus.AUC(**quantus_kwargs()), {}),
    }
    for name, (metric, params) in cases.items():
        theirs = np.asarray(metric(**call), dtype=float)
        ours = GROUND_TRUTH[name](a, m, **params).numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=name)


def test_quantus_pointing_game_empty_mask_mapping():
    # Quantus 0.6 scores an empty mask (NaN in the batched code, True in older versions);
    # salbench refuses it, naming the argument.
    a, m = random_case(0)
    m[2] = 0
    with pytest.raises(ValueError, match="m is empty.*\\[2\\]"):
        gt.pointing_game(a, m)


# ---------------------------------------------------------------- properties

shapes = st.tuples(st.integers(1, 4), st.integers(2, 9), st.integers(2, 9))


@st.composite
def map_and_mask(draw):
    b, h, w = draw(shapes)
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    m = (torch.rand(b, h, w, generator=g) < draw(st.floats(0.1, 0.9))).double()
    m.view(b, -1)[:, 0] = 1
    m.view(b, -1)[:, -1] = 0
    a = torch.randn(b, 1, h, w, generator=g, dtype=torch.float64)
    return a, m


@settings(max_examples=40, deadline=None)
@given(map_and_mask())
def test_perfect_map_scores_one(case):
    _, m = case
    perfect = m[:, None].clone()
    for name in METRICS_01:
        np.testing.assert_allclose(GROUND_TRUTH[name](perfect, m).numpy(), 1.0,
                                   err_msg=name)
    np.testing.assert_allclose(gt.iou(perfect, m, threshold=0.5).numpy(), 1.0)


@settings(max_examples=40, deadline=None)
@given(map_and_mask(), st.floats(0.01, 100.0))
def test_invariant_to_positive_scaling(case, scale):
    a, m = case
    for name in ["top_k_precision", "pointing_game", "auroc", "average_precision"]:
        f = GROUND_TRUTH[name]
        np.testing.assert_allclose(f(a * scale, m).numpy(), f(a, m).numpy(), atol=1e-12)
    pos = a.abs()
    np.testing.assert_allclose(gt.relevance_mass_accuracy(pos * scale, m).numpy(),
                               gt.relevance_mass_accuracy(pos, m).numpy(), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(map_and_mask(), st.floats(-3, 3))
def test_constant_map_no_nan(case, value):
    a, m = case
    const = torch.full_like(a, value)
    for name, f in GROUND_TRUTH.items():
        params = {"k": 1} if name == "top_k_intersection" else (
            {"threshold": 0.5} if name == "iou" else {})
        out = f(const, m, **params)
        assert torch.isfinite(out).all(), name
    # a constant map carries no ranking: AUROC is exactly chance
    np.testing.assert_allclose(gt.auroc(const, m).numpy(), 0.5)


@settings(max_examples=40, deadline=None)
@given(map_and_mask())
def test_top_k_precision_matches_literal_loop(case):
    """Ranked by the positive part max(s, 0) by default, by s itself when signed."""
    a, m = case
    for relevance, transform in (("positive", lambda v: max(v, 0.0)), ("signed", lambda v: v),
                                 ("absolute", abs)):
        ours = gt.top_k_precision(a, m, relevance=relevance)
        for i in range(len(a)):
            s = [transform(v) for v in a[i, 0].flatten().tolist()]
            t = m[i].flatten().tolist()
            n = int(sum(t))
            order = sorted(range(len(s)), key=lambda j: (-s[j], j))[:n]  # stable: lower first
            assert ours[i].item() == pytest.approx(sum(t[j] for j in order) / n), relevance


def test_relevance_mass_is_a_fraction_of_positive_evidence_by_default():
    """A signed map whose negative relevance outweighs its positive part: the signed mass ratio
    leaves [0, 1] (issue 13 measured −2.46); the default counts positive relevance only."""
    a = torch.tensor([[[[2.0, -3.0], [0.5, -0.5]]]], dtype=torch.float64)
    m = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    assert gt.relevance_mass_accuracy(a, m).item() == pytest.approx(2.0 / 2.5)
    assert gt.relevance_mass_accuracy(a, m, relevance="signed").item() == pytest.approx(-2.0)
    assert gt.relevance_mass_accuracy(a, m, relevance="absolute").item() == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="relevance must be one of"):
        gt.relevance_mass_accuracy(a, m, relevance="abs")


def test_random_maps_near_chance():
    g = torch.Generator().manual_seed(0)
    m = (torch.rand(400, 16, 16, generator=g) < 0.2).double()
    a = torch.rand(400, 1, 16, 16, generator=g, dtype=torch.float64)
    share = m.flatten(1).mean(1)
    assert gt.top_k_precision(a, m).mean().item() == pytest.approx(share.mean().item(), abs=0.02)
    assert gt.auroc(a, m).mean().item() == pytest.approx(0.5, abs=0.02)
    assert gt.relevance_mass_accuracy(a, m).mean().item() == pytest.approx(
        share.mean().item(), abs=0.02)


# ---------------------------------------------------------------- bad input


def test_bad_input_errors():
    a, m = random_case(0)
    with pytest.raises(ValueError, match="m must have shape"):
        gt.top_k_precision(a, m[:, :4])
    bad = a.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="a contains NaN.*\\[1\\]"):
        gt.top_k_precision(bad, m)
    with pytest.raises(ValueError, match="m must be binary"):
        gt.auroc(a, m * 0.5)
    with pytest.raises(ValueError, match="m is empty"):
        gt.top_k_precision(a, torch.zeros_like(m))
    with pytest.raises(TypeError, match="a must be a torch.Tensor"):
        gt.iou(a.numpy(), m, threshold=0.5)
    with pytest.raises(ValueError, match="reduce must be one of"):
        gt.top_k_precision(a, m, reduce="mean")
    with pytest.raises(ValueError, match="k must be"):
        gt.top_k_intersection(a, m, k=0)
