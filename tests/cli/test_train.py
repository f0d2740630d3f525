"""`salbench train`: config validation, run folder contents, and a checkpoint that reproduces."""

import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from salbench.cli.train import TrainRunConfig, load_data, train
from salbench.config import ConfigError
from salbench.models import evaluate, load

CONFIG = """
model: {arch: resnet18, width: 0.125, degree: 2conv, head: conv_flatten_fc}
data: {source: natural, n: 96, size: 32, seed: 1, params: {split_fractions: [0.5, 0.25, 0.25]}}
preset: cam
training: {epochs: 2, batch_size: 16, lr: 0.003}
"""


def _app():
    app = typer.Typer()
    app.command()(train)
    return app


def test_train_writes_a_reproducible_checkpoint(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    result = CliRunner().invoke(_app(), ["--config", str(config), "--out", str(out), "--quiet",
                                         "--set", "training.patience=3"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    meta = json.loads((out / "model.json").read_text())["meta"]
    assert meta["training"]["optimizer"] == "adam" and meta["training"]["patience"] == 3
    assert meta["training"]["class_weights"] == "balanced"  # from the cam preset
    assert len(pd.read_csv(out / "history.csv")) == meta["epochs_run"]
    model, _ = load(out / "model.safetensors")
    assert model.salbench_spec.head == "conv_flatten_fc"
    data = load_data(TrainRunConfig.from_yaml(config).data)
    assert evaluate(model, data.split("test"), device="cpu") == pytest.approx(meta["test_scores"])


def test_bad_config_fails_with_one_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model: {arch: vgg11}\n")
    result = CliRunner().invoke(_app(), ["--config", str(config), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    with pytest.raises(ConfigError, match="training.lr|lr"):
        TrainRunConfig.parse({"training": {"lr": -1}})
    with pytest.raises(ConfigError, match="preset"):
        TrainRunConfig.parse({"preset": "imagenet"})
