"""Methods against the reference libraries' own results on identical inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import (
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from explain_helpers import (
    GapNet,
    conv_flatten_fc,
    hand_built_tutorial,
    tiny,
    zennit_attribution,
)
from pytorch_grad_cam import GradCAM, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat

from salbench.explain import cam_maps, explain
from salbench.explain.cam import upsample
from salbench.models import to_conv_flatten_fc

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Captum's notices on direct calls


# The last Conv2d, the default Grad-CAM layer, of each architecture under test.
LAST_CONV = {"resnet18": lambda m: m.layer4[-1].conv2, "vgg16_bn": lambda m: m.features[40]}


@pytest.fixture(scope="module", params=["resnet18", "vgg16_bn"])
def setup(request):
    model = tiny(request.param)
    x = torch.rand(3, 3, 32, 32)
    y = torch.tensor([2, 0, 1])
    return model, x, y


def _seeded(fn, seed=0):
    """``fn()`` with torch's and NumPy's RNGs seeded (GradientShap draws with ``np.random``)."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            return fn()
        finally:
            np.random.set_state(state)


def _direct(name, model, x, y):
    """The same attribution written as a plain Captum call (document 000's settings)."""
    model.eval()
    zeros = torch.zeros_like(x)
    if name == "saliency":
        return Saliency(model).attribute(x, target=y, abs=False)
    if name == "input_x_gradient":
        return InputXGradient(model).attribute(x, target=y)
    if name == "guided_backprop":
        return GuidedBackprop(model).attribute(x, target=y)
    if name == "deconvolution":
        return Deconvolution(model).attribute(x, target=y)
    if name == "deeplift":
        return DeepLift(model).attribute(x, baselines=zeros, target=y)
    if name == "integrated_gradients":
        return IntegratedGradients(model).attribute(x, baselines=zeros, target=y, n_steps=50)
    if name == "guided_gradcam":
        layer = LAST_CONV[model.salbench_spec.arch](model)
        return GuidedGradCam(model, layer).attribute(x, target=y)
    if name == "occlusion":
        return Occlusion(model).attribute(x, sliding_window_shapes=(3, 8, 8), strides=(3, 8, 8),
                                          baselines=0.0, target=y)
    if name == "gradient_shap":
        return _seeded(lambda: GradientShap(model).attribute(
            x, baselines=torch.zeros(1, *x.shape[1:]), target=y, n_samples=5))
    if name == "deeplift_shap":
        def run():
            low, high = x.min(), x.max()
            base = low + (high - low) * torch.rand(5, *x.shape[1:])
            return DeepLiftShap(model).attribute(x, baselines=base, target=y)
        return _seeded(run)
    if name == "smoothgrad":
        return _seeded(lambda: NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=10, stdevs=0.15, target=y, abs=False,
            nt_samples_batch_size=64 // x.shape[0]))
    raise KeyError(name)


# DeepLIFT and DeepLiftSHAP are salbench's own rescale rule by default, equal to Captum where
# Captum is right and to Captum with its bugs patched out everywhere
# (tests/explain/test_deeplift.py); backend="captum" is Captum's call.
CAPTUM_METHODS = ["saliency", "input_x_gradient", "guided_backprop", "deconvolution", "deeplift",
                  "integrated_gradients", "guided_gradcam", "occlusion", "gradient_shap",
                  "deeplift_shap", "smoothgrad"]


@pytest.mark.parametrize("name", CAPTUM_METHODS)
def test_captum_backed_method_equals_direct_captum_call(setup, name):
    model, x, y = setup
    params = {"occlusion": {"window": 8, "stride": 8}, "smoothgrad": {"nt_samples": 10},
              "deeplift": {"backend": "captum"}, "deeplift_shap": {"backend": "captum"}
              }.get(name, {})
    ours = explain(model, x, y, name, **params)
    torch.testing.assert_close(ours, _direct(name, model, x, y).detach(), rtol=1e-5, atol=1e-6)


def test_gradient_shap_is_seeded_whatever_numpys_state(setup):
    """Captum draws GradientSHAP's path coefficients with ``np.random``: the method's ``seed``
    must fix them, and NumPy's global state must be left as found."""
    model, x, y = setup
    np.random.seed(1)
    first = explain(model, x, y, "gradient_shap")
    after = np.random.random()
    np.random.seed(2)
    assert torch.equal(explain(model, x, y, "gradient_shap"), first)
    np.random.seed(1)
    assert np.random.random() == after
    assert not torch.equal(explain(model, x, y, "gradient_shap", seed=1), first)


def test_internal_batch_size_does_not_change_deterministic_results(setup):
    model, x, y = setup
    whole = explain(model, x, y, "integrated_gradients", internal_batch_size=1000)
    torch.testing.assert_close(explain(model, x, y, "integrated_gradients",
                                       internal_batch_size=7), whole, rtol=1e-5, atol=1e-6)
    shap = explain(model, x, y, "deeplift_shap", internal_batch_size=1000)
    torch.testing.assert_close(explain(model, x, y, "deeplift_shap", internal_batch_size=10),
                               shap, rtol=1e-5, atol=1e-6)


def _library_cam(cls, model, layer, x, y):
    with cls(model=model, target_layers=[layer]) as cam:
        out = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in y])
    return torch.from_numpy(np.asarray(out))[:, None]


@pytest.mark.parametrize("kind,cls", [("gradcam", GradCAM), ("hirescam", HiResCAM)])
def test_cams_after_relu_and_minmax_equal_pytorch_grad_cam(kind, cls):
    """pytorch-grad-cam clips negatives and min-max scales (NOTES.md): compare after the same."""
    torch.manual_seed(3)
    model = conv_flatten_fc()
    x = torch.randn(4, 3, 16, 16)
    y = torch.tensor([0, 3, 1, 2])
    raw, scaled = cam_maps(model, x, y, kind, relu=True, minmax=True)
    model.eval()
    reference = _library_cam(cls, model, model[3], x, y)
    # OpenCV's bilinear resize rounds its interpolation weights (to ~1e-4 of the range).
    torch.testing.assert_close(scaled, reference, rtol=0, atol=1e-3)
    torch.testing.assert_close(upsample(raw, x.shape[-2:], relu=True, minmax=True), scaled)


def test_cam_equals_pytorch_grad_cam_gradcam_on_gap_model():
    torch.manual_seed(4)
    model = GapNet()
    x = torch.randn(3, 3, 12, 12)
    y = torch.tensor([1, 2, 3])
    ours = explain(model, x, y, "cam", relu=True, minmax=True)
    model.eval()
    reference = _library_cam(GradCAM, model, model.features[3], x, y)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-3)


@pytest.mark.parametrize("gamma,epsilon", [(0.25, 0.25), (0.01, 1.0)])
def test_lrp_tutorial_equals_hand_built_zennit_name_map_composite(gamma, epsilon):
    model = tiny("vgg16")
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([1, 2])
    ours = explain(model, x, y, "lrp_tutorial", gamma=gamma, epsilon=epsilon, stabiliser="zennit")
    # z^B bounds as numbers on both sides: the pixel range [0, 1].
    ours_box = explain(model, x, y, "lrp_composite", composite={
        "ranges": [{"first": 0, "last": 0, "rule": "zbox", "params": {"low": 0.0, "high": 1.0}},
                   {"first": 1, "last": 6, "rule": "gamma", "params": {"gamma": gamma}},
                   {"first": 7, "last": 12, "rule": "epsilon", "params": {"epsilon": epsilon}},
                   {"first": 13, "rule": "lrp0"}]})
    reference = zennit_attribution(model, hand_built_tutorial(model, gamma, epsilon), x, y)
    torch.testing.assert_close(ours_box, reference, rtol=1e-5, atol=1e-7)
    # default bounds are each image's own range, not [0, 1]: a different map
    assert not torch.allclose(ours, reference, rtol=1e-3, atol=0)


def test_zennit_named_composites_equal_zennit_classes():
    model = to_conv_flatten_fc(tiny("vgg16"))
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([0, 1])
    ours = explain(model, x, y, "lrp_epsilon_plus_flat", epsilon=0.1)
    reference = zennit_attribution(model, EpsilonPlusFlat(epsilon=0.1), x, y)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-7)
    ours = explain(model, x, y, "lrp_epsilon_gamma_box", low=0.0, high=1.0)
    reference = zennit_attribution(model, EpsilonGammaBox(low=0.0, high=1.0), x, y)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind,cls", [("gradcam", GradCAM), ("hirescam", HiResCAM)])
def test_a_spatially_constant_cam_stays_constant_after_minmax(kind, cls):
    """ResNet-18 at 32 px: a 1×1 feature map, so every CAM is constant over the image. Min–max
    used to stretch the resize's rounding noise to [0, 0.23]; pytorch-grad-cam gives zeros."""
    torch.manual_seed(0)
    model = tiny("resnet18")
    x = torch.rand(3, 3, 32, 32)
    y = torch.tensor([2, 0, 1])
    raw, scaled = cam_maps(model, x, y, kind, relu=True, minmax=True)
    assert raw.shape[-2:] == (1, 1)
    reference = _library_cam(cls, model.eval(), model.layer4[-1].conv2, x, y)
    assert torch.equal(scaled, torch.zeros_like(scaled))
    torch.testing.assert_close(scaled, reference, rtol=0, atol=0)


def test_minmax_still_scales_a_map_with_a_real_spread():
    raw = torch.tensor([[[[1.0, 1.0], [1.0, 1.0 + 1e-3]]]])
    scaled = upsample(raw, (2, 2), minmax=True)
    assert scaled.amax() == pytest.approx(1.0, abs=1e-4) and scaled.amin() == 0
