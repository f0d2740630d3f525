"""The metric ``cam_identities``: document 003's table 1 (propositions 1–4, eq. 20) measured on
untrained zoo models, and its error measures against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from salbench.explain import cam_layers
from salbench.metrics import get_metric, score
from salbench.metrics.cam_identities import contribution_error, relative_l1
from salbench.models import build, make_explainable, randomise_biases, to_conv_flatten_fc, to_gap_fc

TOL = 1e-5  # float64 sums of float32 maps: an identity holds
NONZERO = 1e-4  # an identity fails (10 × the study's default tolerance)


def _model(arch: str, head: str, bias_std: float = 0.1) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(arch, num_classes=4, input_size=64, width=0.0625)
    if head == "conv_flatten_fc":
        model = to_conv_flatten_fc(model)
    elif head == "gap_fc":
        model = to_gap_fc(model)
    model = make_explainable(model)
    randomise_biases(model, bias_std, seed=1)
    with torch.no_grad():  # VGG-BN: trained-like statistics, so each BN is a real affine map
        for m in model.modules() if arch.endswith("_bn") else ():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2, generator=torch.Generator().manual_seed(3))
                m.running_var.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
                m.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(5))
    return model.eval()


def _identities(arch: str, head: str, bias_std: float = 0.1) -> dict:
    """``(method, layer choice, output) -> [B]`` for the predicted classes of three images."""
    model = _model(arch, head, bias_std)
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    out = {}
    for choice, layer in cam_layers(model).items():
        kinds = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}
        if head == "gap_fc" and choice == "last":
            kinds["cam"] = "CAM"
        for kind, label in kinds.items():
            result = score("cam_identities", model=model, x=x, y=y, kind=kind, layer=layer)
            for output, values in result.values.items():
                out[label, choice, output] = values
    return out


@pytest.mark.parametrize("arch", ["vgg19", "vgg19_bn", "resnet34", "resnet50"])
def test_flatten_head_only_hirescam_sums_to_the_class_score(arch):
    """Proposition 4 / eq. 20: on Conv–Flatten–FC at the last layer Σ HiResCAM = s − b; Grad-CAM
    neither sums to it nor equals HiResCAM."""
    e = _identities(arch, "conv_flatten_fc")
    assert e["HiResCAM", "last", "contribution_error"].max() < TOL
    assert e["HiResCAM", "last", "distance_to_hirescam"].max() == 0
    assert e["Grad-CAM", "last", "contribution_error"].min() > NONZERO
    assert e["Grad-CAM", "last", "distance_to_hirescam"].min() > NONZERO
    assert e["HiResCAM", "earlier", "contribution_error"].min() > NONZERO


@pytest.mark.parametrize("arch", ["vgg19", "vgg19_bn", "resnet34", "resnet50"])
def test_gap_head_gradcam_equals_hirescam_equals_cam(arch):
    """Propositions 1–3: on Conv–GAP–FC at the last layer Grad-CAM = HiResCAM = CAM/(D1 D2) and
    all sum to s − b; one block earlier they differ and none does."""
    e = _identities(arch, "gap_fc")
    for key in [("Grad-CAM", "last", "distance_to_hirescam"),
                ("Grad-CAM", "last", "contribution_error"),
                ("HiResCAM", "last", "contribution_error"),
                ("CAM", "last", "distance_to_hirescam"), ("CAM", "last", "contribution_error")]:
        assert e[key].max() < TOL, key
    assert e["Grad-CAM", "earlier", "distance_to_hirescam"].min() > NONZERO
    assert e["HiResCAM", "earlier", "contribution_error"].min() > NONZERO


def test_resnet_last_conv2d_is_not_the_faithful_layer():
    """Inside a ResNet's last block the residual sum (and ResNet-34's ReLU) follows the last
    Conv2d, so no map there sums to s − b: 'last conv layer' must mean the block output."""
    for arch in ("resnet34", "resnet50"):
        for head in ("conv_flatten_fc", "gap_fc"):
            e = _identities(arch, head)
            assert e["HiResCAM", "last_conv2d", "contribution_error"].min() > NONZERO, (arch, head)
    # ResNet-50 GAP: no ReLU after conv3 + identity, so the gradient is still spatially constant
    # and Grad-CAM equals HiResCAM there although neither contributes.
    e = _identities("resnet50", "gap_fc")
    assert e["Grad-CAM", "last_conv2d", "distance_to_hirescam"].max() < TOL


def test_dense_head_none_contributes_unless_bias_free():
    """Table 1's Dense row; with zero biases a ReLU network is positively homogeneous and
    gradient ⊙ activation sums to the logit at any layer (Euler), which is why the Dense row
    models get random biases."""
    e = _identities("vgg19", "classifier", bias_std=0.1)
    for method in ("Grad-CAM", "HiResCAM"):
        assert e[method, "last", "contribution_error"].min() > NONZERO
    e = _identities("vgg19", "classifier", bias_std=0.0)
    assert e["HiResCAM", "last", "contribution_error"].max() < TOL
    assert e["HiResCAM", "earlier", "contribution_error"].max() < TOL


def test_feature_size_and_registry_entry():
    e = _identities("resnet34", "gap_fc")
    assert e["HiResCAM", "last", "feature_height"].tolist() == [2.0] * 3
    assert e["HiResCAM", "earlier", "feature_width"].tolist() == [4.0] * 3
    metric = get_metric("cam_identities")
    assert metric.kind == "classifier" and metric.params == {"kind": "gradcam", "layer": None}
    assert {o.direction for o in metric.outputs} == {"none"}  # they test theorems, rank nothing
    with pytest.raises(ValueError, match="kind"):
        score("cam_identities", model=_model("resnet34", "gap_fc"), x=torch.rand(1, 3, 64, 64),
              y=torch.tensor([0]), kind="gradcam++")


def test_error_measures_against_hand_computed_cases():
    raw = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]])
    assert contribution_error(raw, torch.tensor([2.5])).item() == 0.0
    # |2.5 - 0.5| / (6.5 + 0.5)
    assert math.isclose(contribution_error(raw, torch.tensor([0.5])).item(), 2 / 7, rel_tol=1e-6)
    other = raw.clone()
    other[0, 0, 0, 0] = 2.0
    assert math.isclose(relative_l1(raw, other).item(), 1 / 14, rel_tol=1e-6)
    assert relative_l1(raw, raw).item() == 0.0
