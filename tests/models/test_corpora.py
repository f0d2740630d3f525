"""Pre-training corpora and starting points."""

import numpy as np
import pytest
import torch
import torchvision

from salbench.models import TrainConfig, build, natural_image_corpus, pretrained_model
from salbench.models.corpora import NATURAL_CLASSES
from salbench.models.zoo import imagenet_weights_path


def test_natural_corpus_is_balanced_deterministic_and_masked():
    a = natural_image_corpus(60, seed=3, size=32)
    b = natural_image_corpus(60, seed=3, size=32)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert a.x.shape == (60, 3, 32, 32) and a.x.min() >= 0 and a.x.max() <= 1
    assert torch.bincount(a.y).tolist() == [10] * len(NATURAL_CLASSES)
    area = a.masks.flatten(1).mean(1)
    assert (area > 0.01).all() and (area < 0.5).all()
    # Inside a mask the object's flat colour dominates: less spatial variation than outside.
    inside = [a.x[i][:, a.masks[i] > 0].std(dim=1).mean() for i in range(60)]
    outside = [a.x[i][:, a.masks[i] == 0].std(dim=1).mean() for i in range(60)]
    assert np.mean(inside) < np.mean(outside)
    assert not torch.equal(natural_image_corpus(60, seed=4, size=32).x, a.x)


def test_null_model_is_the_seeded_random_initialisation():
    model, info = pretrained_model("vgg16", "none", 2, input_size=32, width=0.125, seed=5)
    torch.manual_seed(5)
    reference = build("vgg16", 2, 1, 32, 0.125)
    assert info["source"] == "random"
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.equal(p, q)


def test_out_of_domain_uses_cached_imagenet_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.resnet18()
    path = imagenet_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model, info = pretrained_model("resnet18", "out-of-domain", 2, in_channels=1, input_size=64)
    assert info["source"] == "imagenet"
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert model.fc.out_features == 2


@pytest.mark.parametrize("corpus", ["out-of-domain", "within-domain"])
def test_pretraining_on_generated_corpora(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no ImageNet file: generated corpus
    cfg = TrainConfig(optimizer="adam", lr=3e-3, scheduler="none", epochs=1, batch_size=16)
    model, info = pretrained_model("resnet18", corpus, 3, in_channels=1, input_size=32,
                                   width=0.125, n=128, config=cfg)
    assert info["source"] == corpus and "accuracy" in info["pretrain_scores"]
    assert model.fc.out_features == 3 and model.salbench_spec.num_classes == 3
    assert model.salbench_spec.weights == f"pretrained:{corpus}"
    assert model.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="corpus"):
        pretrained_model("resnet18", "imagenet21k", 2)
