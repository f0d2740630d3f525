"""ROAD (Rong et al. 2022): the batched CG imputation equals the authors' sparse direct solve
(pytorch-grad-cam's NoisyLinearImputer and Quantus's noisy_linear_imputation, noise 0) and the
definition pixel by pixel; the curves equal pytorch-grad-cam's ROAD classes (percentile q there
removes 100 − q %) and Quantus's ROAD accuracies; batching, chunking and seeded noise."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
from pytorch_grad_cam.metrics import road as gradcam_road
from pytorch_grad_cam.metrics.perturbation_confidence import (
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from torch import nn

from conftest import tiny_cnn
from salbench.metrics import get_metric, score
from salbench.metrics import road as road_module
from salbench.metrics.road import (
    NEIGHBOUR_WEIGHTS,
    ROAD_PERCENTAGES,
    linear_imputation,
    removal_ranks,
    road,
)

NoisyLinearImputer = gradcam_road.NoisyLinearImputer


def masks(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Removed-pixel masks [b, h, w]: scattered at 30 % and 70 %, and one contiguous 90 % hole
    (the slowest case for an iterative solver)."""
    g = torch.Generator().manual_seed(seed)
    shares = torch.tensor([0.3, 0.7, 0.9])[torch.arange(b) % 3]
    out = torch.rand(b, h, w, generator=g) < shares[:, None, None]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    disc = -((yy - h / 3) ** 2 + (xx - w / 2) ** 2).float()
    out[2::3] = removal_ranks(disc[None], "morf").view(1, h, w) < int(0.9 * h * w)
    return out


def distinct_map(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Maps [b, h, w] of distinct values in [0, 1) (a random permutation of k / n): no ties,
    so every library picks the same pixels."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(h * w, generator=g).float() / (h * w)
                        for _ in range(b)]).view(b, h, w)


@pytest.mark.parametrize("shape", [(3, 3, 12, 12), (3, 2, 9, 14)])
def test_imputation_equals_the_libraries_direct_solves(shape):
    from quantus.functions.perturb_func import noisy_linear_imputation

    g = torch.Generator().manual_seed(1)
    x = torch.rand(shape, generator=g)
    removed = masks(shape[0], *shape[-2:])
    ours = linear_imputation(x, removed)
    for i in range(shape[0]):
        keep = (~removed[i]).float()
        ref = NoisyLinearImputer(noise=0.0)(x[i], keep)
        torch.testing.assert_close(ours[i], ref, atol=1e-5, rtol=0)
        index = torch.nonzero(removed[i].flatten()).flatten().numpy()
        quantus = noisy_linear_imputation(x[i].numpy(), index, noise=0.0)
        np.testing.assert_allclose(ours[i].numpy(), quantus, atol=1e-5, rtol=0)
    assert torch.equal(ours[~removed[:, None].expand_as(x)], x[~removed[:, None].expand_as(x)])


def test_cg_tolerance_reaches_the_float64_direct_solve():
    """In float64, against SciPy's spsolve of the authors' system: far inside the 1e-5 asked
    (the CG tolerance, not float32 rounding, decides here)."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 2, 32, 24, generator=g, dtype=torch.float64)
    removed = masks(3, 32, 24, seed=3)
    ours = linear_imputation(x, removed)
    for i in range(3):
        keep = (~removed[i]).double().numpy()
        a, b = NoisyLinearImputer.setup_sparse_system(keep, x[i].numpy(),
                                                      gradcam_road.neighbors_weights)
        solution = scipy.sparse.linalg.spsolve(scipy.sparse.csc_matrix(a), b)  # [N, C]
        ref = x[i].flatten(1).clone()
        ref[:, removed[i].flatten()] = torch.from_numpy(solution).T
        assert float((ours[i].flatten(1) - ref).abs().max()) < 1e-6


def test_each_imputed_pixel_is_the_weighted_mean_of_its_neighbours():
    """The definition, literally: u_i = Σ_j w_ij u_j / Σ_j w_ij over the in-image neighbours."""
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 7, 9, generator=g, dtype=torch.float64)
    removed = torch.rand(1, 7, 9, generator=g) < 0.6
    removed[0, 0, 0] = True  # a corner
    u = linear_imputation(x, removed)[0, 0]
    for i, j in torch.nonzero(removed[0]).tolist():
        total = weight = 0.0
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if (di or dj) and 0 <= i + di < 7 and 0 <= j + dj < 9:
                    w = NEIGHBOUR_WEIGHTS[di + 1][dj + 1]
                    total, weight = total + w * float(u[i + di, j + dj]), weight + w
        assert abs(float(u[i, j]) - total / weight) < 1e-9
    # by hand: one removed corner pixel of a 2 × 2 image = (1/6·a + 1/6·b + 1/12·c) / (5/12)
    img = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]], dtype=torch.float64)
    one = torch.tensor([[[True, False], [False, False]]])
    assert float(linear_imputation(img, one)[0, 0, 0, 0]) == pytest.approx(
        (1 / 6 * 1 + 1 / 6 * 2 + 1 / 12 * 3) / (5 / 12), abs=1e-12)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_curve_equals_pytorch_grad_cam(order, monkeypatch):
    """pytorch-grad-cam's ROAD{Most,Least}RelevantFirst(percentile=q) removes 100 − q % (both
    classes keep the pixels below the q-th percentile of the map, or of 1 − map) and returns the
    change from the unperturbed score; on 10 × 10 images ⌊n p / 100⌋ = its pixel count."""
    model = tiny_cnn()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(4, 3, 10, 10, generator=g)
    y = torch.tensor([0, 1, 2, 1])
    cams = distinct_map(4, 10, 10)
    ours = road(model, x, y, cams[:, None], order=order, noise_std=0.0)
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in y]
    remove = RemoveMostRelevantFirst if order == "morf" else RemoveLeastRelevantFirst
    for k, p in enumerate(ROAD_PERCENTAGES):
        metric = PerturbationConfidenceMetric(remove(100 - p, NoisyLinearImputer(noise=0.0)))
        diff = metric(x, cams.numpy(), targets, model)
        torch.testing.assert_close(ours.curves[:, k + 1] - ours.curves[:, 0],
                                   torch.from_numpy(diff), atol=1e-5, rtol=0)
    # the averaged class (percentiles 10 … 90, symmetric: the same shares removed)
    class NoiseFree(NoisyLinearImputer):
        def __init__(self) -> None:
            super().__init__(noise=0.0)

    monkeypatch.setattr(gradcam_road, "NoisyLinearImputer", NoiseFree)
    average = (gradcam_road.ROADMostRelevantFirstAverage if order == "morf"
               else gradcam_road.ROADLeastRelevantFirstAverage)()
    torch.testing.assert_close(ours.scores - ours.curves[:, 0],
                               torch.from_numpy(average(x, cams.numpy(), targets, model)),
                               atol=1e-5, rtol=0)
    assert float((ours.curves[:, 1:] - ours.curves[:, :1]).abs().max()) > 1e-3  # it moved


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(1) == y).float()


def texture_model(x: torch.Tensor) -> nn.Module:
    """Class 0 where the mean |Laplacian| of a 1-channel image exceeds its 30 % quantile over
    ``x``, else class 1: the imputation smooths, so removing pixels flips textured images."""
    lap = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    linear = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.stack([lap, -lap])[:, None])
        energy = conv(x).relu().sum(1).mean((1, 2))
        linear.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
        linear.bias.copy_(torch.tensor([0.0, float(energy.quantile(0.3))]))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear).eval()


def test_accuracy_curve_equals_quantus_road():
    """Quantus's ROAD (MoRF only) scores the accuracy argmax == y at each percentage, averaged
    over the batch; it ranks the flattened [C·H·W] map, so it is matched on 1-channel images."""
    import quantus

    g = torch.Generator().manual_seed(6)
    x = torch.rand(12, 1, 10, 10, generator=g)
    model = texture_model(x)
    with torch.no_grad():
        y = model(x).argmax(1)
    a = distinct_map(12, 10, 10, seed=7)[:, None]
    percentages = [10, 30, 50, 70, 90]
    ours = road(model, x, y, a, percentages=percentages, noise_std=0.0, score=accuracy)
    metric = quantus.ROAD(percentages=percentages, noise=0.0, disable_warnings=True)
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                    device="cpu")
    torch.testing.assert_close(ours.curves[:, 1:].mean(0).double(),
                               torch.tensor([theirs[p] for p in percentages], dtype=torch.float64))
    curve = ours.curves.mean(0)
    assert curve[0] == 1 and curve[-1] < curve[1] < 1  # the accuracy falls


def test_batched_and_chunked_equal_per_image_calls(monkeypatch):
    model = tiny_cnn()
    g = torch.Generator().manual_seed(8)
    x = torch.rand(5, 3, 12, 12, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1])
    a = torch.randn(5, 3, 12, 12, generator=g)
    for order in ("morf", "lerf"):
        batched = road(model, x, y, a, order=order, noise_std=0.0)
        single = torch.cat([road(model, x[i:i + 1], y[i:i + 1], a[i:i + 1], order=order,
                                 noise_std=0.0).curves for i in range(5)])
        torch.testing.assert_close(batched.curves, single, atol=1e-6, rtol=0)
        torch.testing.assert_close(batched.scores, batched.curves[:, 1:].mean(1))
    # imputation blocks of one image and model calls of one image: the same numbers
    monkeypatch.setitem(road_module.SOLVE_BYTES, "cpu", 1)
    chunked = road(model, x, y, a, memory_budget=1, seed=3)
    monkeypatch.undo()
    torch.testing.assert_close(chunked.curves, road(model, x, y, a, seed=3).curves,
                               atol=1e-6, rtol=0)


def test_morf_falls_faster_than_lerf_for_a_faithful_map_and_lrf_is_lerf():
    """The texture model's class-0 logit is the mean |Laplacian|; a map of |Laplacian| ranks the
    pixels that carry it: removing them first (MoRF) must lower the logit more than LeRF."""
    g = torch.Generator().manual_seed(11)
    x = torch.rand(6, 1, 12, 12, generator=g) * torch.linspace(0, 1, 12)  # texture grows rightward
    model = texture_model(x)
    a = model[0](x).relu().sum(1, keepdim=True)
    y = torch.zeros(6, dtype=torch.long)
    morf = road(model, x, y, a, order="morf", score="logit", noise_std=0.0)
    lerf = road(model, x, y, a, order="lerf", score="logit", noise_std=0.0)
    assert bool((morf.scores < lerf.scores).all())
    assert bool((morf.curves[:, 1:] <= morf.curves[:, :1]).all())
    torch.testing.assert_close(road(model, x, y, a, order="lrf", score="logit",
                                    noise_std=0.0).curves, lerf.curves)
    assert get_metric("road").direction("road", {"order": "lrf"}) == "higher"
    # a share that removes no pixel (⌊144 · 0.5 / 100⌋ = 0) leaves the image as it was
    none = road(model, x, y, a, percentages=[0.5, 50], score="logit", noise_std=0.01)
    torch.testing.assert_close(none.curves[:, 1], none.curves[:, 0])


class Recorder(nn.Module):
    """Records the images it is given; two constant outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images.append(x.clone())
        return torch.zeros(len(x), 2)


def test_noise_is_gaussian_on_removed_pixels_only_and_reproducible_from_the_seed():
    g = torch.Generator().manual_seed(9)
    x = torch.rand(4, 3, 16, 16, generator=g)
    y = torch.zeros(4, dtype=torch.long)
    a = torch.randn(4, 1, 16, 16, generator=g)

    def images(noise_std: float, seed: int) -> torch.Tensor:
        rec = Recorder()
        road(rec, x, y, a, percentages=[20, 60], noise_std=noise_std, seed=seed,
             memory_budget=2**30)
        return torch.stack([im for im in rec.images if len(im) == 4][-2:])  # [2, B, C, H, W]

    clean, noisy = images(0.0, 0), images(0.05, 0)
    ranks = removal_ranks(a[:, 0], "morf").view(4, 1, 16, 16)
    for k, count in enumerate((51, 153)):  # ⌊256 · 0.2⌋, ⌊256 · 0.6⌋
        removed = (ranks < count).expand_as(x)
        assert torch.equal(noisy[k][~removed], x[~removed])
        delta = (noisy[k] - clean[k])[removed]
        assert abs(float(delta.std()) - 0.05) < 0.005 and abs(float(delta.mean())) < 0.005
    assert torch.equal(images(0.05, 0), noisy)
    assert not torch.allclose(images(0.05, 1), noisy)


def test_registry_direction_range_and_cost():
    spec = get_metric("road")
    assert spec.direction("road", {"order": "morf"}) == "lower"
    assert spec.direction("road", {"order": "lerf"}) == "higher"
    assert spec.output("road").resolve_range(spec.resolve({})) == (0.0, 1.0)
    assert spec.estimate({}, (3, 16, 16)).forward == len(ROAD_PERCENTAGES) + 1
    assert spec.estimate({"percentages": [25, 50]}).forward == 3

    class Counting(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model, self.images = model, 0

        def forward(self, x):
            self.images += len(x)
            return self.model(x)

    g = torch.Generator().manual_seed(10)
    x, a = torch.rand(3, 3, 16, 16, generator=g), torch.randn(3, 3, 16, 16, generator=g)
    counting = Counting(tiny_cnn())
    given = {"model": counting, "x": x, "y": torch.tensor([0, 1, 2]), "a": a,
             "percentages": [25, 50, 75], "memory_budget": 2**30}
    score("road", **given)  # the first call also measures the activation size once
    counting.images = 0
    result = score("road", **given)
    assert counting.images == 3 * spec.estimate({"percentages": [25, 50, 75]}).forward
    assert result.curves["score"].values.shape == (3, 4)
    torch.testing.assert_close(result.curves["score"].x,
                               torch.tensor([0, 0.25, 0.5, 0.75], dtype=torch.float64))


@pytest.mark.parametrize("params, match", [
    ({"percentages": [0, 50]}, "percentages must be"),
    ({"percentages": [50, 30]}, "percentages must be"),
    ({"percentages": [100]}, "percentages must be"),
    ({"percentages": []}, "percentages must be"),
    ({"percentages": "19"}, "percentages must be"),
    ({"percentages": [10, None]}, "percentages must be"),
    ({"order": "random"}, "order must be one of"),
    ({"noise_std": -0.1}, "noise_std must be"),
    ({"noise_std": float("nan")}, "noise_std must be"),
    ({"reduce": "mean"}, "reduce must be one of"),
    ({"score": "softmax"}, "score must be one of"),
    ({"precision": "fp16"}, "precision must be one of"),
])
def test_bad_parameters_raise_naming_them(params, match):
    x, a = torch.rand(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=match):
        road(tiny_cnn(), x, torch.tensor([0, 1]), a, **params)


def test_bad_inputs_raise_naming_them():
    x, y, a = torch.rand(2, 3, 8, 8), torch.tensor([0, 1]), torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="a must match x"):
        road(tiny_cnn(), x, y, a[:, :, :7])
    bad = a.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"a contains NaN.*samples \[1\]"):
        road(tiny_cnn(), x, y, bad)
    with pytest.raises(ValueError, match="y must be an integer tensor"):
        road(tiny_cnn(), x, y.float(), a)
    with pytest.raises(TypeError, match="seed must be an int"):
        road(tiny_cnn(), x, y, a, seed=0.5)
    with pytest.raises(ValueError, match="removed covers a whole image"):
        linear_imputation(x, torch.ones(2, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="removed must be"):
        linear_imputation(x, torch.ones(2, 7, 8, dtype=torch.bool))
