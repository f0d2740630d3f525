"""``cam_layers``: the layer choices of document 003's table 1 in zoo VGGs and ResNets."""

from __future__ import annotations

import pytest
from torch import nn

from salbench.explain import cam_layers
from salbench.models import build, make_explainable, to_conv_flatten_fc, to_gap_fc


def _layers(arch: str, surgery=None) -> dict[str, str]:
    model = build(arch, num_classes=2, input_size=64, width=0.0625)
    return cam_layers(make_explainable(surgery(model) if surgery else model))


def test_vgg_last_is_the_last_conv_and_earlier_the_previous_block():
    assert _layers("vgg19", to_conv_flatten_fc) == {"last": "features.34",
                                                    "earlier": "features.25"}
    assert _layers("vgg19", to_gap_fc) == {"last": "features.34", "earlier": "features.25"}
    # torchvision's head: the features still end in ReLU + pooling after the last conv
    assert _layers("vgg19") == {"last": "features.34", "earlier": "features.25"}


def test_resnet_last_is_the_block_output():
    assert _layers("resnet34", to_gap_fc) == {"last": "layer4", "last_conv2d": "layer4.2.conv2",
                                              "earlier": "layer3"}
    assert _layers("resnet50", to_conv_flatten_fc)["last_conv2d"] == "layer4.2.conv3"


def test_other_models_are_refused():
    with pytest.raises(ValueError, match="VGG or ResNet"):
        cam_layers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()))
