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


def test_vgg_bn_last_is_the_last_conv_before_its_batch_norm():
    """VGG-19-BN: the surgery removes the last BatchNorm, ReLU and MaxPool, so the last Conv2d
    (features.49) is what the head reads; earlier is block 4's last Conv2d."""
    expected = {"last": "features.49", "earlier": "features.36"}
    assert _layers("vgg19_bn", to_conv_flatten_fc) == expected
    assert _layers("vgg19_bn", to_gap_fc) == expected
    assert _layers("vgg19_bn") == expected
    assert _layers("vgg16_bn") == {"last": "features.40", "earlier": "features.30"}


def test_resnet_last_is_the_block_output():
    assert _layers("resnet34", to_gap_fc) == {"last": "layer4", "last_conv2d": "layer4.2.conv2",
                                              "earlier": "layer3"}
    assert _layers("resnet50", to_conv_flatten_fc)["last_conv2d"] == "layer4.2.conv3"


def test_other_models_are_refused():
    with pytest.raises(ValueError, match="VGG or ResNet"):
        cam_layers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()))
