"""Random logit (Sixt et al. 2020): Quantus 0.6 RandomLogit on identical maps (its off-class
draws, its Spearman; its SSIM is one-dimensional, mapped through a 2-D wrapper), hand cases and
errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from conftest import gradient_explain, tiny_cnn
from salbench.metrics import get_metric, random_logit, score
from salbench.metrics.sanity import random_other_classes, ssim


def data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 3, 16, 16, generator=g), torch.tensor([0, 1, 2, 1, 0, 2])


def quantus_explain(model, inputs, targets, **kwargs):
    x, t = torch.as_tensor(inputs), torch.as_tensor(targets)
    return gradient_explain(model, x, t).sum(1, keepdim=True).numpy()


def test_equals_quantus_random_logit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus
        from skimage.metrics import structural_similarity
    model = tiny_cnn()
    x, y = data()

    def ssim_2d(a, b, batched=False, **kwargs):  # Quantus's ssim, on the maps as images
        out = []
        for u, v in zip(a, b, strict=True):
            u, v = u.reshape(16, 16), v.reshape(16, 16)
            both = np.concatenate([u, v])
            out.append(structural_similarity(u, v, data_range=float(both.max() - both.min())))
        return out

    ours = random_logit(model, x, y, gradient_explain, similarities=["spearman", "ssim"])
    for name, func, normalise in (
            ("spearman", quantus.similarity_func.correlation_spearman, True),  # rank: scale-free
            ("ssim", ssim_2d, False)):
        metric = quantus.RandomLogit(num_classes=3, similarity_func=func, normalise=normalise,
                                     disable_warnings=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None,
                              explain_func=quantus_explain, device="cpu")
        diff = np.abs(np.asarray(expected) - ours.scores[name].double().numpy()).max()
        assert diff < 1e-5, (name, diff)
    assert bool((ours.off_class != y).all())


def test_off_classes_are_uniform_over_the_others_and_seeded():
    y = torch.randint(0, 5, (4000,), generator=torch.Generator().manual_seed(0))
    off = random_other_classes(y, 5, seed=1)
    assert bool((off != y).all()) and int(off.min()) == 0 and int(off.max()) == 4
    counts = torch.bincount(off[y == 2], minlength=5).double()
    assert counts[2] == 0 and float(counts[[0, 1, 3, 4]].std() / counts[[0, 1, 3, 4]].mean()) < 0.1
    assert torch.equal(off, random_other_classes(y, 5, seed=1))
    assert not torch.equal(off, random_other_classes(y, 5, seed=2))
    assert torch.equal(random_other_classes(torch.tensor([0, 1]), 2), torch.tensor([1, 0]))


def test_a_class_blind_method_scores_one_and_the_map_is_reused():
    model = tiny_cnn()
    x, y = data()
    calls = []

    def blind(model, inputs, targets):  # ignores the class: identical maps
        calls.append(targets.clone())
        return inputs.clone()

    r = random_logit(model, x, y, blind, a=x.clone(), similarities=["spearman", "ssim"])
    torch.testing.assert_close(r.scores["spearman"], torch.ones(6))
    torch.testing.assert_close(r.scores["ssim"], ssim(x.sum(1), x.sum(1)).float())
    assert len(calls) == 1 and torch.equal(calls[0], r.off_class)  # only the other class


def test_registered():
    model = tiny_cnn()
    x, y = data()
    spec = get_metric("random_logit")
    assert spec.kind == "explainer" and spec.direction("ssim") == "lower"
    assert spec.estimate().explanations == 1
    r = score("random_logit", model=model, x=x, y=y, explain_fn=gradient_explain,
              similarities=["spearman"])
    torch.testing.assert_close(r.values["spearman"], random_logit(
        model, x, y, gradient_explain, similarities=["spearman"]).scores["spearman"].double())


@pytest.mark.parametrize("params, message", [
    ({"n_classes": 1}, r"n_classes must be an integer >= 2"),
    ({"n_classes": 2}, r"y holds classes 0..2, outside 0..1"),
    ({"similarities": ["pearson"]}, r"similarities must be one of"),
])
def test_bad_arguments_are_clear_errors(params, message):
    x, y = data()
    with pytest.raises(ValueError, match=message):
        random_logit(tiny_cnn(), x, y, gradient_explain, **params)
    with pytest.raises(TypeError, match="explain_fn must be a callable"):
        random_logit(tiny_cnn(), x, y, None)


def test_a_model_in_train_mode_comes_back_unchanged():
    """The class count is read with one forward pass: in eval mode, batch norm untouched."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 3)).train()
    x, y = data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    random_logit(model, x, y, lambda m, inputs, targets: inputs.clone(), a=x.clone())
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
