"""Every method on any supported model: explain() runs the methods that need an explainable model
on an equivalent copy (in-place activations and reused modules removed), made once per model and
weights, checked to give the same logits; the user's model stays untouched. TorchScript models
run the hook-free methods and refuse the others with one line; non-finite inputs are refused."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

from salbench.explain import available, explain
from salbench.explain.registry import _COPIES
from salbench.models import make_explainable

NEEDS_COPY = sorted(m.name for m in available() if m.requires == "explainable"
                    and m.name not in ("lrp_composite", "gad"))


def plain_resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=3).eval()  # in-place ReLU, reused per block


@pytest.fixture
def batch():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return x, torch.tensor([0, 2])


@pytest.mark.parametrize("method", NEEDS_COPY)
def test_a_plain_torchvision_model_is_explained_on_an_equivalent_copy(method, batch):
    x, y = batch
    model = plain_resnet()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    maps = explain(model, x, y, method)
    reference = explain(make_explainable(model), x, y, method)
    torch.testing.assert_close(maps, reference, rtol=1e-5, atol=1e-7)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert model.relu.inplace and model.layer1[0].relu is model.layer1[0].relu  # untouched
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


def test_the_copy_is_cached_per_model_and_renewed_when_the_weights_change(batch):
    x, y = batch
    model = plain_resnet()
    explain(model, x, y, "guided_backprop")
    first = _COPIES[model][1]
    explain(model, x, y, "deeplift")
    assert _COPIES[model][1] is first
    with torch.no_grad():
        model.fc.weight.mul_(-1.0)  # an in-place change, as an optimiser step makes
    maps = explain(model, x, y, "guided_backprop")
    assert _COPIES[model][1] is not first
    torch.testing.assert_close(maps, explain(make_explainable(model), x, y, "guided_backprop"))


class TwiceLinear(nn.Module):
    """Calls one parametrised module twice per forward: nothing can unshare it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(self.act(self.conv(x)))).mean((2, 3)))


def test_a_model_that_cannot_be_rewritten_is_a_clear_error(batch):
    x, _ = batch
    with pytest.raises(ValueError, match="calls modules more than once"):
        explain(TwiceLinear().eval(), x, 0, "deeplift")


def test_torchscript_runs_hook_free_methods_and_refuses_the_others(batch):
    x, y = batch
    model = plain_resnet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
    for method in ("saliency", "integrated_gradients", "occlusion"):
        torch.testing.assert_close(explain(scripted, x, y, method), explain(model, x, y, method))
    with pytest.raises(ValueError, match="TorchScript model does not allow"):
        explain(scripted, x, y, "guided_backprop")
    with pytest.raises(ValueError, match="classes 0..2"):
        explain(scripted, x, 5, "saliency")


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "gradcam", "lrp_epsilon",
                                    "sobel"])
def test_non_finite_images_are_refused_naming_the_samples(method, batch):
    x, y = batch
    x = x.clone()
    x[1, 0, 3, 3] = float("inf")
    with pytest.raises(ValueError, match=r"NaN or infinite values in samples \[1\]"):
        explain(plain_resnet(), x, y, method)
