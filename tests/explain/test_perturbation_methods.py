"""Feature ablation, Shapley value sampling, KernelSHAP and LIME over SLIC superpixels: against
Captum called directly, against their definitions on a linear model, and their pass budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, KernelShap, Lime, ShapleyValueSampling
from explain_helpers import conv_flatten_fc
from skimage.segmentation import slic
from torch import nn

from salbench.explain import available, explain, get_method
from salbench.explain.perturbation_methods import shapley_permutations, superpixels

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Captum's notices on direct calls

METHODS = ["feature_ablation", "shapley_sampling", "kernel_shap", "lime"]
SAMPLED = ["shapley_sampling", "kernel_shap", "lime"]
CAPTUM = {"feature_ablation": FeatureAblation, "shapley_sampling": ShapleyValueSampling,
          "kernel_shap": KernelShap, "lime": Lime}
SEGMENTS = 8
MAX_DIFFERENCE: dict[str, float] = {}  # measured against Captum, printed with -s


def blobs(n: int, channels: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Images of a few smooth Gaussian bumps per channel (SLIC finds no structure in noise)."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    out = torch.zeros(n, channels, size, size)
    for _ in range(4):
        centre = torch.rand(n, channels, 2, 1, 1, generator=g)
        height = torch.rand(n, channels, 1, 1, generator=g)
        out += height * torch.exp(-((yy - centre[:, :, 0]) ** 2 + (xx - centre[:, :, 1]) ** 2)
                                  / 0.03)
    return out


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = conv_flatten_fc().eval()
    with torch.no_grad():  # logit effects of order 1: LIME's Lasso (α = 0.01) zeroes tiny ones
        model[-1].weight.mul_(50)
        model[-1].bias.mul_(50)
    return model, blobs(3), torch.tensor([0, 3, 1])


def n_features(masks: torch.Tensor) -> list[int]:
    return [int(m.max()) + 1 for m in masks]


# ---- superpixels -----------------------------------------------------------------------------


def test_superpixels_are_slic_of_the_scaled_image_with_consecutive_labels():
    x = blobs(2, size=24) * 3 - 1  # any value range: scaled to [0, 1] per image first
    masks = superpixels(x, n_segments=SEGMENTS, compactness=10.0)
    assert masks.shape == (2, 1, 24, 24) and masks.dtype == torch.long
    for image, mask in zip(x, masks):
        scaled = ((image - image.min()) / (image.max() - image.min())).double().numpy()
        expected = slic(np.moveaxis(scaled, 0, -1), n_segments=SEGMENTS, compactness=10.0,
                        start_label=0)
        k = len(np.unique(expected))
        assert k >= 2 and sorted(mask.unique().tolist()) == list(range(k))
        # the same partition (labels renumbered consecutively)
        assert len(np.unique(expected * 1000 + mask[0].numpy())) == k


def test_grey_images_are_segmented_as_2d_on_labs_lightness_range():
    x = blobs(1, channels=1, size=24)
    mask = superpixels(x, n_segments=SEGMENTS)[0, 0].numpy()
    scaled = ((x[0, 0] - x.min()) / (x.max() - x.min())).double().numpy() * 100
    expected = slic(scaled, n_segments=SEGMENTS, compactness=10.0, start_label=0,
                    channel_axis=None)
    assert len(np.unique(expected)) >= 2
    assert len(np.unique(expected * 1000 + mask)) == len(np.unique(expected)) == mask.max() + 1


# ---- (a) equal to Captum called directly -------------------------------------------------------


def captum_direct(name, model, x, y, masks, passes, seed, per_eval):
    """Captum's class, one image at a time with its mask, torch's RNG seeded before each."""
    parts = []
    for i in range(x.shape[0]):
        k = int(masks[i].max()) + 1
        kwargs = {"baselines": 0.0, "target": int(y[i]), "feature_mask": masks[i:i + 1],
                  "perturbations_per_eval": per_eval}
        if name == "shapley_sampling":
            kwargs["n_samples"] = (passes - 1) // k
        elif name in ("kernel_shap", "lime"):
            kwargs["n_samples"] = passes
        torch.manual_seed(seed)
        parts.append(CAPTUM[name](model).attribute(x[i:i + 1], **kwargs))
    return torch.cat(parts)


@pytest.mark.parametrize("name", METHODS)
def test_equals_captum_called_directly(setup, name):
    model, x, y = setup
    masks = superpixels(x, SEGMENTS)
    passes, seed = 60, 3
    params = {"n_segments": SEGMENTS} | ({"passes": passes, "seed": seed}
                                         if name in SAMPLED else {})
    ours = explain(model, x, y, name, internal_batch_size=7, **params)
    theirs = captum_direct(name, model, x, y, masks, passes, seed, per_eval=1)
    assert ours.shape == x.shape
    difference = float((ours - theirs).abs().max())
    MAX_DIFFERENCE[name] = difference
    print(f"{name}: max |salbench - Captum| = {difference:.2e} "
          f"(max |a| = {float(theirs.abs().max()):.2e})")
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", METHODS)
def test_batching_changes_nothing(setup, name):
    """The per-eval batch size and the images that share a call do not change a map."""
    model, x, y = setup
    params = {"n_segments": SEGMENTS} | ({"passes": 40} if name in SAMPLED else {})
    whole = explain(model, x, y, name, **params)
    torch.testing.assert_close(explain(model, x, y, name, internal_batch_size=1, **params),
                               whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(explain(model, x[1:2], y[1:2], name, **params), whole[1:2],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SAMPLED)
def test_seeded_without_touching_the_global_rng(setup, name):
    model, x, y = setup
    params = {"n_segments": SEGMENTS, "passes": 30}
    torch.manual_seed(11)
    first = explain(model, x[:1], y[:1], name, **params)
    after = torch.rand(3)
    torch.manual_seed(12)
    assert torch.equal(explain(model, x[:1], y[:1], name, **params), first)
    torch.manual_seed(11)
    explain(model, x[:1], y[:1], name, **params)
    assert torch.equal(torch.rand(3), after)
    assert not torch.equal(explain(model, x[:1], y[:1], name, seed=1, **params), first)


# ---- (b) theory: a linear model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4)).eval()
    with torch.no_grad():
        model[1].weight.mul_(100)  # contributions up to about 9 logits
    x, y = blobs(2, seed=2) - 0.3, torch.tensor([2, 0])
    return model, x, y


def per_superpixel_contribution(model, x, y, masks):
    """Σ_{i in S} w_{y,i} x_i for each superpixel S, written to each of its pixels and channels
    (baseline 0): the Shapley value, and the ablation effect, of S for f(x) = w·x + b."""
    weight = model[1].weight.detach()
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        w = weight[int(y[b])].view_as(x[b])
        for s in range(int(masks[b].max()) + 1):
            inside = (masks[b, 0] == s).expand_as(x[b])
            out[b][inside] = float((w * x[b])[inside].sum())
    return out


def test_ablation_and_shapley_give_each_superpixels_contribution_on_a_linear_model(linear):
    model, x, y = linear
    masks = superpixels(x, SEGMENTS)
    expected = per_superpixel_contribution(model, x, y, masks)
    torch.testing.assert_close(explain(model, x, y, "feature_ablation", n_segments=SEGMENTS),
                               expected, rtol=1e-5, atol=1e-5)
    # additive over superpixels: every permutation gives the Shapley value, one is enough
    one_permutation = max(n_features(masks)) + 1
    for passes in (one_permutation, 200):
        torch.testing.assert_close(
            explain(model, x, y, "shapley_sampling", n_segments=SEGMENTS, passes=passes),
            expected, rtol=1e-5, atol=1e-5)


def test_kernel_shap_recovers_the_contributions_of_a_linear_model(linear):
    """A weighted least-squares fit of an exactly linear function of z: exact up to the
    solver once the samples span the superpixels (measured: 4e-7 of max |φ|); stated tolerance
    1e-4 of max |φ|."""
    model, x, y = linear
    masks = superpixels(x, SEGMENTS)
    expected = per_superpixel_contribution(model, x, y, masks)
    ours = explain(model, x, y, "kernel_shap", n_segments=SEGMENTS, passes=100)
    assert float((ours - expected).abs().max()) <= 1e-4 * float(expected.abs().max())


def test_lime_is_the_contributions_shrunk_by_its_lasso(linear):
    """LIME's Lasso (α = 0.01) shrinks each coefficient by about α / Var(z_S) = 4α = 0.04
    logits: within 2 · 4α of the contributions (up to 9 logits here; measured 0.045), not equal."""
    model, x, y = linear
    masks = superpixels(x, SEGMENTS)
    expected = per_superpixel_contribution(model, x, y, masks)
    ours = explain(model, x, y, "lime", n_segments=SEGMENTS, passes=400)
    error = float((ours - expected).abs().max())
    assert 0.01 < error <= 0.08 and float(expected.abs().max()) > 5


def test_shapley_sampling_is_efficient_on_a_nonlinear_model(setup):
    """Each permutation telescopes: Σ_S φ_S = f_y(x) − f_y(baseline) exactly, for any model."""
    model, x, y = setup
    masks = superpixels(x, SEGMENTS)
    a = explain(model, x, y, "shapley_sampling", n_segments=SEGMENTS, passes=50)
    per_superpixel = [sum(float(a[b, 0][masks[b, 0] == s][0]) for s in range(k))
                      for b, k in enumerate(n_features(masks))]
    with torch.no_grad():
        delta = (model(x) - model(torch.zeros_like(x))).gather(1, y[:, None]).flatten()
    torch.testing.assert_close(torch.tensor(per_superpixel), delta, rtol=1e-4, atol=1e-5)


# ---- (c) the pass budget -------------------------------------------------------------------------


class PassCounter:
    """Images the model sees (one per perturbed copy) and the largest batch of one call."""

    def __init__(self, model: nn.Module) -> None:
        self.images, self.largest = 0, 0
        self.handle = model.register_forward_hook(self)

    def __call__(self, module, inputs, output) -> None:
        self.images += inputs[0].shape[0]
        self.largest = max(self.largest, inputs[0].shape[0])


@pytest.mark.parametrize("name", METHODS)
def test_forward_passes_are_the_stated_cost(setup, name):
    model, x, y = setup
    masks = superpixels(x, SEGMENTS)
    ks = n_features(masks)
    passes, batch = 45, 16
    params = {"n_segments": SEGMENTS} | ({"passes": passes} if name in SAMPLED else {})
    counter = PassCounter(model)
    try:
        explain(model, x, y, name, internal_batch_size=batch, **params)
    finally:
        counter.handle.remove()
    expected = {"feature_ablation": sum(k + 1 for k in ks),
                "shapley_sampling": sum(1 + k * shapley_permutations(passes, k) for k in ks),
                "kernel_shap": len(ks) * passes, "lime": len(ks) * passes}[name]
    assert counter.images == expected
    assert counter.largest <= batch
    if name in SAMPLED:
        assert counter.images <= len(ks) * passes


# ---- (d) errors, registration --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params", "match"), [
    ("feature_ablation", {"n_segments": 0}, "n_segments must be a positive integer"),
    ("lime", {"n_segments": 2.5}, "n_segments must be a positive integer"),
    ("shapley_sampling", {"passes": 0}, "passes must be a positive integer"),
    ("kernel_shap", {"passes": -3}, "passes must be a positive integer"),
    ("lime", {"passes": True}, "passes must be a positive integer"),
    ("shapley_sampling", {"passes": 5}, "passes=5 is too few for shapley_sampling"),
    ("kernel_shap", {"n_segments": 1}, "kernel_shap needs at least 2 superpixels"),
    ("feature_ablation", {"compactness": 0.0}, "compactness must be a positive number"),
    ("lime", {"internal_batch_size": 0}, "internal_batch_size must be a positive integer"),
])
def test_bad_arguments_are_clear_errors(setup, name, params, match):
    model, x, y = setup
    with pytest.raises(ValueError, match=match):
        explain(model, x, y, name, **params)


def test_baseline_must_be_a_number(setup):
    model, x, y = setup
    with pytest.raises(TypeError, match="baseline must be a number"):
        explain(model, x, y, "feature_ablation", baseline="zero")


def test_registered_forward_only_and_run_on_torchscript(setup):
    model, x, y = setup
    assert set(METHODS) <= {m.name for m in available()}
    for name in METHODS:
        spec = get_method(name)
        assert spec.requires == "none" and spec.backend == "captum"
        assert ("passes" in spec.params) == (name in SAMPLED)
    scripted = torch.jit.script(model)
    torch.testing.assert_close(
        explain(scripted, x, y, "kernel_shap", n_segments=SEGMENTS, passes=20),
        explain(model, x, y, "kernel_shap", n_segments=SEGMENTS, passes=20),
        rtol=1e-5, atol=1e-6)
