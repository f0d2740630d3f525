"""Checkpoints: save, load, identical outputs; metadata round trip; data hash."""

import json

import pytest
import torch
from safetensors.torch import save_file

from salbench.models import (
    build,
    data_hash,
    load,
    make_explainable,
    read_metadata,
    save,
    to_conv_flatten_fc,
    to_gap_fc,
)


def _trained_like(model):
    """Perturb weights and BN statistics so a default-initialised rebuild would differ."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for name, buf in model.named_buffers():
            if "running" in name:
                buf.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize(("arch", "surgery"), [
    ("vgg16", None), ("resnet50", "flatten"), ("resnet18", "gap"), ("alexnet", "explainable"),
    ("resnet34", "flatten+explainable"), ("vgg16_bn", None), ("vgg19_bn", "gap"),
    ("vgg16_bn", "flatten+explainable"),
])
def test_save_load_identical_outputs(tmp_path, arch, surgery):
    torch.manual_seed(0)
    model = build(arch, 3, in_channels=1, input_size=64, width=0.125)
    if surgery and "flatten" in surgery:
        model = to_conv_flatten_fc(model)
    if surgery == "gap":
        model = to_gap_fc(model)
    if surgery and "explainable" in surgery:
        model = make_explainable(model)
    model = _trained_like(model)
    meta = {"classes": ["a", "b", "c"], "seed": 7, "metrics": {"accuracy": 0.9}}
    path = save(model, tmp_path / "model", meta)
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    loaded, loaded_meta = load(path)
    assert loaded_meta == meta
    assert loaded.salbench_spec == model.salbench_spec
    assert type(loaded) is type(model)
    x = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert json.loads(path.with_suffix(".json").read_text())["spec"]["arch"] == arch
    assert read_metadata(path)["meta"]["seed"] == 7


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ValueError, match="without salbench metadata"):
        load(plain)
    with pytest.raises(ValueError, match="JSON"):
        save(build("resnet18", 2, input_size=32, width=0.125), tmp_path / "m", {"x": object()})
    with pytest.raises(TypeError, match="salbench_spec"):
        save(torch.nn.Linear(2, 2), tmp_path / "m")


def test_data_hash_identifies_the_data():
    x, y = torch.rand(8, 1, 4, 4), torch.arange(8) % 2
    h = data_hash((x, y))
    assert h == data_hash((x.clone(), y.clone())) and len(h) == 16
    x2 = x.clone()
    x2[3, 0, 1, 1] += 1e-6
    assert data_hash((x2, y)) != h
    assert data_hash((x, 1 - y)) != h
