"""Methods against theory: the documents' propositions and the methods' defining identities."""

from __future__ import annotations

import torch
from explain_helpers import GapNet, conv_flatten_fc, tiny
from torch import nn

from salbench.explain import cam_maps, explain, relevance_by_layer
from salbench.models import to_conv_flatten_fc, to_gap_fc


def _logits(model, x, y):
    with torch.no_grad():
        model.eval()
        return model(x).gather(1, y[:, None]).flatten()


def test_hirescam_raw_map_sums_to_logit_minus_bias_on_conv_flatten_fc():
    """Document 003, Proposition 4 (eq. 20): s^m = Σ_ij HiResCAM_ij + b^m."""
    torch.manual_seed(0)
    model = conv_flatten_fc()
    x = torch.randn(5, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 3, 1])
    raw, up = cam_maps(model, x, y, "hirescam")
    grad_raw, _ = cam_maps(model, x, y, "gradcam")
    assert raw.shape == (5, 1, 8, 8) and up.shape == (5, 1, 16, 16)
    expected = _logits(model, x, y) - model[-1].bias[y].detach()
    torch.testing.assert_close(raw.sum((1, 2, 3)), expected, rtol=1e-5, atol=1e-5)
    # Grad-CAM does not have this property (the document's point).
    assert not torch.allclose(grad_raw.sum((1, 2, 3)), expected, rtol=1e-2, atol=1e-2)


def test_hirescam_faithful_on_zoo_conv_flatten_fc_vgg():
    model = to_conv_flatten_fc(tiny("vgg16"))
    x = torch.rand(3, 3, 32, 32)
    y = torch.tensor([0, 1, 2])
    raw, _ = cam_maps(model, x, y, "hirescam")
    expected = _logits(model, x, y) - model.classifier.bias[y].detach()
    torch.testing.assert_close(raw.sum((1, 2, 3)), expected, rtol=1e-4, atol=1e-5)


def _assert_positive_multiple(a, b, scale):
    torch.testing.assert_close(a, b * scale, rtol=1e-4, atol=1e-6)


def test_cam_gradcam_hirescam_agree_up_to_positive_scale_on_gap():
    """Document 003, Propositions 2 and 3: Grad-CAM = HiResCAM = CAM / (D1 D2) on GAP models."""
    torch.manual_seed(1)
    model = GapNet()
    x = torch.randn(4, 3, 12, 12)
    y = torch.tensor([3, 0, 1, 2])
    cam, _ = cam_maps(model, x, y, "cam")
    grad, _ = cam_maps(model, x, y, "gradcam", layer="features.3")
    hires, _ = cam_maps(model, x, y, "hirescam", layer="features.3")
    _assert_positive_multiple(grad, cam, 1 / 144)
    _assert_positive_multiple(hires, cam, 1 / 144)
    # Proposition 1: the CAM map reflects the class score.
    expected = _logits(model, x, y) - model.fc.bias[y].detach()
    torch.testing.assert_close(cam.sum((1, 2, 3)) / 144, expected, rtol=1e-5, atol=1e-5)


def test_cam_family_agree_on_zoo_gap_resnet():
    model = to_gap_fc(tiny("resnet18"))
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([1, 2])
    cam, _ = cam_maps(model, x, y, "cam")
    grad, _ = cam_maps(model, x, y, "gradcam", layer="layer4")
    hires, _ = cam_maps(model, x, y, "hirescam", layer="layer4")
    d = cam.shape[-1] * cam.shape[-2]
    _assert_positive_multiple(grad, cam, 1 / d)
    _assert_positive_multiple(hires, cam, 1 / d)


def bias_free_relu_net() -> nn.Sequential:
    torch.manual_seed(2)
    return conv_flatten_fc(bias=False)


def test_lrp0_equals_gradient_times_input_on_bias_free_relu_net():
    """Document 002, section 2.1.2: Gradient × Input = LRP-0 (Shrikumar et al.)."""
    model = bias_free_relu_net()
    x = torch.rand(4, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 3])
    lrp = explain(model, x, y, "lrp_0", stabiliser="vanilla")
    gxi = explain(model, x, y, "input_x_gradient")
    torch.testing.assert_close(lrp, gxi, rtol=1e-5, atol=1e-7)
    # The zennit stabiliser's 1e-6 guard changes it only negligibly.
    guarded = explain(model, x, y, "lrp_0")
    torch.testing.assert_close(guarded, gxi, rtol=0, atol=1e-3 * float(gxi.abs().max()))


def test_lrp_epsilon_conserves_relevance_on_bias_free_net():
    """Document 002, eq. 2.2: Σ_i R_i = f(x) layer by layer (ε small against the activations)."""
    model = bias_free_relu_net()
    x = torch.rand(3, 3, 16, 16) + 0.1
    y = torch.tensor([2, 0, 1])
    sums = relevance_by_layer(model, x, y, "lrp_epsilon", epsilon=1e-6)
    assert list(sums) == ["output", "0", "3", "6", "input"]
    for name, value in sums.items():
        torch.testing.assert_close(value, sums["output"], rtol=1e-4, atol=1e-6, msg=name)
    # A large ε absorbs relevance: the input receives less than the output.
    absorbed = relevance_by_layer(model, x, y, "lrp_epsilon", epsilon=10.0)
    assert bool((absorbed["input"].abs() < absorbed["output"].abs()).all())


def test_lrp_conserves_through_canonized_resnet_residual_sums():
    """With batch-norm shifts and biases zeroed the merged ResNet is bias-free: the canonizers
    (batch-norm merge, residual Sum with the Norm rule) must conserve relevance exactly."""
    model = tiny("resnet18")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.bias.zero_()
                module.running_mean.zero_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
        model.fc.bias.zero_()
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([0, 2])
    sums = relevance_by_layer(model, x, y, "lrp_epsilon", epsilon=1e-9)
    torch.testing.assert_close(sums["input"], sums["output"], rtol=1e-3, atol=1e-6)
    sums_gamma = relevance_by_layer(model, x, y, "lrp_gamma", gamma=0.25)
    torch.testing.assert_close(sums_gamma["input"], sums_gamma["output"], rtol=1e-3, atol=1e-6)


def test_integrated_gradients_completeness_at_256_steps():
    """Σ_i IG_i = f(x) − f(x') (Sundararajan et al.), within 1 % at 256 steps."""
    model = tiny("vgg16")
    x = torch.rand(3, 3, 32, 32)
    y = torch.tensor([0, 1, 2])
    ig = explain(model, x, y, "integrated_gradients", n_steps=256)
    difference = _logits(model, x, y) - _logits(model, torch.zeros_like(x), y)
    error = (ig.sum((1, 2, 3)) - difference).abs()
    assert bool((error <= 0.01 * difference.abs()).all()), (error, difference)


def test_saliency_equals_autograd_gradient_with_per_sample_targets():
    model = tiny("resnet18")
    x = torch.rand(3, 3, 32, 32)
    y = torch.tensor([2, 0, 1])
    ours = explain(model, x, y, "saliency")
    model.eval()
    inputs = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(inputs).gather(1, y[:, None]).sum(), inputs)
    torch.testing.assert_close(ours, grad)
    torch.testing.assert_close(explain(model, x, y, "saliency", abs=True), grad.abs())


def test_input_x_gradient_is_input_times_saliency():
    model = tiny("alexnet")
    x = torch.rand(2, 3, 64, 64)
    y = torch.tensor([1, 0])
    torch.testing.assert_close(explain(model, x, y, "input_x_gradient"),
                               x * explain(model, x, y, "saliency"))


def test_hirescam_faithful_on_zoo_conv_flatten_fc_resnet_block_output():
    """On ResNets the flattened tensor is the last block's output: pass layer="layer4"."""
    model = to_conv_flatten_fc(tiny("resnet18"))
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([2, 0])
    raw, _ = cam_maps(model, x, y, "hirescam", layer="layer4")
    expected = _logits(model, x, y) - model.fc.bias[y].detach()
    torch.testing.assert_close(raw.sum((1, 2, 3)), expected, rtol=1e-4, atol=1e-5)


def test_lrp_conserves_through_merged_batch_norm_vgg_style():
    """VGG-BN canonization (Zennit SequentialMergeBatchNorm): with zero shifts the merged net is
    bias-free and LRP-ε (ε -> 0) conserves; the batch norms are restored afterwards."""
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(),
        nn.Linear(5 * 8 * 8, 3, bias=False))
    with torch.no_grad():
        for bn in (model[1], model[5]):
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 16, 16)
    y = torch.tensor([1, 2])
    sums = relevance_by_layer(model, x, y, "lrp_epsilon", epsilon=1e-9)
    for name, value in sums.items():
        torch.testing.assert_close(value, sums["output"], rtol=1e-4, atol=1e-6, msg=name)
    assert model[0].bias is None
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
