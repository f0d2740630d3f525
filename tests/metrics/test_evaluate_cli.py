"""``salbench evaluate``: maps + data + metric -> result rows equal to the metric functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner

from salbench.data.dataset import GroundTruthDataset
from salbench.data.shards import save as save_dataset
from salbench.metrics import soft_five_band, top_k_precision
from salbench.metrics.cli import evaluate
from salbench.results import read_results


def make_app():
    app = typer.Typer()
    app.command("evaluate")(evaluate)
    app.command("noop")(lambda: None)  # two commands: typer keeps "evaluate" as a subcommand
    return app


def test_evaluate_writes_rows(tmp_path):
    g = torch.Generator().manual_seed(0)
    n = 5
    x = torch.rand(n, 3, 8, 8, generator=g)
    masks = (torch.rand(n, 8, 8, generator=g) < 0.3).float()
    masks[:, 0, 0] = 1.0
    meta = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "split": ["test"] * n})
    ds = GroundTruthDataset(x, torch.zeros(n, dtype=torch.int64), masks, meta, ["a", "b"], "toy")
    save_dataset(ds, tmp_path / "data")
    a = torch.randn(3, 3, 8, 8, generator=g)
    index = torch.tensor([4, 0, 2])
    save_file({"a": a, "index": index}, str(tmp_path / "maps.safetensors"))
    args = ["evaluate", "--maps", str(tmp_path / "maps.safetensors"), "--data",
            str(tmp_path / "data"), "--run", str(tmp_path / "run"), "--method", "toy"]
    result = CliRunner().invoke(make_app(), [*args, "--metric", "top_k_precision"])
    assert result.exit_code == 0, result.output
    rows = read_results(tmp_path / "run").sort_values("sample_id")
    expected = top_k_precision(a, masks[index])
    assert rows["sample_id"].tolist() == ["s0", "s2", "s4"]
    np.testing.assert_allclose(rows["value"].to_numpy(), expected[[1, 2, 0]].numpy(), atol=1e-6)
    again = CliRunner().invoke(make_app(), [*args, "--metric", "top_k_precision"])
    assert "nothing to do" in again.output and len(read_results(tmp_path / "run")) == 3

    h0 = torch.tensor([0.0, 0.4, 0.9])[torch.randint(0, 3, (n, 8, 8), generator=g)]
    ds2 = GroundTruthDataset(x, torch.zeros(n, dtype=torch.int64), h0, meta, ["a", "b"], "cells")
    save_dataset(ds2, tmp_path / "cells")
    args2 = [a if a != str(tmp_path / "data") else str(tmp_path / "cells") for a in args]
    result = CliRunner().invoke(make_app(), [*args2, "--metric", "soft_five_band",
                                             "--param", "schedule=clamped"])
    assert result.exit_code == 0, result.output
    rows = read_results(tmp_path / "run")
    p_avg = rows[rows.metric == "soft_five_band.precision_avg"].sort_values("sample_id")
    ref = soft_five_band(a, h0[index], "clamped").precision_avg
    np.testing.assert_allclose(p_avg["value"].to_numpy(), ref[[1, 2, 0]].numpy(), atol=1e-9)

    bad = CliRunner().invoke(make_app(), [*args, "--metric", "aopc"])
    assert bad.exit_code == 2 and "needs --model" in bad.output
