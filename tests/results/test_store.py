"""Results store: schema, atomic parts, manifest that survives a torn write, DuckDB queries."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from salbench.results import COLUMNS, ResultStore, query, read_results


def rows(n: int, metric: str = "top_k_precision") -> list[dict]:
    return [{"dataset": "mri", "model_id": "vgg", "method": "saliency", "metric": metric,
             "sample_id": f"s{i}", "value": i / 10, "params": {"k": 1}, "meta": {"correct": True}}
            for i in range(n)]


def test_rows_round_trip_through_parquet_and_duckdb(tmp_path):
    store = ResultStore(tmp_path)
    assert store.write_rows("job-a", rows(3), {"study": "s", "run": "r"}) == 3
    frame = read_results(tmp_path)
    assert list(frame.columns) == list(COLUMNS)
    assert frame["value"].tolist() == [0.0, 0.1, 0.2]
    assert json.loads(frame["params"][0]) == {"k": 1}
    counted = query(tmp_path, "select metric, count(*) as n from results group by 1")
    assert counted.to_dict("records") == [{"metric": "top_k_precision", "n": 3}]


def test_only_finished_jobs_are_visible(tmp_path):
    store = ResultStore(tmp_path)
    store.write_rows("done", rows(2), {"study": "s", "run": "r"})
    # a part whose manifest line was never written (process killed in between) stays invisible
    pd.DataFrame(rows(5)).assign(study="s", run="r", params="{}", meta="{}").to_parquet(
        store.parts / "orphan.parquet")
    assert len(read_results(tmp_path)) == 2


def test_torn_manifest_line_is_ignored_and_not_glued_to_the_next(tmp_path):
    store = ResultStore(tmp_path)
    store.write_rows("a", rows(1), {"study": "s", "run": "r"})
    with open(store.manifest, "a") as handle:
        handle.write('{"key": "b", "ro')  # killed mid-write
    assert store.finished() == {"a"}
    store.write_rows("c", rows(1), {"study": "s", "run": "r"})
    assert store.finished() == {"a", "c"}


def test_rewriting_a_job_replaces_its_part(tmp_path):
    store = ResultStore(tmp_path)
    store.write_rows("a", rows(2), {"study": "s", "run": "r"})
    store.write_rows("a", rows(2), {"study": "s", "run": "r"})
    assert len(read_results(tmp_path)) == 2
    assert not list(store.parts.glob(".*tmp"))


def test_empty_run_queries_an_empty_table(tmp_path):
    assert query(tmp_path, "select count(*) as n from results")["n"].tolist() == [0]


@pytest.mark.parametrize("bad, message", [
    ([{"nonsense": 1}], "unknown columns"),
    ([{"dataset": "d", "model_id": "m", "method": "x", "metric": "y", "sample_id": "0"}],
     "'value' is missing"),
])
def test_bad_rows_are_rejected_before_anything_is_written(tmp_path, bad, message):
    store = ResultStore(tmp_path)
    with pytest.raises(ValueError, match=message):
        store.write_rows("a", bad, {"study": "s", "run": "r"})
    assert store.finished() == set()


def test_bad_job_key_and_missing_run_folder(tmp_path):
    with pytest.raises(ValueError, match="job_key"):
        ResultStore(tmp_path).write_rows("../escape", rows(1), {"study": "s", "run": "r"})
    with pytest.raises(FileNotFoundError, match="run_dir"):
        query(tmp_path / "nope", "select 1")
