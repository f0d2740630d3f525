"""The commands fit together: data → train → explain (both formats) → evaluate → report → results
through the real command line, each reading what the one before it wrote."""

from __future__ import annotations

import json

import pandas as pd
import yaml
from typer.testing import CliRunner

from salbench.cli import app
from salbench.results import read_results


def invoke(*args):
    done = CliRunner().invoke(app, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    return done.output


def test_data_train_explain_evaluate_report_results(tmp_path):
    data, model_dir, maps, run = (tmp_path / p for p in ("cells", "model", "maps", "run"))
    invoke("data", "cells", "--n", 60, "--size", 32, "--shard-size", 6, "--out", data)

    config = yaml.safe_load(invoke("train", "--print-config"))
    assert {"model", "data", "training"} <= set(config) and config["training"]["epochs"] > 0
    config["model"].update(arch="resnet18", width=0.125)
    config["data"] = {"path": str(data)}
    config["training"] = {"epochs": 1, "batch_size": 16, "optimizer": "adam", "lr": 1e-3}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    invoke("train", "--config", tmp_path / "train.yaml", "--out", model_dir, "--quiet")
    checkpoint = model_dir / "model.safetensors"

    invoke("explain", checkpoint, data, "--method", "saliency", "--out", maps, "--quiet")
    invoke("explain", checkpoint, data, "--method", "input_x_gradient", "--format",
           "safetensors", "--out", maps, "--quiet")
    assert json.loads((maps / "saliency.json").read_text())["method"] == "saliency"
    for name in ("saliency.npy", "input_x_gradient.safetensors"):
        invoke("evaluate", "--maps", maps / name, "--data", data, "--metric", "pixel_flipping",
               "--metric", "soft_five_band", "--model", checkpoint, "--run", run)
    rows = read_results(run)
    assert set(rows.method) == {"saliency", "input_x_gradient"}  # from the maps files
    assert set(rows[rows.metric == "pixel_flipping"].direction) == {"lower"}

    report = invoke("report", run, "--n-boot", 50)
    assert report.strip().endswith("index.html")
    board = pd.read_csv(next((run / "report" / "tables").glob("leaderboard-*.csv")), index_col=0)
    assert sorted(board.index) == ["input_x_gradient", "saliency"]

    table = invoke("results", "--run", run, "select method, count(distinct sample_id) as n "
                   "from results where metric = 'pixel_flipping' group by 1 order by 1")
    counts = {m.strip(): int(n) for m, n in
              (line.split("│")[1:3] for line in table.splitlines() if line.startswith("│"))}
    expected = rows[rows.metric == "pixel_flipping"].groupby("method").sample_id.nunique()
    assert counts == expected.to_dict() and min(counts.values()) > 0
