"""A user's model from every kind of file: the loaded model computes what the saved one did, and
every unreadable or ambiguous input is a one-line error naming the argument."""

from __future__ import annotations

import sys
import warnings

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from salbench.models import build
from salbench.models.checkpoints import save as save_checkpoint
from salbench.models.loading import load_model, with_normalisation


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=3).eval()


@pytest.fixture
def x():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def same(loaded, reference, x) -> bool:
    """Whether the loaded model gives the reference's outputs on ``x``."""
    with torch.no_grad():
        return torch.allclose(loaded.model(x), reference(x), rtol=1e-5, atol=1e-6)


def test_a_torch_saved_module_and_its_state_dict(resnet, x, tmp_path):
    torch.save(resnet, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert (loaded.source, loaded.hooks) == ("module", True)
    assert same(loaded, resnet, x)
    torch.save(resnet.state_dict(), tmp_path / "state.pth")
    loaded = load_model(tmp_path / "state.pth", arch="resnet18")
    assert loaded.source == "state_dict" and "3 classes" in loaded.description  # read from fc
    assert same(loaded, resnet, x)
    torch.save({"state_dict": resnet.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    assert same(load_model(tmp_path / "ckpt.pt", arch="resnet18"), resnet, x)
    save_file(resnet.state_dict(), str(tmp_path / "state.safetensors"))
    assert same(load_model(tmp_path / "state.safetensors", arch="resnet18"), resnet, x)


def test_torchvision_architectures_beyond_the_zoo(x, tmp_path):
    torch.manual_seed(1)
    model = torchvision.models.mobilenet_v3_small(num_classes=4).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    assert same(load_model(tmp_path / "m.pt", arch="mobilenet_v3_small"), model, x)


def test_torchscript_loads_without_hooks(resnet, x, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(resnet), str(tmp_path / "model.ts"))
        loaded = load_model(tmp_path / "model.ts")
    assert (loaded.source, loaded.hooks) == ("torchscript", False)
    assert same(loaded, resnet, x)


def test_a_salbench_checkpoint(tmp_path, x):
    torch.manual_seed(2)
    model = build("resnet18", 2, 3, 32, 0.25).eval()
    save_checkpoint(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.source == "checkpoint"
    assert same(loaded, model, x)


def test_a_factory(x, tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(
        "import torch\n"
        "def net():\n"
        "    torch.manual_seed(5)\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_model("mymodels:net")
    assert loaded.source == "factory"
    torch.manual_seed(5)
    reference = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))
    assert same(loaded, reference, x)
    sys.modules.pop("mymodels", None)


def test_normalisation_is_a_first_layer(resnet, x):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    wrapped = with_normalisation(resnet, mean, std)
    shift, scale = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    expected = resnet((x - shift) / scale)
    torch.testing.assert_close(wrapped(x), expected)


def test_bad_model_files_are_one_line_errors(resnet, tmp_path):
    torch.save(resnet.state_dict(), tmp_path / "state.pt")
    (tmp_path / "notes.pt").write_text("not a model")
    good = tmp_path / "good.safetensors"
    save_file(resnet.state_dict(), str(good))
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:100])
    cases = [
        (tmp_path / "missing.pt", {}, FileNotFoundError, "no such file"),
        (tmp_path / "state.pt", {}, ValueError, "give its architecture with --arch"),
        (tmp_path / "state.pt", {"arch": "vgg16"}, ValueError, "does not fit --arch vgg16"),
        (tmp_path / "state.pt", {"arch": "nosuchnet"}, ValueError, "neither a zoo"),
        (tmp_path / "notes.pt", {}, ValueError, "not a readable torch file"),
        (tmp_path / "cut.safetensors", {}, ValueError, "not a readable safetensors file"),
        ("nosuchpackage:factory", {}, ValueError, "cannot import the factory"),
    ]
    for source, kw, error, message in cases:
        with pytest.raises(error, match=message) as raised:
            load_model(source, **kw)
        assert "\n" not in str(raised.value)
