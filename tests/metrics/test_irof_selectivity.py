"""IROF and Selectivity (``salbench.metrics.removal``): a literal per-sample, per-step loop written
from the definitions, a hand-computed case, Quantus 0.6 on identical inputs (with the mapping of
its scores), a faithful map against its negation, the registry's direction and cost, bad input."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from tests.metrics.conftest import Counting, tiny_cnn
from torch import nn

from salbench.metrics import get_metric, score
from salbench.metrics.removal import (
    MinFill,
    centred_patch_labels,
    consecutive_labels,
    irof,
    selectivity,
)


@dataclass(frozen=True)
class CurrentMean:
    """Quantus's IROF ``mean`` baseline with one image per batch: the scalar mean over channels
    and pixels of the *current* (already perturbed) image, taken again at every step."""

    mask_dependent = True

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return x.mean((1, 2, 3), keepdim=True).expand_as(x)


class Linear2(nn.Module):
    """Logits (Σ w ⊙ x, 0): the class-0 probability is sigmoid(Σ w ⊙ x)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x * self.w).flatten(1).sum(1)
        return torch.stack([z, torch.zeros_like(z)], 1)


def data(b: int = 3, c: int = 3, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, size, size, generator=g)
    a = torch.randn(b, c, size, size, generator=g)
    return x, torch.arange(b) % 3, a


def random_segments(b: int, size: int, seed: int = 0) -> torch.Tensor:
    """Blocky labels with a different number of segments per sample, some labels unused."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(b):
        cells = 2 + i  # (2 + i)² blocks, labels drawn with repeats and gaps
        coarse = torch.randint(0, 3 * cells * cells, (cells, cells), generator=g)
        rows = torch.arange(size) * cells // size
        out.append(coarse[rows[:, None], rows[None, :]])
    return torch.stack(out)[:, None]


# ---------------------------------------------------------------- the definitions, slowly


def literal_removal(model, x, y, order_keys, regions, fill_values):
    """Per sample: remove regions in descending ``order_keys`` (stable), one per step; return
    the class probabilities p_0 … p_K."""
    model = torch.no_grad()(model)
    curves = []
    for i in range(len(x)):
        labels = regions[i]
        present = [int(v) for v in torch.unique(labels)]
        keys = torch.tensor([float(order_keys[i](labels == v)) for v in present],
                            dtype=torch.float64)
        order = torch.sort(keys, descending=True, stable=True).indices.tolist()
        current = x[i].clone()
        probs = [float(model(current[None]).softmax(-1)[0, y[i]])]
        for j in order:
            hole = (labels == present[j]).expand_as(current)
            current[hole] = fill_values[i][hole]
            probs.append(float(model(current[None]).softmax(-1)[0, y[i]]))
        curves.append(probs)
    return curves


def literal_irof(model, x, y, a, segments, fill_values):
    s = a.sum(1)
    curves = literal_removal(model, x, y, [lambda m, i=i: s[i][m].double().mean()
                                           for i in range(len(x))], segments[:, 0], fill_values)
    scores = []
    for p in curves:
        r = [v / p[0] for v in p]
        k = len(r) - 1
        scores.append(1 - sum((r[t] + r[t + 1]) / 2 for t in range(k)) / k)
    return torch.tensor(scores, dtype=torch.float64), curves


def literal_selectivity(model, x, y, a, patch, fill_values):
    h, w = x.shape[-2:]
    before_h, before_w = (-h % patch) // 2, (-w % patch) // 2  # centred grid, as Quantus pads
    rows = (torch.arange(h) + before_h) // patch
    cols = (torch.arange(w) + before_w) // patch
    grid = rows[:, None] * math.ceil(w / patch) + cols[None, :]
    s = a.sum(1)
    curves = literal_removal(model, x, y, [lambda m, i=i: s[i][m].double().sum()
                                           for i in range(len(x))],
                             grid.expand(len(x), h, w), fill_values)
    scores = [sum((p[t] + p[t + 1]) / 2 for t in range(len(p) - 1)) / (len(p) - 1)
              for p in curves]
    return torch.tensor(scores, dtype=torch.float64), torch.tensor(curves)


@pytest.mark.parametrize("fill", ["mean", 0.3, "black"])
def test_irof_equals_the_literal_loop(fill):
    x, y, a = data(b=3, size=12)
    model = tiny_cnn()
    segments = random_segments(3, 12)
    values = {"mean": x.mean((2, 3), keepdim=True).expand_as(x), 0.3: torch.full_like(x, 0.3),
              "black": x.amin((1, 2, 3), keepdim=True).expand_as(x)}[fill]
    expected, curves = literal_irof(model, x, y, a, segments, values)
    got = irof(model, x, y, a, segments=segments, fill=fill,
               memory_budget=5 * x[0].numel() * 4)  # forces many chunks
    torch.testing.assert_close(got.scores, expected, atol=1e-5, rtol=0)
    assert got.n_segments.tolist() == [len(c) - 1 for c in curves]
    assert len(set(got.n_segments.tolist())) > 1  # samples of different segment counts
    for i, p in enumerate(curves):
        k = len(p) - 1
        torch.testing.assert_close(got.curves[i, :k + 1], torch.tensor(p).double() / p[0],
                                   atol=1e-5, rtol=0)
        assert bool(got.curves[i, k + 1:].isnan().all())


@pytest.mark.parametrize("size, patch, fill", [(16, 4, "black"), (15, 4, "mean"), (13, 8, 0.0)])
def test_selectivity_equals_the_literal_loop(size, patch, fill):
    x, y, a = data(b=3, size=size, seed=1)
    model = tiny_cnn()
    values = {"mean": x.mean((2, 3), keepdim=True).expand_as(x), 0.0: torch.zeros_like(x),
              "black": x.amin((1, 2, 3), keepdim=True).expand_as(x)}[fill]
    expected, curves = literal_selectivity(model, x, y, a, patch, values)
    got = selectivity(model, x, y, a, patch=patch, fill=fill, memory_budget=5 * x[0].numel() * 4)
    torch.testing.assert_close(got.curves, curves.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(got.scores.double(), expected, atol=1e-5, rtol=0)
    assert got.fractions[0] == 0 and got.fractions[-1] == 1


def test_hand_computed_case():
    """One 2 × 2 image of ones, w = [[3, 2], [1, −1]], a = w: pixels go in the order 3, 2, 1, −1,
    so the logit falls 5 → 2 → 0 → −1 → 0 and p_t = sigmoid of it."""
    w = torch.tensor([[3.0, 2.0], [1.0, -1.0]]).view(1, 1, 2, 2)
    model, x, y = Linear2(w), torch.ones(1, 1, 2, 2), torch.tensor([0])
    p = [1 / (1 + math.exp(-z)) for z in (5, 2, 0, -1, 0)]
    r = [v / p[0] for v in p]
    expected_irof = 1 - ((r[0] + r[1]) + (r[1] + r[2]) + (r[2] + r[3]) + (r[3] + r[4])) / 8
    expected_sel = ((p[0] + p[1]) + (p[1] + p[2]) + (p[2] + p[3]) + (p[3] + p[4])) / 8
    segments = torch.arange(4).view(1, 1, 2, 2)
    got = irof(model, x, y, w, segments=segments, fill=0.0)
    assert float(got.scores[0]) == pytest.approx(expected_irof, abs=1e-6)
    sel = selectivity(model, x, y, w, patch=1, fill=0.0)
    assert float(sel.scores[0]) == pytest.approx(expected_sel, abs=1e-6)
    torch.testing.assert_close(sel.curves[0], torch.tensor(p), atol=1e-6, rtol=0)
    # two superpixels {3, 2} and {1, −1}: means 2.5 and 0, the first goes first
    two = irof(model, x, y, w, segments=torch.tensor([[0, 0], [1, 1]]).view(1, 1, 2, 2), fill=0.0)
    q = [1 / (1 + math.exp(-z)) for z in (5, 0, 0)]
    assert float(two.scores[0]) == pytest.approx(
        1 - ((q[0] + q[1]) + (q[1] + q[2])) / (4 * q[0]), abs=1e-6)


def test_a_faithful_map_scores_better_than_its_negation():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(1, 1, 12, 12, generator=g)
    x = torch.rand(4, 1, 12, 12, generator=g) + 0.5
    model, y = Linear2(w), torch.zeros(4, dtype=torch.long)
    a = w * x  # exact contributions to the logit
    segments = random_segments(4, 12, seed=1)
    good = irof(model, x, y, a, segments=segments, fill=0.0).scores
    bad = irof(model, x, y, -a, segments=segments, fill=0.0).scores
    assert bool((good > bad).all())
    good = selectivity(model, x, y, a, patch=3, fill=0.0).scores
    bad = selectivity(model, x, y, -a, patch=3, fill=0.0).scores
    assert bool((good < bad).all())
    assert get_metric("irof").direction("irof") == "higher"
    assert get_metric("selectivity").direction("selectivity") == "lower"


def test_helpers():
    labels, k = consecutive_labels(torch.tensor([[5, 5, 2, 9], [0, 1, 1, 0]]))
    assert labels.tolist() == [[1, 1, 0, 2], [0, 1, 1, 0]] and k.tolist() == [3, 2]
    # 5 px, patch 4: 3 missing pixels, 1 before and 2 after → patches of 3 and 2 pixels
    assert centred_patch_labels(1, 5, 4).tolist() == [0, 0, 0, 1, 1]
    assert centred_patch_labels(4, 4, 2).view(4, 4)[:, 0].tolist() == [0, 0, 2, 2]
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(MinFill()(x, None)[:, :, 0, 0], x.amin((1, 2, 3))[:, None].expand(2, 3))


# ---------------------------------------------------------------- Quantus


@pytest.fixture(scope="module")
def quantus(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus as q
        from quantus.helpers.utils import get_superpixel_segments
    mp = pytest.MonkeyPatch()
    # Quantus 0.6 integrates with np.trapz, which NumPy 2 removed; np.trapezoid is the same rule
    mp.setattr(np, "trapz", np.trapezoid, raising=False)
    request.addfinalizer(mp.undo)
    return q, get_superpixel_segments


def quantus_segments(get_superpixel_segments, x: torch.Tensor) -> torch.Tensor:
    """Quantus's segmentation: slic(image H×W×C as float64, start_label=0), skimage defaults."""
    return torch.stack([torch.from_numpy(get_superpixel_segments(
        np.moveaxis(xi, 0, -1).astype("double"), "slic")) for xi in x.numpy()])[:, None]


def test_irof_equals_quantus(quantus):
    """Quantus 0.6's IROF fails on colour images (its segment mask is [B, 1, H, W], the image
    [B, C, H, W]), so it is matched on one channel. Its score, per sample with K superpixels,
    is K − trapz(r_1 … r_K, dx=1) (no point 0, not divided by K) = K·irof + (1 + r_1)/2. Its
    ``mean`` baseline is the scalar mean of the whole current batch, recomputed at every step:
    with one image per batch that is :class:`CurrentMean`."""
    q, get_superpixel_segments = quantus
    x, y, a = data(b=3, c=1, size=16, seed=2)
    model = tiny_cnn(channels=1)
    segments = quantus_segments(get_superpixel_segments, x)
    theirs = q.IROF(disable_warnings=True, return_aggregate=False)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu",
        batch_size=1)
    ours = irof(model, x, y, a, segments=segments, fill=CurrentMean())
    mapped = ours.n_segments * ours.scores + (1 + ours.curves[:, 1]) / 2
    np.testing.assert_allclose(mapped.numpy(), np.asarray(theirs, dtype=np.float64), atol=1e-5)


@pytest.mark.filterwarnings("ignore:The settings for perturbing")  # its padded, unchanged steps
def test_irof_equals_quantus_on_a_batch_of_unequal_segment_counts(quantus, monkeypatch):
    """A constant baseline does not depend on the batch, so Quantus can score the whole batch
    at once; given the same segments (its segmentation call replaced by ours) it agrees after
    the mapping above, less r_K/2 for every sample with fewer superpixels than the batch's
    largest count (Quantus pads those curves with zeros and integrates the step down to 0)."""
    q, _ = quantus
    from quantus.metrics.faithfulness import irof as quantus_irof

    x, y, a = data(b=3, c=1, size=12, seed=5)
    model = tiny_cnn(channels=1)
    labels, _ = consecutive_labels(random_segments(3, 12).flatten(1))
    segments = labels.view(3, 1, 12, 12)
    by_image = {xi.tobytes(): si[0].numpy() for xi, si in
                zip(np.moveaxis(x.numpy(), 1, -1).astype("double"), segments)}
    monkeypatch.setattr(quantus_irof.utils, "get_superpixel_segments",
                        lambda img, segmentation_method: by_image[img.tobytes()])
    theirs = q.IROF(disable_warnings=True, return_aggregate=False, perturb_baseline=0.25)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu")
    ours = irof(model, x, y, a, segments=segments, fill=0.25)
    k = ours.n_segments
    assert len(set(k.tolist())) == 3
    r_k = ours.curves.gather(1, k[:, None])[:, 0]
    mapped = k * ours.scores + (1 + ours.curves[:, 1]) / 2 - (k < k.max()) * r_k / 2
    np.testing.assert_allclose(mapped.numpy(), np.asarray(theirs, dtype=np.float64), atol=1e-5)


@pytest.mark.parametrize("size, patch", [(16, 8), (15, 4)])
def test_selectivity_equals_quantus(quantus, size, patch):
    """Quantus returns the curves without point 0: equal to ours[:, 1:]. Its AUC,
    ``get_auc_score`` = mean over samples of trapz(p_1 … p_P, dx=1) = P·selectivity −
    (p_0 + p_1)/2. 15 px with patch 4 checks the centred grid (Quantus pads 0 before and 1 after
    each side, the attributions with zeros)."""
    q, _ = quantus
    x, y, a = data(b=3, size=size, seed=4)
    model = tiny_cnn()
    metric = q.Selectivity(disable_warnings=True, return_aggregate=False, patch_size=patch)
    theirs = np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
                               a_batch=a.numpy(), device="cpu"), dtype=np.float64)
    ours = selectivity(model, x, y, a, patch=patch)
    np.testing.assert_allclose(ours.curves[:, 1:].numpy(), theirs, atol=1e-5)
    n = ours.curves.shape[1] - 1
    mapped = n * ours.scores.double() - (ours.curves[:, 0] + ours.curves[:, 1]).double() / 2
    assert float(mapped.mean()) == pytest.approx(metric.get_auc_score, abs=1e-5)


# ---------------------------------------------------------------- registry, device, errors


def test_registry_records_and_costs():
    x, y, a = data(b=3, size=16)
    counting = Counting(tiny_cnn())
    r = score("selectivity", model=counting, x=x, y=y, a=a, patch=4)  # also measures chunk size
    counting.images = 0
    r = score("selectivity", model=counting, x=x, y=y, a=a, patch=4)
    cost = get_metric("selectivity").estimate({"patch": 4}, (3, 16, 16))
    assert counting.images == cost.forward * 3
    assert r.curves["score"].values.shape == (3, 17) and r.values["selectivity"].shape == (3,)
    assert get_metric("selectivity").estimate({"patch": 8}, (3, 15, 15)).forward == 5
    counting.images = 0
    r = score("irof", model=counting, x=x, y=y, a=a, n_segments=8)
    k = irof(tiny_cnn(), x, y, a, n_segments=8).n_segments
    assert counting.images == (int(k.max()) + 1) * 3  # every sample runs the batch's largest K
    assert r.curves["ratio"].values.shape == (3, int(k.max()) + 1)
    assert get_metric("irof").estimate({"n_segments": 8}).forward == 9  # SLIC's target count


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_tensors_device():
    x, y, a = data(b=2, size=16)
    model = tiny_cnn()
    segments = random_segments(2, 16)
    cpu = irof(model, x, y, a, segments=segments), selectivity(model, x, y, a, patch=4)
    dev = torch.device("cuda")
    model.to(dev)
    gpu = (irof(model, x.to(dev), y.to(dev), a.to(dev), segments=segments.to(dev)),
           selectivity(model, x.to(dev), y.to(dev), a.to(dev), patch=4))
    for c, g in zip(cpu, gpu):
        assert g.scores.device.type == "cuda"
        torch.testing.assert_close(g.scores.cpu(), c.scores, atol=1e-4, rtol=0)


def test_bad_input_is_an_error_naming_the_argument():
    x, y, a = data(b=2, size=8)
    model = tiny_cnn()
    with pytest.raises(TypeError, match="segments must be an integer tensor"):
        irof(model, x, y, a, segments=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"segments must be \[B, 1, H, W\]"):
        irof(model, x, y, a, segments=torch.zeros(2, 1, 8, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="segments must hold non-negative"):
        irof(model, x, y, a, segments=-torch.ones(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="n_segments"):
        irof(model, x, y, a, n_segments=0)
    with pytest.raises(ValueError, match="fill must be one of"):
        irof(model, x, y, a, fill="nosuch")
    with pytest.raises(ValueError, match="a must match x"):
        irof(model, x, y, a[:, :, :4])
    for bad in (0, 9, 2.0):
        with pytest.raises(ValueError, match="patch must be an integer"):
            selectivity(model, x, y, a, patch=bad)
    with pytest.raises(ValueError, match="precision must be one of"):
        selectivity(model, x, y, a, precision="fp8")
    with pytest.raises(ValueError, match="score must be one of"):
        selectivity(model, x, y, a, score="margin")
    with pytest.raises(ValueError, match="a contains NaN"):
        selectivity(model, x, y, torch.full_like(a, math.nan))
