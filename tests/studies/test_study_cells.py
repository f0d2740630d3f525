"""The cells study (document 001): a shrunken tiny run end to end, checked against the definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from salbench.explain import explain
from salbench.metrics import soft_five_band
from salbench.results import read_results
from salbench.runtime import set_quiet
from salbench.studies import cells
from salbench.studies.base import run_study
from salbench.studies.common import load_dataset, load_model, select_samples

SHRUNK = [
    "n=120", "shard_size=2", "branches=2", "n_samples=6", "gallery=2",
    ("models={alexnet: {arch: alexnet, width: 0.125, size: 32, continuous: {epochs: 1, lr: 0.001},"
     " regular: {epochs: 1, lr: 0.001, early_stop_limit: 4, val_shards: 2}}}"),
    "alexnet_added_layers=[1]", "variant_width=0.125", "variant_size=32",
    "variant_continuous={epochs: 1}", "variant_regular={epochs: 1, early_stop_limit: 4}",
]
SUBMETRICS = ["accuracy_avg", "accuracy_best", "precision_avg", "precision_best", "recall_avg",
              "recall_best", "fpr_avg"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    set_quiet(True)
    run_dir = tmp_path_factory.mktemp("cells")
    config = cells.STUDY.config("tiny", SHRUNK)
    summaries = run_study(cells.STUDY, config, run_dir, device="cpu")
    assert all(not s.failed for s in summaries.values()), summaries
    results = read_results(run_dir)
    return run_dir, config, results[results.study == "cells"]


def test_rows_for_every_model_method_metric_sample(run):
    _, config, results = run
    scored = results[(results.method != "model") & ~results.sample_id.str.startswith("point:")]
    models = {f"alexnet-b{b}" for b in range(config.branches)} | {"alexnet+1"}
    assert set(scored.model_id) == models
    methods = {m.key for m in config.methods}
    assert len(methods) == 8
    for model_id in models:
        part = scored[scored.model_id == model_id]
        assert set(part.method) == methods
        for label in ("five_band", "five_band_clamped"):
            for sub in SUBMETRICS:
                rows = part[part.metric == f"{label}/{sub}"]
                assert len(rows) == len(methods) * config.n_samples, (model_id, label, sub)
    values = scored.value.to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()


def test_best_is_at_least_average(run):
    _, _, results = run
    scored = results[results.metric.str.contains("_avg|_best")
                     & ~results.metric.str.contains("fpr")]
    scored = scored.assign(stat=scored.metric.str.rsplit("_", n=1).str[1],
                           base=scored.metric.str.rsplit("_", n=1).str[0])
    wide = scored.pivot_table(index=["model_id", "method", "sample_id", "base"],
                              columns="stat", values="value")
    assert (wide["best"] >= wide["avg"] - 1e-12).all()


def test_scores_are_those_of_the_predicted_class(run):
    """Document 001, 3.3: heatmaps of the predicted class. Recompute one method's scores."""
    run_dir, config, results = run
    spec = cells.data_spec(config, 32)
    samples = select_samples(run_dir, load_dataset(run_dir, spec), config.n_samples)
    model = load_model(run_dir, "alexnet-b0", "cpu")
    with torch.no_grad():
        predicted = model(samples.x).argmax(1)
    rows = results[(results.model_id == "alexnet-b0") & (results.method == "input_x_gradient")
                   & (results.metric == "five_band/recall_best")].set_index("sample_id")
    ids = samples.meta.sample_id.astype(str).tolist()
    stored_pred = [json.loads(rows.loc[i, "meta"])["predicted"] for i in ids]
    assert stored_pred == predicted.tolist()
    a = explain(model, samples.x, predicted, "input_x_gradient")
    expected = soft_five_band(a, samples.masks).recall_best
    assert np.allclose(rows.loc[ids, "value"].to_numpy(), expected.numpy(), atol=1e-6)


def test_branches_start_from_the_base_and_differ(run):
    """Section 3.2: each branch is trained from the base model with its own seed."""
    run_dir, _, _ = run
    base = load_model(run_dir, "alexnet-base", "cpu").state_dict()
    b0 = load_model(run_dir, "alexnet-b0", "cpu").state_dict()
    b1 = load_model(run_dir, "alexnet-b1", "cpu").state_dict()
    key = next(k for k in base if k.endswith("weight"))
    assert not torch.equal(b0[key], b1[key])
    assert not torch.equal(b0[key], base[key])


def test_report_section(run):
    run_dir, config, results = run
    section = cells.report_section(run_dir)
    names = {f.name for f in section.figures}
    assert {"cells-fig3A", "cells-fig3B", "cells-fig3C", "cells-fig4",
            "cells-channels-alexnet", "cells-alexnet-added"} <= names
    tables = {t.name: t.data for t in section.tables}
    table1 = tables["cells-table1"]
    accuracy = results[(results.method == "model") & (results.metric == "accuracy")
                       & results.model_id.str.match(r"alexnet-b\d")].value
    assert table1.loc["AlexNet", "<Acc.>"] == pytest.approx(accuracy.mean())
    assert table1.loc["AlexNet", "branches"] == config.branches
    per_sample = tables["cells-per-sample"]
    assert {"shard", "position", "true", "predicted"} <= set(per_sample.columns)
    dataset = load_dataset(run_dir, cells.data_spec(config, 32))
    shard_of = dict(zip(dataset.meta.sample_id.astype(str), dataset.meta.shard))
    assert all(shard_of[s] == sh for s, sh in zip(per_sample.sample_id, per_sample["shard"]))
    roc = cells.roc_points(results, config)
    assert len(roc) == 2 * 8 * 56  # branches × methods × standard thresholds (m = 0 … 55)
    assert (run_dir / "report" / "tables" / "cells-per-sample-full.csv").is_file()


def test_alexnet_with_added_layers():
    base = cells.alexnet_with_added_layers(0, 10, 64, 0.125)
    model = cells.alexnet_with_added_layers(3, 10, 64, 0.125)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == len([m for m in base.features if isinstance(m, nn.Conv2d)]) + 3
    assert isinstance(model.features[-1], (nn.MaxPool2d, nn.Identity))
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
    with pytest.raises(ValueError, match="added"):
        cells.alexnet_with_added_layers(-1, 10, 64)


def test_config_errors():
    from salbench.config import ConfigError

    with pytest.raises(ConfigError, match="branches"):
        cells.STUDY.config("tiny", ["branches=0"])
    with pytest.raises(ConfigError, match="arch"):
        cells.STUDY.config("tiny", ["models={x: {arch: lenet}}"])


@pytest.mark.slow
def test_tiny_preset(tmp_path):
    set_quiet(True)
    config = cells.STUDY.config("tiny")
    summaries = run_study(cells.STUDY, config, tmp_path, device="cpu")
    assert all(not s.failed for s in summaries.values())
    section = cells.report_section(tmp_path)
    assert len(section.figures) >= 4 + len(config.models)
