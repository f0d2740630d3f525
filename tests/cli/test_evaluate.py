"""``salbench evaluate``: the maps ``salbench explain`` writes + data + registered metrics -> rows
equal to the metric functions, with the registry's directions, ranked the right way round by
``salbench report``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from salbench.cli import app
from salbench.data.dataset import GroundTruthDataset
from salbench.data.shards import save as save_dataset
from salbench.metrics import pixel_flipping, soft_five_band, top_k_precision
from salbench.models import build, make_explainable
from salbench.models.checkpoints import save as save_model
from salbench.results import read_results


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def toy_dataset(tmp_path, n=5, size=8, levels=False):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g)
    if levels:
        masks = torch.tensor([0.0, 0.4, 0.9])[torch.randint(0, 3, (n, size, size), generator=g)]
    else:
        masks = (torch.rand(n, size, size, generator=g) < 0.3).float()
        masks[:, 0, 0] = 1.0
    meta = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "split": ["test"] * n})
    ds = GroundTruthDataset(x, torch.zeros(n, dtype=torch.int64), masks, meta, ["a", "b"], "toy")
    save_dataset(ds, tmp_path / ("cells" if levels else "data"))
    return ds


def test_evaluate_reads_index_files_and_writes_the_metric_values(tmp_path):
    ds = toy_dataset(tmp_path)
    a = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    index = torch.tensor([4, 0, 2])
    save_file({"a": a, "index": index}, str(tmp_path / "maps.safetensors"))
    args = ["evaluate", "--maps", str(tmp_path / "maps.safetensors"), "--data",
            str(tmp_path / "data"), "--run", str(tmp_path / "run"), "--method", "toy"]
    result = invoke(*args, "--metric", "top_k_precision")
    assert result.exit_code == 0, result.output
    rows = read_results(tmp_path / "run").sort_values("sample_id")
    expected = top_k_precision(a, ds.masks[index])
    assert rows["sample_id"].tolist() == ["s0", "s2", "s4"]
    assert set(rows.direction) == {"higher"} and set(rows.output) == {"top_k_precision"}
    np.testing.assert_allclose(rows["value"].to_numpy(), expected[[1, 2, 0]].numpy(), atol=1e-6)
    again = invoke(*args, "--metric", "top_k_precision")
    assert "nothing to do" in again.output and len(read_results(tmp_path / "run")) == 3

    h0 = toy_dataset(tmp_path, levels=True).masks
    cells = [arg if arg != str(tmp_path / "data") else str(tmp_path / "cells") for arg in args]
    result = invoke(*cells, "--metric", "soft_five_band", "--param", "schedule=clamped")
    assert result.exit_code == 0, result.output
    rows = read_results(tmp_path / "run")
    p_avg = rows[(rows.metric == "soft_five_band") & (rows.output == "precision_avg")]
    ref = soft_five_band(a, h0[index], "clamped").precision_avg
    np.testing.assert_allclose(p_avg.sort_values("sample_id")["value"].to_numpy(),
                               ref[[1, 2, 0]].numpy(), atol=1e-9)
    assert set(p_avg.schedule) == {"clamped"}  # the parameter is a column
    fpr = rows[(rows.metric == "soft_five_band") & (rows.output == "fpr_avg")]
    assert set(fpr.direction) == {"lower"}


def _explained(tmp_path, fmt: str, method: str, maps: torch.Tensor, ids: list[str],
               targets: list[int]) -> str:
    """Maps saved the way ``salbench explain`` saves them."""
    meta = {"method": method, "params": {}, "sample_ids": ids, "targets": targets}
    if fmt == "npy":
        np.save(tmp_path / f"{method}.npy", maps.numpy())
        (tmp_path / f"{method}.json").write_text(json.dumps(meta))
        return str(tmp_path / f"{method}.npy")
    save_file({"maps": maps.contiguous(), "targets": torch.tensor(targets),
               "indices": torch.arange(len(ids))}, str(tmp_path / f"{method}.safetensors"),
              metadata={"salbench": json.dumps(meta)})
    return str(tmp_path / f"{method}.safetensors")


@pytest.mark.parametrize("fmt", ["npy", "safetensors"])
def test_pixel_flipping_is_ranked_lower_is_better_through_evaluate_and_report(tmp_path, fmt):
    """Input × gradient flips the pixels that carry the logit first (its MoRF curve falls fast,
    AUC low); its negation flips them last (AUC high). The report must rank the low one #1."""
    ds = toy_dataset(tmp_path, n=6, size=12)
    torch.manual_seed(0)
    model = make_explainable(build("resnet18", 2, 3, 12, 0.125)).eval()
    save_model(model, tmp_path / "model.safetensors")
    x, y = ds.x, ds.y
    xg = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(model(xg).gather(1, y[:, None]).sum(), xg)
    good = (grad * x).detach()
    ids = ds.meta.sample_id.tolist()
    for method, maps in (("x_times_grad", good), ("negated", -good)):
        path = _explained(tmp_path, fmt, method, maps, ids, y.tolist())
        done = invoke("evaluate", "--maps", path, "--data", str(tmp_path / "data"), "--metric",
                      "pixel_flipping", "--param", "fill=0.0", "--model",
                      str(tmp_path / "model.safetensors"), "--run", str(tmp_path / "run"))
        assert done.exit_code == 0, done.output
    rows = read_results(tmp_path / "run")
    assert set(rows.direction) == {"lower"} and set(rows.method) == {"x_times_grad", "negated"}
    auc = rows.groupby("method").value.mean()
    reference = pixel_flipping(model, x, y, good, fill=0.0).scores.double().mean()
    assert auc["x_times_grad"] == pytest.approx(float(reference), rel=1e-6)
    assert auc["x_times_grad"] < auc["negated"]
    report = invoke("report", str(tmp_path / "run"), "--n-boot", "50")
    assert report.exit_code == 0, report.output
    board = pd.read_csv(tmp_path / "run" / "report" / "tables" / "leaderboard-toy.csv",
                        index_col=0)
    column = next(c for c in board.columns if c.startswith("pixel_flipping.auc"))
    assert column.endswith("↓") and "fill=0.0" in column
    assert board[column]["x_times_grad"].endswith("#1")
    assert board[column]["negated"].endswith("#2")


@pytest.mark.parametrize("args, message", [
    (["--metric", "aopc"], "need --model"),
    (["--metric", "nosuch"], "metric must be one of"),
    (["--metric", "iou", "--param", "thresh=0.2"], "unknown parameters ['thresh']"),
    (["--metric", "max_sensitivity", "--model", "MODEL"], "need an explanation function"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    toy_dataset(tmp_path)
    torch.manual_seed(0)
    save_model(make_explainable(build("resnet18", 2, 3, 8, 0.125)), tmp_path / "m.safetensors")
    save_file({"a": torch.rand(5, 3, 8, 8)}, str(tmp_path / "maps.safetensors"))
    args = [str(tmp_path / "m.safetensors") if a == "MODEL" else a for a in args]
    done = invoke("evaluate", "--maps", str(tmp_path / "maps.safetensors"), "--data",
                  str(tmp_path / "data"), "--run", str(tmp_path / "run"), *args)
    assert done.exit_code == 2 and message in done.output
    assert len(done.output.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "results" / "parts").exists()
