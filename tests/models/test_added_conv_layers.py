"""AlexNet with added conv layers (document 001, section 4.1): structure, shapes, checkpoints."""

import pytest
import torch
from torch import nn

from salbench.models import ModelSpec, build, build_spec, load, make_explainable, save, spec_of
from salbench.models.surgery import add_conv_layers


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.features if isinstance(m, nn.Conv2d)]


def test_added_layers_sit_after_the_last_conv_before_the_last_pooling():
    base = build("alexnet", 10, input_size=64, width=0.125)
    model = add_conv_layers(base, 3)
    convs, base_convs = _convs(model), _convs(base)
    assert len(convs) == len(base_convs) + 3
    assert all(c.in_channels == c.out_channels == base_convs[-1].out_channels
               for c in convs[-3:])
    layers = list(model.features)
    first_new = layers.index(convs[-3])
    assert layers[first_new - 2] is convs[-4] and isinstance(layers[first_new - 1], nn.ReLU)
    assert isinstance(layers[-1], (nn.MaxPool2d, nn.Identity))
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
    assert len(_convs(base)) == len(base_convs)  # the input model is unchanged
    assert spec_of(model).added_conv_layers == 3
    assert torch.equal(model.classifier[-1].weight, base.classifier[-1].weight)


def test_vgg_bn_gets_conv_bn_relu_layers_and_rebuilds_from_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    base = build("vgg16_bn", 10, input_size=32, width=0.125)
    model = add_conv_layers(base, 2).eval()
    layers = list(model.features)
    assert [type(m) for m in layers[43:49]] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
    assert [type(m) for m in layers[:43]] == [type(m) for m in list(base.features)[:43]]
    assert isinstance(layers[-1], (nn.MaxPool2d, nn.Identity)) and len(layers) == 50
    with torch.no_grad():
        for bn in (layers[44], layers[47]):
            bn.running_var.uniform_(0.5, 1.5)
    path = save(model, tmp_path / "vgg_bn_plus_2")
    loaded, _ = load(path)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(loaded(x), model(x))


def test_zero_added_layers_is_the_plain_model_and_bad_counts_fail():
    base = build("alexnet", 10, input_size=64, width=0.125)
    same = add_conv_layers(base, 0)
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(same.eval()(x), base.eval()(x))
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="added"):
            add_conv_layers(base, bad)
    with pytest.raises(TypeError, match="features"):
        add_conv_layers(build("resnet18", 10, input_size=64, width=0.125), 1)


def test_spec_rebuilds_the_variant_through_a_checkpoint(tmp_path):
    spec = ModelSpec(arch="alexnet", width=0.125, added_conv_layers=2).for_data(10, 3, 64)
    torch.manual_seed(0)
    model = make_explainable(build_spec(spec)).eval()
    assert len(_convs(model)) == len(_convs(build("alexnet", 10, input_size=64, width=0.125))) + 2
    path = save(model, tmp_path / "variant")
    loaded, _ = load(path)
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(loaded(x), model(x))
    assert spec_of(loaded).added_conv_layers == 2
