"""Blocks and freezing by fine-tuning degree leave exactly the intended parameters trainable."""

import pytest
import torch

from salbench.models import (
    DEGREES,
    blocks,
    build,
    freeze_for_degree,
    set_trainable,
    to_conv_flatten_fc,
    trainable_parameter_names,
)

# VGG-16 features: blocks start at 0, 5, 10, 17, 24 (document 000, appendix D; NOTES.md).
VGG16_STARTS = {"1conv": 24, "2conv": 17, "3conv": 10, "4conv": 5, "all": 0}


def _index(name):
    return int(name.split(".")[1])


@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("slicing", ["block", "public-code"])
def test_vgg16_degrees_from_the_output_side(degree, slicing):
    model = freeze_for_degree(build("vgg16", 2, input_size=32, width=0.125), degree,
                              slicing=slicing)
    start = VGG16_STARTS[degree] + (1 if slicing == "public-code" and degree != "all" else 0)
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


def test_frozen_parameters_do_not_change_in_a_step():
    torch.manual_seed(0)
    model = freeze_for_degree(build("resnet18", 2, input_size=32, width=0.125), "1conv")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.rand(4, 3, 32, 32)).sum().backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all(n.startswith(("layer4.", "fc.")) for n in changed)
