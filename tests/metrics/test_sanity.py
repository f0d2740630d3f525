"""Model parameter randomisation: Quantus MPRT oracle, scipy/scikit-image similarities."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from scipy.stats import rankdata, spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity
from tests.metrics.conftest import gradient_explain, tiny_cnn

from salbench.metrics import sanity as sn
from salbench.metrics._checks import average_ranks


def quantus_explain(model, inputs, targets, **kwargs):
    return gradient_explain(model, torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()


def single_channel_case():
    model = tiny_cnn(channels=1)
    g = torch.Generator().manual_seed(0)
    return model, torch.rand(3, 1, 16, 16, generator=g), torch.tensor([0, 1, 2])


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_agrees_with_quantus_mprt(mode):
    model, x, y = single_channel_case()
    a = gradient_explain(model, x, y)
    q_order = "top_down" if mode == "cascading" else "independent"
    metric = quantus.MPRT(layer_order=q_order, seed=7, abs=False, normalise=False,
                          similarity_func=quantus.similarity_func.correlation_spearman,
                          disable_warnings=True)
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                    explain_func=quantus_explain, channel_first=True, device="cpu")
    # Quantus seeds torch with seed + 1 before each layer; "independent" walks input side first.
    ours = sn.model_randomisation(model, x, y, gradient_explain, a=a, mode=mode,
                                  order="top-down" if mode == "cascading" else "bottom-up",
                                  seed=8, similarities=("spearman",), reduce="none")
    layers = [k for k in theirs if k != "original"]
    assert layers == ours.layers
    np.testing.assert_allclose(ours.scores["spearman"].numpy(),
                               np.array([theirs[k] for k in layers], dtype=float), atol=1e-5)


def test_average_ranks_are_scipys_mid_ranks_for_every_run_of_ties():
    """Runs at the start, middle and end of a row, a constant row, one column, integers."""
    g = torch.Generator().manual_seed(3)
    rows = torch.tensor([[2., 2., 1., 3., 3., 3.], [5., 5., 5., 5., 5., 5.],
                         [0., 1., 1., 2., 4., 4.]])
    cases = [rows, rows[:, :1], torch.randint(0, 4, (4, 50), generator=g),
             torch.rand(2, 30, generator=g)]
    for s in cases:
        want = rankdata(s.double().numpy(), axis=1)
        np.testing.assert_array_equal(average_ranks(s).numpy(), want)
    assert average_ranks(rows)[0].tolist() == [2.5, 2.5, 1.0, 5.0, 5.0, 5.0]


def test_similarities_match_scipy_and_skimage():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(3, 20, 20, generator=g), torch.rand(3, 20, 20, generator=g)
    b[0] = a[0] + 0.1 * b[0]
    a[2] = (a[2] * 4).round()  # ties
    for i in range(3):
        ai, bi = a[i].double().numpy(), b[i].double().numpy()
        assert sn.spearman(a, b)[i].item() == pytest.approx(
            spearmanr(ai.ravel(), bi.ravel())[0], abs=1e-10)
        rng = max(ai.max(), bi.max()) - min(ai.min(), bi.min())
        assert sn.ssim(a, b)[i].item() == pytest.approx(
            structural_similarity(ai, bi, data_range=rng), abs=1e-8)
        ha = hog(ai, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
        hb = hog(bi, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
        assert sn.hog_similarity(a, b)[i].item() == pytest.approx(
            np.corrcoef(ha, hb)[0, 1], abs=1e-8)


def test_cascading_randomisation_destroys_similarity_and_leaves_model_alone():
    model, x, y = single_channel_case()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = sn.model_randomisation(model, x, y, gradient_explain)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(out.scores) == {"spearman", "ssim", "hog"}
    assert out.scores["spearman"].shape == (len(out.layers), 3)
    assert out.layers == ["6", "2", "0"]  # top-down: output side first
    # the unrandomised model would give 1; the fully randomised one much less
    assert out.scores["spearman"][-1].mean() < 0.9
    same = sn.model_randomisation(model, x, y, gradient_explain)
    assert torch.equal(same.scores["ssim"], out.scores["ssim"])  # seeded


def test_bad_input():
    model, x, y = single_channel_case()
    with pytest.raises(ValueError, match="mode must be one of"):
        sn.model_randomisation(model, x, y, gradient_explain, mode="cascade")
    with pytest.raises(ValueError, match="layers: 'nope'"):
        sn.model_randomisation(model, x, y, gradient_explain, layers=["nope"])
