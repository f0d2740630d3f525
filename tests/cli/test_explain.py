"""The ``salbench explain`` command writes the same maps as the Python call."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from salbench.cli.explain import explain as explain_command
from salbench.cli.explain import methods
from salbench.data import GroundTruthDataset
from salbench.data import save as save_data
from salbench.explain import explain
from salbench.models import build, make_explainable
from salbench.models.checkpoints import load as load_model
from salbench.models.checkpoints import save as save_model


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("explain")(explain_command)
    app.command("methods")(methods)
    return app


def test_explain_command_saves_maps_equal_to_python_call(tmp_path):
    torch.manual_seed(0)
    model = make_explainable(build("vgg16", 3, 3, 32, 0.0625))
    ckpt = save_model(model, tmp_path / "model")
    n = 5
    x = torch.rand(n, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 1, 0])
    meta = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "split": ["test"] * n})
    data = save_data(GroundTruthDataset(x, y, torch.zeros(n, 32, 32), meta, ["a", "b", "c"],
                                        "toy"), tmp_path / "data")
    runner = CliRunner()
    result = runner.invoke(_app(), ["explain", str(ckpt), str(data), "--method",
                                    "integrated_gradients", "--set", "n_steps=8", "--out",
                                    str(tmp_path / "maps"), "--batch-size", "2", "--quiet",
                                    "--device", "cpu"])
    assert result.exit_code == 0, result.output
    maps = np.load(tmp_path / "maps" / "integrated_gradients.npy")
    info = json.loads((tmp_path / "maps" / "integrated_gradients.json").read_text())
    assert info["sample_ids"] == [f"s{i}" for i in range(n)] and info["targets"] == y.tolist()
    loaded, _ = load_model(ckpt)
    expected = explain(loaded, x, y, "integrated_gradients", n_steps=8)
    np.testing.assert_allclose(maps, expected.numpy(), rtol=1e-5, atol=1e-7)

    result = runner.invoke(_app(), ["explain", str(ckpt), str(data), "-m", "gradcam", "--format",
                                    "safetensors", "--out", str(tmp_path / "st"), "--quiet",
                                    "--target", "predicted", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    stored = load_file(str(tmp_path / "st" / "gradcam.safetensors"))
    assert stored["maps"].shape == (n, 1, 32, 32)
    predicted = loaded(x).argmax(1)
    torch.testing.assert_close(stored["maps"], explain(loaded, x, predicted, "gradcam"))

    bad = runner.invoke(_app(), ["explain", str(ckpt), str(data), "--set", "nope=1", "--quiet"])
    assert bad.exit_code == 2 and "nope" in bad.output
    listing = runner.invoke(_app(), ["methods"])
    assert listing.exit_code == 0 and "lrp_tutorial" in listing.output
