"""Every method leaves every zoo architecture exactly as it found it; clear errors otherwise."""

from __future__ import annotations

import pytest
import torch
from explain_helpers import conv_flatten_fc, input_size, tiny
from torch import nn

from salbench.explain import CompositeSpec, GADSupport, available, explain, tutorial_ranges
from salbench.explain.checks import NonFiniteAttributionError, all_finite
from salbench.models import ARCHITECTURES, make_explainable, to_conv_flatten_fc

HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
LIGHT = {"integrated_gradients": {"n_steps": 4}, "smoothgrad": {"nt_samples": 2},
         "gradient_shap": {"n_samples": 2}, "deeplift_shap": {"n_baselines": 2},
         "occlusion": {"window": 16, "stride": 16},
         # uniform noise: SLIC needs a high compactness to cut it into more than one superpixel
         **{name: {"n_segments": 8, "compactness": 100.0, **passes} for name, passes in
            (("feature_ablation", {}), ("shapley_sampling", {"passes": 20}),
             ("kernel_shap", {"passes": 20}), ("lime", {"passes": 20}))},
         "lrp_composite": {"composite": CompositeSpec(ranges=tutorial_ranges(),
                                                      stabiliser="tutorial")}}


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        # the same tensors, not equal copies (Zennit issue 237: stale parameters after a merge)
        "storage": [(k, id(v), v.data_ptr()) for k, v in model.state_dict(keep_vars=True).items()],
        "params": [(name, id(p), p.requires_grad, None if p.grad is None else p.grad.clone())
                   for name, p in model.named_parameters()],
        "training": [(name, m.training) for name, m in model.named_modules()],
        "hooks": [(name, t, len(getattr(m, t))) for name, m in model.named_modules()
                  for t in HOOK_TABLES],
        "modules": [(name, id(m), type(m)) for name, m in model.named_modules()],
        "forward": [(name, "forward" in vars(m)) for name, m in model.named_modules()],
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    for (n1, i1, r1, g1), (n2, i2, r2, g2) in zip(before["params"], after["params"]):
        assert (n1, i1, r1) == (n2, i2, r2)
        assert (g1 is None and g2 is None) or torch.equal(g1, g2), n1
    for key in ("storage", "training", "hooks", "modules", "forward"):
        assert before[key] == after[key], key


def _methods():
    return [m.name for m in available() if m.name != "gad"]


@pytest.mark.parametrize("arch_name", ARCHITECTURES)
def test_every_method_leaves_every_architecture_unchanged(arch_name):
    model = tiny(arch_name)
    # A state that must survive: train mode, one frozen parameter, one existing gradient.
    model.train()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    params[-1].grad = torch.ones_like(params[-1])
    size = input_size(arch_name)
    x = torch.rand(2, 3, size, size)
    y = torch.tensor([0, 2])
    before = snapshot(model)
    support = GADSupport((0, 2), (0.0,), [model])
    for name in _methods() + ["gad"]:
        params_ = dict(LIGHT.get(name, {}))
        if name == "cam" and not arch_name.startswith("resnet"):
            with pytest.raises(ValueError, match="CAM architecture"):
                explain(model, x, y, name)
        elif name == "gad":
            explain(model, x, y, name, support=support, base="saliency")
        else:
            out = explain(model, x, y, name, **params_)
            assert out.shape[0] == 2 and out.shape[-2:] == (size, size), name
        assert_same(before, snapshot(model))


def test_conv_flatten_fc_models_unchanged_by_cams_and_lrp():
    model = to_conv_flatten_fc(tiny("resnet34"))
    x = torch.rand(2, 3, 32, 32)
    before = snapshot(model)
    for name in ("gradcam", "hirescam", "lrp_tutorial", "lrp_decreasing_gamma", "guided_gradcam"):
        explain(model, x, 1, name)
        assert_same(before, snapshot(model))


@pytest.mark.parametrize("method", ["guided_backprop", "deconvolution", "deeplift",
                                    "deeplift_shap", "guided_gradcam", "lrp_tutorial", "lrp_0"])
def test_raw_resnet_with_shared_inplace_relu_is_explained_and_left_unchanged(method):
    """Issue 13: the method runs on an explainable copy; the raw model is not touched."""
    model = tiny("resnet18", explainable=False)
    before = snapshot(model)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(explain(model, x, 0, method),
                               explain(make_explainable(model), x, 0, method))
    assert_same(before, snapshot(model))


def test_inplace_relu_vgg_is_explained_by_guided_backprop_on_a_copy():
    model = tiny("vgg16", explainable=False)  # in-place ReLUs, no module reused
    x = torch.rand(1, 3, 32, 32)
    before = snapshot(model)
    torch.testing.assert_close(explain(model, x, 0, "guided_backprop"),
                               explain(make_explainable(model), x, 0, "guided_backprop"))
    assert_same(before, snapshot(model))


def test_cam_without_convolution_is_a_clear_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    x = torch.rand(2, 3, 4, 4)
    for method in ("gradcam", "hirescam", "cam"):
        with pytest.raises(ValueError, match="(convolutional|CAM architecture)"):
            explain(model, x, 0, method)


def test_non_finite_attributions_are_reported():
    """Vanilla LRP-0 divides by z = 0 on an all-zero image of a bias-free net (document 002,
    section 2.1.5): NaN is reported, not returned; the zennit stabiliser avoids it."""
    model = conv_flatten_fc(bias=False)
    x = torch.zeros(2, 3, 16, 16)
    with pytest.raises(NonFiniteAttributionError, match="stabiliser"):
        explain(model, x, 0, "lrp_0", stabiliser="vanilla")
    assert torch.isfinite(explain(model, x, 0, "lrp_0", stabiliser="zennit")).all()


def test_all_finite_is_the_entrywise_test_also_where_the_sum_overflows():
    """The one-reduction test against ``torch.isfinite(t).all()``: NaN, +inf, -inf, +inf with
    -inf (their sum is NaN), finite values whose sum overflows (float32 and float16), empty."""
    big32, big16 = torch.finfo(torch.float32).max, torch.finfo(torch.float16).max
    cases = [torch.rand(3, 4), torch.tensor([1.0, float("nan")]), torch.tensor([float("inf")]),
             torch.tensor([-float("inf"), 2.0]), torch.tensor([float("inf"), -float("inf")]),
             torch.full((4,), big32), torch.full((3,), big16, dtype=torch.float16),
             torch.tensor([big32, big32, float("nan")]), torch.empty(0)]
    for t in cases:
        assert all_finite(t) == bool(torch.isfinite(t).all()), t
    assert all_finite(torch.full((4,), big32)) and not all_finite(cases[4])
    x = torch.rand(3, 1, 4, 4)
    x[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"samples \[1\]"):
        explain(conv_flatten_fc(), x.expand(-1, 3, -1, -1).contiguous(), 0, "saliency")


def test_bad_inputs_are_rejected_before_work():
    model = conv_flatten_fc()
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="method must be one of"):
        explain(model, x, 0, "no_such_method")
    with pytest.raises(TypeError, match="unknown parameters"):
        explain(model, x, 0, "saliency", n_steps=3)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        explain(model, x[0], 0, "saliency")
    with pytest.raises(ValueError, match="shape \\[B\\]"):
        explain(model, x, torch.tensor([0, 1, 2]), "saliency")
    with pytest.raises(TypeError, match="integer"):
        explain(model, x, torch.tensor([0.0, 1.0]), "saliency")
    with pytest.raises(ValueError, match="4 outputs"):
        explain(model, x, 7, "saliency")
    with pytest.raises(TypeError, match="nn.Module"):
        explain("model", x, 0, "saliency")
    with pytest.raises(ValueError, match="n_steps"):
        explain(model, x, 0, "integrated_gradients", n_steps=0)
    with pytest.raises(ValueError, match="stabiliser"):
        explain(model, x, 0, "lrp_tutorial", stabiliser="nope")


def test_methods_work_inside_no_grad_and_inference_mode():
    model = conv_flatten_fc()
    x = torch.rand(2, 3, 16, 16)
    expected = explain(model, x, 1, "saliency")
    with torch.no_grad():
        torch.testing.assert_close(explain(model, x, 1, "saliency"), expected)
    with torch.inference_mode():
        inference_x = x.clone()
        torch.testing.assert_close(explain(model, inference_x, 1, "saliency"), expected)
        torch.testing.assert_close(explain(model, inference_x, 1, "lrp_0"),
                                   explain(model, x, 1, "lrp_0"))
