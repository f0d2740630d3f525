"""Surgery: make_explainable changes no output; CAM heads keep the convolutional features
exactly."""

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from salbench.models import ARCHITECTURES, build, make_explainable, to_conv_flatten_fc, to_gap_fc
from salbench.models.surgery import reused_modules


def _model(arch, **kw):
    torch.manual_seed(0)
    model = build(arch, 3, in_channels=1, input_size=64, width=0.125, **kw)
    # Non-trivial batch-norm statistics so a dropped or reordered BN would show.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_make_explainable_changes_no_output_and_unshares(arch):
    model = _model(arch)
    x = torch.rand(4, 1, 64, 64)
    explainable = make_explainable(model)
    torch.testing.assert_close(explainable(x), model(x), rtol=0, atol=0)
    assert reused_modules(explainable, x) == []
    assert not any(getattr(m, "inplace", False) for m in explainable.modules())
    assert explainable.salbench_spec.explainable
    # The original is untouched.
    if arch.startswith("resnet"):
        assert reused_modules(model, x)
        assert isinstance(explainable.layer1[0], (BasicBlock, Bottleneck))
    assert any(getattr(m, "inplace", False) for m in model.modules())


def test_make_explainable_gradients_match():
    model = _model("resnet50")
    explainable = make_explainable(model)
    x = torch.rand(2, 1, 64, 64, requires_grad=True)
    (g1,) = torch.autograd.grad(model(x)[:, 1].sum(), x)
    (g2,) = torch.autograd.grad(explainable(x)[:, 1].sum(), x)
    torch.testing.assert_close(g1, g2)


def test_make_explainable_copies_activation_registered_twice():
    relu = nn.ReLU(inplace=True)
    model = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    new = make_explainable(model)
    assert new[1] is not new[3] and not new[1].inplace
    x = torch.randn(5, 3)
    torch.testing.assert_close(new(x), model(x.clone()))
    with pytest.raises(TypeError, match="nn.Module"):
        make_explainable("vgg16")


def _last_block_reference(block, x):
    """The trimmed last ResNet block written literally from document 003, section 4.2."""
    identity = x if block.downsample is None else block.downsample(x)
    if isinstance(block, Bottleneck):  # remove bn3 and the final ReLU
        out = block.relu(block.bn1(block.conv1(x)))
        out = block.relu(block.bn2(block.conv2(out)))
        return block.conv3(out) + identity
    out = block.relu(block.bn1(block.conv1(x)))  # BasicBlock: remove bn2, keep the ReLU
    return torch.relu(block.conv2(out) + identity)


def _features(model, x):
    x = model.grey_to_rgb(x)
    if hasattr(model, "features"):
        return model.features(x)
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def _reference_features(model, x):
    x = model.grey_to_rgb(x)
    if hasattr(model, "features"):
        # VGG/AlexNet: drop the last ReLU and MaxPool; VGG-BN also the last BatchNorm before them
        kept = model.features[:-3 if model.salbench_spec.arch.endswith("_bn") else -2]
        assert isinstance(kept[-1], nn.Conv2d)  # the part ends in a Conv2d (document 003, 4.2)
        return kept(x)
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    x = model.layer3(model.layer2(model.layer1(x)))
    x = model.layer4[:-1](x)
    return _last_block_reference(model.layer4[-1], x)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_conv_flatten_fc_is_trimmed_features_then_one_linear(arch):
    model = _model(arch)
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        cff = to_conv_flatten_fc(model).eval()
        feats = _features(cff, x)
        torch.testing.assert_close(feats, _reference_features(model, x), rtol=0, atol=0)
        fc = cff.fc if arch.startswith("resnet") else cff.classifier
        assert isinstance(fc, nn.Linear) and fc.in_features == feats[0].numel()
        # Class score = sum_{c,h,w} A[c,h,w] W[k,c,h,w] + b_k (document 003, proposition 4 form).
        w = fc.weight.reshape(3, *feats.shape[1:])
        scores = torch.einsum("bchw,kchw->bk", feats, w) + fc.bias
        torch.testing.assert_close(cff(x), scores, rtol=1e-5, atol=1e-5)
    assert cff.salbench_spec.head == "conv_flatten_fc"
    assert model.salbench_spec.head == "classifier"  # the input model is not changed


@pytest.mark.parametrize("arch", ["vgg19", "vgg19_bn", "resnet34", "resnet50"])
def test_gap_fc_is_trimmed_features_then_average_then_linear(arch):
    model = _model(arch)
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        gap = to_gap_fc(model).eval()
        feats = _reference_features(model, x)
        fc = gap.fc if arch.startswith("resnet") else gap.classifier
        assert fc.in_features == feats.shape[1]
        torch.testing.assert_close(gap(x), fc(feats.mean(dim=(2, 3))), rtol=1e-5, atol=1e-5)


def test_surgery_then_explainable_and_back():
    model = _model("resnet50")
    x = torch.rand(2, 1, 64, 64)
    a = make_explainable(to_conv_flatten_fc(model)).eval()
    b = to_conv_flatten_fc(make_explainable(model)).eval()
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    assert reused_modules(a, x) == [] and reused_modules(b, x) == []
    with pytest.raises(ValueError, match="already has"):
        to_gap_fc(a)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_captum_deeplift_is_complete_on_the_explainable_copy(arch):
    """DeepLift's summation-to-delta (Captum's convergence delta ~ 0) needs unshared ReLUs."""
    from captum.attr import DeepLift

    model = make_explainable(_model(arch)).double()
    x = torch.rand(2, 1, 64, 64, dtype=torch.float64)
    baseline = torch.zeros_like(x)
    attributions, delta = DeepLift(model).attribute(x, baseline, target=1,
                                                    return_convergence_delta=True)
    with torch.no_grad():
        expected = model(x)[:, 1] - model(baseline)[:, 1]
    torch.testing.assert_close(attributions.sum(dim=(1, 2, 3)), expected, rtol=1e-6, atol=1e-8)
    assert delta.abs().max() < 1e-6


def test_fold_normalisation_is_exact():
    """The folded VGG on pixel-space x computes what the original computes on (x − mean) / std,
    border pixels included (the padding becomes the mean), with the same conv/linear layers."""
    from salbench.explain.lrp import linear_layers
    from salbench.models.surgery import ConstantPad, fold_normalisation
    from salbench.models.zoo import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    model = build("vgg16", 10, 3, 32, 0.125).eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model((x - mean) / std)
        folded_model = fold_normalisation(model)
        folded = folded_model(x)
    torch.testing.assert_close(folded, expected, atol=1e-5, rtol=1e-5)
    assert isinstance(folded_model.features[0][0], ConstantPad)
    assert len(linear_layers(folded_model)) == 16
    with pytest.raises(ValueError, match="features\\[0\\]"):
        fold_normalisation(folded_model)
