"""Blocks and freezing by fine-tuning degree leave exactly the intended parameters trainable."""

import pytest
import torch
from torch import nn

from salbench.models import (
    DEGREES,
    blocks,
    build,
    freeze_for_degree,
    set_trainable,
    to_conv_flatten_fc,
    trainable_parameter_names,
)
from salbench.models.surgery import add_conv_layers

# VGG-16 features: blocks start at 0, 5, 10, 17, 24 (document 000, appendix D; NOTES.md).
VGG16_STARTS = {"1conv": 24, "2conv": 17, "3conv": 10, "4conv": 5, "all": 0}
# VGG-16-BN (conv, BN, ReLU per conv): 0, 7, 14, 24, 34.
VGG16_BN_STARTS = {"1conv": 34, "2conv": 24, "3conv": 14, "4conv": 7, "all": 0}


def _index(name):
    return int(name.split(".")[1])


@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("slicing", ["block", "public-code"])
@pytest.mark.parametrize(("arch", "starts"), [("vgg16", VGG16_STARTS),
                                              ("vgg16_bn", VGG16_BN_STARTS)])
def test_vgg16_degrees_from_the_output_side(degree, slicing, arch, starts):
    model = freeze_for_degree(build(arch, 2, input_size=32, width=0.125), degree,
                              slicing=slicing)
    start = starts[degree] + (1 if slicing == "public-code" and degree != "all" else 0)
    expected = {n for n, _ in model.named_parameters()
                if n.startswith("classifier.")
                or (n.startswith("features.") and _index(n) >= start)}
    assert set(trainable_parameter_names(model)) == expected


def test_public_code_slicing_matches_the_code_indices():
    # The public code trains features[25:], [18:], [11:], [6:]: conv 24/17/10/5 stay frozen.
    model = build("vgg16", 2, input_size=32, width=0.125)
    for degree, first in [("1conv", 26), ("2conv", 19), ("3conv", 12), ("4conv", 7)]:
        names = trainable_parameter_names(freeze_for_degree(model, degree, slicing="public-code"))
        convs = sorted({_index(n) for n in names if n.startswith("features.")})
        assert convs[0] == first


@pytest.mark.parametrize(("arch", "per_block"), [("vgg16_bn", [2, 2, 3, 3, 3]),
                                                 ("vgg19_bn", [2, 2, 4, 4, 4])])
def test_batch_norms_sit_in_the_block_of_their_convolution(arch, per_block):
    model = build(arch, 2, input_size=64, width=0.125)
    modules = dict(model.named_modules())
    named = blocks(model)
    assert list(named) == [f"block{k}" for k in range(1, 6)]
    for k, names in enumerate(named.values()):
        kinds = [type(modules[n]) for n in names]
        assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * per_block[k] + [nn.MaxPool2d]
    assert sum(map(len, named.values())) == len(model.features)


def test_public_code_slicing_on_vgg16_bn_freezes_only_the_first_conv():
    """The code's slices one module past each first conv (features[35:], [25:], [15:], [8:] on
    VGG-16-BN): that conv is frozen, its batch norm trains."""
    model = build("vgg16_bn", 2, input_size=32, width=0.125)
    for degree, conv in [("1conv", 34), ("2conv", 24), ("3conv", 14), ("4conv", 7)]:
        names = set(trainable_parameter_names(freeze_for_degree(model, degree,
                                                                slicing="public-code")))
        assert f"features.{conv}.weight" not in names
        assert {f"features.{conv + 1}.weight", f"features.{conv + 3}.weight"} <= names


@pytest.mark.parametrize("arch", ["alexnet", "vgg16_bn"])
def test_added_conv_layers_join_the_last_block(arch):
    model = add_conv_layers(build(arch, 2, input_size=64, width=0.125), 2)
    last = blocks(model)[f"block{len(blocks(model))}"]
    convs = [n for n in last if isinstance(model.get_submodule(n), nn.Conv2d)]
    assert len(convs) == 3 + 2  # AlexNet's block3 and VGG-16's block5 have three convs
    assert last[-1] == f"features.{len(model.features) - 1}"
    names = trainable_parameter_names(freeze_for_degree(model, "1conv"))
    assert {f"{c}.weight" for c in convs} <= set(names)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_resnet_degrees(arch):
    model = build(arch, 2, input_size=32, width=0.125)
    order = ["layer4", "layer3", "layer2", "layer1"]
    for k, degree in enumerate(DEGREES[:4], start=1):
        names = trainable_parameter_names(freeze_for_degree(model, degree))
        assert {n.split(".")[0] for n in names} == set(order[:k]) | {"fc"}
    names = trainable_parameter_names(freeze_for_degree(model, "all"))
    assert names == [n for n, _ in model.named_parameters()]
    names = trainable_parameter_names(freeze_for_degree(model, 1, direction="input"))
    assert {n.split(".")[0] for n in names} == {"conv1", "bn1", "fc"}


def test_alexnet_blocks_and_too_many():
    model = build("alexnet", 2, input_size=64, width=0.125)
    assert list(blocks(model)) == ["block1", "block2", "block3"]
    names = trainable_parameter_names(freeze_for_degree(model, "1conv"))
    assert {n.rsplit(".", 1)[0] for n in names if n.startswith("features")} == {
        "features.6", "features.8", "features.10"}
    with pytest.raises(ValueError, match="3"):
        freeze_for_degree(model, "4conv")
    with pytest.raises(ValueError, match="degree"):
        freeze_for_degree(model, "five")
    with pytest.raises(ValueError, match="direction"):
        freeze_for_degree(model, "1conv", direction="middle")


def test_vgg19_after_surgery_document_003_layers():
    # Document 003, table 3: VGG19 "features 19 to 34" = the last two blocks after surgery.
    model = to_conv_flatten_fc(build("vgg19", 4, input_size=32, width=0.125))
    names = trainable_parameter_names(freeze_for_degree(model, "2conv"))
    convs = {_index(n) for n in names if n.startswith("features.")}
    assert min(convs) == 19 and max(convs) == 34
    set_trainable(model, ["features.21", "classifier"])
    assert {n.rsplit(".", 1)[0] for n in trainable_parameter_names(model)} == {
        "features.21", "classifier"}
    with pytest.raises(ValueError, match="not in the model"):
        set_trainable(model, ["layer3"])
    # VGG-19-BN after surgery: the last two blocks are features 27 to 49 (the last conv).
    model = to_conv_flatten_fc(build("vgg19_bn", 4, input_size=32, width=0.125))
    names = trainable_parameter_names(freeze_for_degree(model, "2conv"))
    convs = {_index(n) for n in names if n.startswith("features.")}
    assert min(convs) == 27 and max(convs) == 49


def test_frozen_parameters_do_not_change_in_a_step():
    torch.manual_seed(0)
    model = freeze_for_degree(build("resnet18", 2, input_size=32, width=0.125), "1conv")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.rand(4, 3, 32, 32)).sum().backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all(n.startswith(("layer4.", "fc.")) for n in changed)
