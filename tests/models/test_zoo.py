"""The zoo: shapes, torchvision parity, grey inputs, small inputs and pre-trained weights."""

import pytest
import torch
import torchvision
from torch import nn

from salbench.models import ARCHITECTURES, build, spec_of
from salbench.models.zoo import GreyToRGB, imagenet_weights_path


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize(("size", "width", "classes"), [(32, 0.125, 2), (64, 0.25, 10)])
def test_output_shape_and_class_count(arch, size, width, classes):
    torch.manual_seed(0)
    model = build(arch, classes, in_channels=1, input_size=size, width=width).eval()
    out = model(torch.rand(3, 1, size, size))
    assert out.shape == (3, classes)
    assert torch.isfinite(out).all()
    assert spec_of(model).arch == arch and spec_of(model).input_size == size


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_width_one_is_torchvision_architecture(arch):
    with torch.device("meta"):
        ours = build(arch, 1000).state_dict()
        ref = getattr(torchvision.models, arch)().state_dict()
    assert list(ours) == list(ref)
    assert all(ours[k].shape == ref[k].shape for k in ref)


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_width_scales_channels_keeps_depth(arch):
    with torch.device("meta"):
        full = build(arch, 2)
        thin = build(arch, 2, width=0.25)
    convs_full = [m for m in full.modules() if isinstance(m, nn.Conv2d)]
    convs_thin = [m for m in thin.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs_full) == len(convs_thin)
    assert [c.out_channels // 4 for c in convs_full] == [c.out_channels for c in convs_thin]


@pytest.mark.parametrize(("arch", "plain"), [("vgg16_bn", "vgg16"), ("vgg19_bn", "vgg19")])
def test_batch_norm_variant_is_conv_bn_relu_per_conv(arch, plain):
    with torch.device("meta"):
        bn = build(arch, 2, width=0.25)
        ref = build(plain, 2, width=0.25)
    layers = list(bn.features)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    assert [layers[i].out_channels for i in convs] == [
        m.out_channels for m in ref.features if isinstance(m, nn.Conv2d)]
    for i in convs:
        assert isinstance(layers[i + 1], nn.BatchNorm2d) and isinstance(layers[i + 2], nn.ReLU)
        assert layers[i + 1].num_features == layers[i].out_channels
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == len(convs)
    assert [m.weight.shape for m in bn.classifier if isinstance(m, nn.Linear)] == [
        m.weight.shape for m in ref.classifier if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn", "resnet34", "alexnet"])
def test_grey_input_is_repeated_to_three_channels(arch):
    torch.manual_seed(1)
    grey = build(arch, 3, in_channels=1, input_size=64, width=0.125).eval()
    rgb = build(arch, 3, in_channels=3, input_size=64, width=0.125).eval()
    rgb.load_state_dict(grey.state_dict())
    x = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(grey(x), rgb(x.repeat(1, 3, 1, 1)), rtol=0, atol=0)
    assert isinstance(grey.grey_to_rgb, GreyToRGB)


def test_other_channel_counts_get_a_new_first_conv():
    model = build("resnet18", 2, in_channels=4, input_size=32, width=0.125)
    assert model.conv1.in_channels == 4
    assert model.eval()(torch.rand(1, 4, 32, 32)).shape == (1, 2)
    vgg = build("vgg19_bn", 2, in_channels=4, input_size=32, width=0.125)
    assert vgg.features[0].in_channels == 4 and isinstance(vgg.features[1], nn.BatchNorm2d)
    assert vgg.eval()(torch.rand(1, 4, 32, 32)).shape == (1, 2)
    with pytest.raises(ValueError, match="in_channels"):
        build("resnet18", 2, in_channels=4, weights="imagenet")


def test_small_inputs_replace_collapsing_pools_by_identity():
    vgg = build("vgg16", 2, input_size=16, width=0.125)
    assert isinstance(vgg.features[30], nn.Identity) and isinstance(vgg.features[23], nn.MaxPool2d)
    assert vgg(torch.rand(1, 3, 16, 16)).shape == (1, 2)
    alex = build("alexnet", 2, input_size=32, width=0.125)
    assert isinstance(alex.features[12], nn.Identity)
    assert alex(torch.rand(1, 3, 32, 32)).shape == (1, 2)
    big = build("vgg16", 2, input_size=224, width=0.125)
    assert sum(isinstance(m, nn.MaxPool2d) for m in big.features) == 5
    vgg_bn = build("vgg16_bn", 2, input_size=16, width=0.125)
    assert isinstance(vgg_bn.features[43], nn.Identity)
    assert isinstance(vgg_bn.features[33], nn.MaxPool2d)
    assert vgg_bn.eval()(torch.rand(1, 3, 16, 16)).shape == (1, 2)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"arch": "vgg11"}, "arch"), ({"num_classes": 0}, "num_classes"),
    ({"width": 0}, "width"), ({"input_size": 0}, "input_size"),
    ({"weights": "imagenet", "width": 0.5}, "width=1.0"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    args = {"arch": "resnet18", "num_classes": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        build(**args)


def test_imagenet_weights_missing_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        build("resnet18", 2, weights="imagenet")
    # torchvision's VGG16_BN_Weights / VGG19_BN_Weights.IMAGENET1K_V1 files
    assert imagenet_weights_path("vgg16_bn").name == "vgg16_bn-6c64b313.pth"
    with pytest.raises(FileNotFoundError, match="vgg19_bn-c79401a0.pth"):
        build("vgg19_bn", 2, weights="imagenet")


def test_imagenet_weights_from_cache_keep_features_and_reinit_head(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    path = imagenet_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = build("resnet18", 2, in_channels=1, weights="imagenet")
    ref = reference.state_dict()
    for name, value in model.state_dict().items():
        if name.startswith("fc."):
            assert value.shape[0] == 2
        else:
            torch.testing.assert_close(value, ref[name], rtol=0, atol=0)
    # Same weights from an explicit file path, 1000 classes: the whole state dict fits.
    full = build("resnet18", 1000, weights=path).eval()
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(full(x), reference.eval()(x))
