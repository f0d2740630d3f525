"""The result contract every study's rows must keep (imported by the study tests)."""

from __future__ import annotations

import json
from pathlib import Path

from salbench.metrics import get_metric
from salbench.results import read_results
from salbench.results.stats import ranked_rows


def assert_rankable(run_dir: Path) -> None:
    """Every ``results`` and ``summaries`` row carries the direction the metric registry gives for
    its metric, output and parameters, no structure is encoded in a metric name or a sample id,
    and the leaderboard's rows build without guessing anything."""
    for table in ("results", "summaries"):
        frame = read_results(run_dir, table)
        keys = frame[["metric", "output", "metric_params", "direction"]].drop_duplicates()
        for metric, output, params, direction in keys.itertuples(index=False):
            assert get_metric(metric).direction(output, json.loads(params)) == direction, (
                table, metric, output, params)
        assert not frame.metric.str.contains("/").any(), table
        if "sample_id" in frame:
            assert not frame.sample_id.astype(str).str.startswith("point:").any(), table
    curves = read_results(run_dir, "curves")
    assert not curves.metric.str.contains("/").any()
    ranked = ranked_rows(read_results(run_dir))
    assert set(ranked.direction) <= {"higher", "lower"}
