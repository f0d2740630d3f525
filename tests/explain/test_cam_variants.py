"""The CAM variants (Grad-CAM++, XGrad-CAM, LayerCAM, Eigen-CAM, Score-CAM, Ablation-CAM) against
pytorch-grad-cam on identical inputs, against hand-computed cases and identities, and against a
literal one-pass-per-channel loop.

**Mapping to pytorch-grad-cam.** Its pipeline per layer is ReLU → per-sample min–max → OpenCV
resize to the input size → (mean over target layers, here one) → min–max again. The OpenCV
resize rounds its weights (~1e-4 of the range), so the comparison happens at the *feature*
resolution: :func:`library_map` sets the library's resize target (``get_target_width_height``)
to the feature map's size, where OpenCV's resize is a copy, and salbench's side is
``upsample(raw, feature size, relu=True, minmax=True)`` (bilinear resizing to the same size is
the identity too) followed by the library's second min–max (:func:`scaled`). Score-CAM's masks
are upsampled to the input size inside both implementations, untouched by this mapping.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explain_helpers import GapNet, batch_norm_statistics, conv_flatten_fc
from pytorch_grad_cam import (
    AblationCAM,
    EigenCAM,
    GradCAMPlusPlus,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction
from torch import nn

from salbench.explain import cam_maps, cam_variant_maps, explain
from salbench.explain.cam import upsample
from salbench.explain.cam_variants import (
    VARIANTS,
    eigencam_map,
    gradcam_pp_map,
    xgradcam_map,
)
from salbench.explain.gradients import resolve_layer
from salbench.models import build, make_explainable

TOLERANCE = 1e-5  # the brief's: equal to pytorch-grad-cam after the same ReLU and min-max
LIBRARY = {"gradcam_pp": GradCAMPlusPlus, "xgradcam": XGradCAM, "layercam": LayerCAM,
           "eigencam": EigenCAM, "scorecam": ScoreCAM, "ablationcam": AblationCAM}


def small_cnn() -> nn.Sequential:
    torch.manual_seed(3)
    return conv_flatten_fc().eval()  # [B, 3, 16, 16] -> 8x8 features at model[3], ReLU model[4]


def small_resnet() -> nn.Module:
    """A zoo ResNet-18 at width 0.125 (64 channels in layer4) on 128 px (4x4 features)."""
    torch.manual_seed(5)
    model = batch_norm_statistics(build("resnet18", 3, 3, 128, 0.125), seed=5)
    return make_explainable(model).eval()


CASES = {
    # name: (model factory, input shape, targets, gradient/Eigen/Score layer, ablation layer)
    "cnn": (small_cnn, (3, 3, 16, 16), [0, 3, 1], None, "4"),
    "resnet18": (small_resnet, (2, 3, 128, 128), [2, 0], None, "layer4"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    factory, shape, targets, layer, ablation_layer = CASES[request.param]
    model = factory()
    torch.manual_seed(11)
    return model, torch.randn(*shape), torch.tensor(targets), layer, ablation_layer


def library_map(kind: str, model: nn.Module, layer: nn.Module, x, y, size) -> torch.Tensor:
    """pytorch-grad-cam's map ``[B, 1, D1, D2]`` at the feature resolution ``size`` (module
    docstring: its resize target set to the feature size)."""
    with LIBRARY[kind](model=model, target_layers=[layer]) as cam:
        cam.get_target_width_height = lambda _: (size[1], size[0])  # OpenCV's (width, height)
        out = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in y])
    return torch.from_numpy(np.asarray(out))[:, None]


def activations(model: nn.Module, layer: nn.Module, x) -> torch.Tensor:
    store = {}
    handle = layer.register_forward_hook(lambda m, a, out: store.setdefault("a", out.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return store["a"]


def scaled(raw: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's post-processing at feature resolution: ReLU and min–max, then min–max
    again (module docstring). The second one matters: each divides by max − min + 1e-7, so one
    scaling leaves a map of raw range r short of 1 by ~1e-7 / r (4e-5 on the small CNN's
    XGrad-CAM, r ≈ 3e-3), and the second stretches it back to within ~1e-7."""
    once = upsample(raw, raw.shape[-2:], relu=True, minmax=True)
    return upsample(once, raw.shape[-2:], minmax=True)


@pytest.mark.parametrize("kind", ["gradcam_pp", "xgradcam", "layercam", "scorecam"])
def test_variant_equals_pytorch_grad_cam(case, kind):
    model, x, y, layer, _ = case
    raw, _ = cam_variant_maps(model, x, y, kind, layer=layer)
    reference = library_map(kind, model, resolve_layer(model, layer), x, y, raw.shape[-2:])
    ours = scaled(raw)
    assert ours.amax() > 0.99 and (ours < 0.5).any()  # a map with a real spread
    torch.testing.assert_close(ours, reference, rtol=0, atol=TOLERANCE)


def test_ablationcam_equals_pytorch_grad_cam_after_a_relu(case):
    """pytorch-grad-cam zeroes the ablated map only when the layer's minimum is 0 (a layer after
    a ReLU; cam_variants.ablationcam_weights): compare there."""
    model, x, y, _, layer = case
    module = resolve_layer(model, layer)
    assert float(activations(model, module, x).amin()) == 0.0
    raw, _ = cam_variant_maps(model, x, y, "ablationcam", layer=layer)
    reference = library_map("ablationcam", model, module, x, y, raw.shape[-2:])
    ours = scaled(raw)
    assert ours.amax() > 0.99 and (ours < 0.5).any()
    torch.testing.assert_close(ours, reference, rtol=0, atol=TOLERANCE)


def test_eigencam_equals_pytorch_grad_cam_up_to_the_svd_sign(case):
    """pytorch-grad-cam's EigenCAM keeps LAPACK's sign of v1; salbench corrects the sign as the
    library's get_2d_projection_with_sign_correction does: equal to that raw projection, and
    to EigenCAM's map with one of the two signs per sample."""
    model, x, y, layer, _ = case
    raw, _ = cam_variant_maps(model, x, y, "eigencam", layer=layer)
    module = resolve_layer(model, layer)
    corrected = get_2d_projection_with_sign_correction(activations(model, module, x).numpy())
    scale = float(raw.abs().max())
    torch.testing.assert_close(raw[:, 0], torch.from_numpy(corrected), rtol=0,
                               atol=TOLERANCE * scale)
    reference = library_map("eigencam", model, module, x, y, raw.shape[-2:])
    for i in range(len(x)):
        errors = [float((scaled(s * raw[i:i + 1]) - reference[i:i + 1]).abs().max())
                  for s in (1, -1)]
        assert min(errors) <= TOLERANCE, errors
        assert max(errors) > 0.1  # the two signs give different maps: the check means something


# ---------------------------------------------------------------- identities and hand cases


def test_layercam_equals_hirescam_when_every_gradient_is_non_negative():
    """LayerCAM = Σ ReLU(g) ⊙ A = Σ g ⊙ A = HiResCAM where g ≥ 0: after the layer only a ReLU
    and a linear layer with non-negative weights for the target class."""
    model = small_cnn()
    with torch.no_grad():
        model[-1].weight[1].abs_()
    x = torch.randn(3, 3, 16, 16)
    layer_raw, _ = cam_variant_maps(model, x, 1, "layercam")
    hires_raw, _ = cam_maps(model, x, 1, "hirescam")
    torch.testing.assert_close(layer_raw, hires_raw, rtol=1e-6, atol=1e-7)
    # class 0 keeps mixed-sign weights: negative gradients, and the two differ
    layer_raw, _ = cam_variant_maps(model, x, 0, "layercam")
    hires_raw, _ = cam_maps(model, x, 0, "hirescam")
    assert not torch.allclose(layer_raw, hires_raw, rtol=1e-2, atol=1e-4)


class ConstantMaps(nn.Module):
    """Conv - ReLU - GAP - upsample to 4x4 (spatially constant maps: the CAM layer) - Conv -
    Flatten - Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1))
        self.constant = nn.Upsample(size=(4, 4), mode="nearest")
        self.head = nn.Sequential(nn.Conv2d(5, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(4 * 16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.constant(self.features(x)))


def test_xgradcam_equals_gradcam_when_activations_are_spatially_constant():
    """w^k = Σ_ij (A^k_ij / Σ_ab A^k_ab) g^k_ij = mean_ij g^k_ij when A^k is constant."""
    torch.manual_seed(0)
    model = ConstantMaps().eval()
    x = torch.rand(3, 3, 8, 8)
    y = torch.tensor([0, 1, 2])
    xgrad, _ = cam_variant_maps(model, x, y, "xgradcam", layer="constant")
    grad, _ = cam_maps(model, x, y, "gradcam", layer="constant")
    torch.testing.assert_close(xgrad, grad, rtol=1e-5, atol=1e-7)
    # not so for maps that vary: the identity is specific to constant activations
    a = torch.rand(1, 2, 3, 3) + 0.1
    g = torch.randn(1, 2, 3, 3)
    gradcam = (g.mean((2, 3))[:, :, None, None] * a).sum(1, keepdim=True)
    assert not torch.allclose(xgradcam_map(a, g), gradcam, rtol=1e-2)


def test_gradcam_pp_by_hand():
    """Eq. 19 on one 2x2 map: A = [[1, 2], [3, 0]] (Σ A = 6); g = 0.5 except g = 0 at (1, 1) and
    g = -0.5 at (0, 1). α = 0.25 / (0.5 + 6 · (±0.125) + 1e-6): 0.2 where g = 0.5, ReLU(g) = 0
    where g < 0, α = 0 where g = 0; w = 2 · 0.2 · 0.5 = 0.2, so the map is 0.2 A."""
    a = torch.tensor([[[[1.0, 2.0], [3.0, 0.0]]]])
    g = torch.tensor([[[[0.5, -0.5], [0.5, 0.0]]]])
    alpha = 0.25 / (0.5 + 6 * 0.125 + 1e-6)
    expected = 2 * alpha * 0.5 * a
    torch.testing.assert_close(gradcam_pp_map(a, g), expected, rtol=1e-6, atol=0)
    assert abs(alpha - 0.2) < 1e-6


def test_eigencam_of_a_rank_one_pattern_is_the_centred_pattern():
    """A^k = u_k P + c_k: centred over positions M = (P − mean P) uᵀ, whose first principal
    projection is ±‖u‖ (P − mean P); the sign rule keeps the side with the larger |extreme|."""
    torch.manual_seed(1)
    pattern = torch.rand(5, 6)
    pattern[2, 3] = 3.0  # one large positive peak: |max| > |min| after centring
    u = torch.randn(7)
    features = u[:, None, None] * pattern + torch.randn(7)[:, None, None]
    centred = (pattern - pattern.mean()) * u.norm()
    out = eigencam_map(features[None])
    torch.testing.assert_close(out[0, 0], centred, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eigencam_map(-features[None])[0, 0], centred, rtol=1e-4,
                               atol=1e-5)  # A -> -A flips v1, not the corrected map


def test_ablationcam_on_a_gap_linear_model_is_cam_scaled_by_each_channels_share():
    """GAP + linear: y^c = Σ_k w_ck mean(A^k) + b_c, so zeroing A^k lowers y^c by exactly
    w_ck mean(A^k) and Ablation-CAM's weight is w_ck mean(A^k) / y^c: the CAM weights w_ck times
    mean(A^k) / y^c."""
    torch.manual_seed(2)
    model = GapNet().eval()
    x = torch.randn(3, 3, 10, 10)
    y = torch.tensor([0, 2, 3])
    raw, _ = cam_variant_maps(model, x, y, "ablationcam", layer="features.3")
    a = activations(model, model.features[3], x)
    with torch.no_grad():
        logits = model(x).gather(1, y[:, None])
    weights = model.fc.weight[y].detach() * a.mean((2, 3)) / logits
    expected = (weights[:, :, None, None] * a).sum(1, keepdim=True)
    torch.testing.assert_close(raw, expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max()))


# ---------------------------------------------------------------- chunked passes, literally


def literal_scorecam(model, x, y, a):
    """Score-CAM written out: one masked image and one forward pass per sample and channel."""
    out = []
    for i in range(len(x)):
        scores = []
        for k in range(a.shape[1]):
            mask = nn.functional.interpolate(a[i:i + 1, k:k + 1], size=x.shape[-2:],
                                             mode="bilinear", align_corners=True)
            mask = (mask - mask.min()) / (mask.max() - mask.min() + 1e-8)
            with torch.no_grad():
                scores.append(model(x[i:i + 1] * mask)[0, y[i]])
        w = torch.softmax(torch.stack(scores), 0)
        out.append((w[:, None, None] * a[i]).sum(0))
    return torch.stack(out)[:, None]


def literal_ablationcam(model, layer, x, y, a):
    """Ablation-CAM written out: one forward pass per sample and channel, that channel zeroed."""
    out = []
    with torch.no_grad():
        for i in range(len(x)):
            base = model(x[i:i + 1])[0, y[i]]
            w = []
            for k in range(a.shape[1]):
                def zero(m, args, output, k=k):
                    output = output.clone()
                    output[:, k] = 0
                    return output
                handle = layer.register_forward_hook(zero)
                w.append((base - model(x[i:i + 1])[0, y[i]]) / base)
                handle.remove()
            out.append((torch.stack(w)[:, None, None] * a[i]).sum(0))
    return torch.stack(out)[:, None]


@pytest.mark.parametrize("batch", [1, 5, 1000])
def test_forward_pass_variants_equal_the_literal_loop_in_any_chunking(batch):
    model = small_cnn()
    x = torch.randn(3, 3, 16, 16)
    y = torch.tensor([1, 0, 3])
    a = activations(model, model[3], x)
    raw, _ = cam_variant_maps(model, x, y, "scorecam", internal_batch_size=batch)
    torch.testing.assert_close(raw, literal_scorecam(model, x, y, a), rtol=1e-5, atol=1e-6)
    a = activations(model, model[4], x)
    raw, _ = cam_variant_maps(model, x, y, "ablationcam", layer="4", internal_batch_size=batch)
    expected = literal_ablationcam(model, model[4], x, y, a)
    # y^c − y^c_k cancels: float32 rounding of the logits (batch-size dependent) is ~1e-6 of it
    torch.testing.assert_close(raw, expected, rtol=0, atol=1e-5 * float(expected.abs().max()))


def test_forward_passes_are_chunked_not_one_per_channel():
    """3 samples x 5 channels = 15 passes in ceil(15 / 4) = 4 model calls of <= 4 images."""
    model = small_cnn()
    calls = []
    handle = model.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
    try:
        explain(model, torch.randn(3, 3, 16, 16), 0, "ablationcam", internal_batch_size=4)
    finally:
        handle.remove()
    assert calls[-4:] == [4, 4, 4, 3] and len(calls) == 5  # one unablated pass first


def test_registered_methods_return_the_upsampled_map():
    model = small_cnn()
    x = torch.randn(2, 3, 16, 16)
    y = torch.tensor([2, 1])
    for kind in VARIANTS:
        raw, up = cam_variant_maps(model, x, y, kind, relu=True, minmax=True)
        out = explain(model, x, y, kind, minmax=True)
        assert out.shape == (2, 1, 16, 16), kind
        torch.testing.assert_close(out, up, rtol=0, atol=1e-6)
        torch.testing.assert_close(upsample(raw, (16, 16), relu=True, minmax=True), up)


# ---------------------------------------------------------------- errors


def test_bad_inputs_are_clear_errors():
    model = small_cnn()
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="kind must be one of"):
        cam_variant_maps(model, x, 0, "gradcam++")
    with pytest.raises(ValueError, match="internal_batch_size must be a positive integer"):
        explain(model, x, 0, "scorecam", internal_batch_size=0)
    with pytest.raises(TypeError, match="unknown parameters"):
        explain(model, x, 0, "layercam", internal_batch_size=8)  # no passes to chunk
    with pytest.raises(ValueError, match="feature maps"):  # a layer without [B, F, D1, D2]
        explain(model, x, 0, "xgradcam", layer="6")
    with pytest.raises(ValueError, match="not a submodule"):
        explain(model, x, 0, "eigencam", layer="nope")
    with pytest.raises(ValueError, match="NaN or infinite"):
        explain(model, torch.full_like(x, float("nan")), 0, "gradcam_pp")
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="hooks"):
        explain(torch.jit.script(model), x, 0, "ablationcam")
