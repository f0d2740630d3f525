"""Results store: the four tables, atomic parts, a manifest that survives torn writes, parts that
go missing or corrupt (the job becomes not done and a rerun repairs it, and reading says so),
the writer lock, and DuckDB over it all."""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from salbench.results import (
    SCHEMAS,
    ResultStore,
    RunLockedError,
    query,
    read_results,
)

DEFAULTS = {"study": "s", "run": "r"}


def rows(n: int, metric: str = "top_k_precision", **factors) -> list[dict]:
    return [{"dataset": "mri", "model_id": "vgg", "method": "saliency", "metric": metric,
             "output": metric, "sample_id": f"s{i}", "value": i / 10, "direction": "higher",
             "metric_params": {"reduce": "sum"}, "meta": {"correct": True}, **factors}
            for i in range(n)]


def summary(value: float) -> list[dict]:
    return [{"dataset": "mri", "model_id": "vgg", "method": "", "metric": "classification",
             "output": "accuracy", "value": value, "direction": "higher", "n": 10}]


def test_tables_round_trip_through_parquet_and_duckdb(tmp_path):
    store = ResultStore(tmp_path)
    counts = store.write("job-a", {"results": rows(3), "summaries": summary(0.9)}, DEFAULTS)
    assert counts == {"results": 3, "summaries": 1}
    frame = read_results(tmp_path)
    assert list(frame.columns) == SCHEMAS["results"].names
    assert frame["value"].tolist() == [0.0, 0.1, 0.2]
    assert json.loads(frame["metric_params"][0]) == {"reduce": "sum"}
    assert read_results(tmp_path, "summaries")["value"].tolist() == [0.9]
    counted = query(tmp_path, "select metric, count(*) as n from results group by 1")
    assert counted.to_dict("records") == [{"metric": "top_k_precision", "n": 3}]
    assert query(tmp_path, "select count(*) as n from curves")["n"].tolist() == [0]


def test_factors_are_typed_columns_unioned_across_jobs(tmp_path):
    store = ResultStore(tmp_path)
    store.write("a", rows(2, region=14, order="morf"), DEFAULTS)
    store.write("b", rows(2, gamma=0.25), DEFAULTS)
    frame = read_results(tmp_path)
    assert (frame.region.dropna().tolist() == [14, 14]
            and frame.gamma.dropna().tolist() == [0.25] * 2)
    typed = query(tmp_path, "select column_name, column_type from (describe results)")
    types = dict(zip(typed.column_name, typed.column_type))
    assert (types["region"], types["order"], types["gamma"]) == ("BIGINT", "VARCHAR", "DOUBLE")
    assert query(tmp_path, "select sum(value) as s from results where region = 14")["s"][0] == (
        pytest.approx(0.1))


def test_a_part_without_manifest_line_is_invisible_and_reported(tmp_path):
    store = ResultStore(tmp_path)
    store.write("done", rows(2), DEFAULTS)
    store.write("killed", rows(5), DEFAULTS)
    store.manifest.write_text(store.manifest.read_text().splitlines()[0] + "\n")  # never recorded
    assert len(read_results(tmp_path)) == 2
    status = store.status()
    assert set(status.done) == {"done"} and len(status.orphans) == 1
    assert any("belong to no finished job" in p for p in status.problems())


def test_torn_manifest_line_makes_that_job_not_done_and_a_rewrite_repairs_it(tmp_path):
    store = ResultStore(tmp_path)
    store.write("a", rows(1), DEFAULTS)
    store.write("b", rows(4), DEFAULTS)
    text = store.manifest.read_text()
    store.manifest.write_text(text[: text.rindex("}")])  # the last line is cut
    assert store.finished() == {"a"}
    assert store.status().torn == 1 and any("torn" in p for p in store.problems())
    assert len(read_results(tmp_path)) == 1
    store.write("b", rows(4), DEFAULTS)  # the rerun
    assert store.finished() == {"a", "b"} and len(read_results(tmp_path)) == 5
    store.write("c", rows(1), DEFAULTS)  # the next line is not glued to the torn one
    assert store.finished() == {"a", "b", "c"}


@pytest.mark.parametrize("fault", ["deleted", "truncated", "replaced"])
def test_missing_or_corrupt_part_makes_the_job_not_done(tmp_path, fault):
    store = ResultStore(tmp_path)
    store.write("good", rows(2), DEFAULTS)
    store.write("bad", rows(6), DEFAULTS)
    part = store.part_path("results", "bad")
    if fault == "deleted":
        part.unlink()
    elif fault == "truncated":
        data = part.read_bytes()
        part.write_bytes(data[: len(data) // 2])
    else:  # a readable file with other rows than the manifest says
        other = ResultStore(tmp_path / "other")
        other.write("bad", rows(3), DEFAULTS)
        part.write_bytes(other.part_path("results", "bad").read_bytes())
    assert store.finished() == {"good"}
    problems = store.problems()
    assert len(problems) == 1 and problems[0].startswith("1 finished job(s)")
    assert len(read_results(tmp_path)) == 2  # the broken part is left out, loudly
    store.write("bad", rows(6), DEFAULTS)
    assert store.finished() == {"good", "bad"} and store.problems() == []
    assert len(read_results(tmp_path)) == 8


def test_rewriting_a_job_replaces_its_part(tmp_path):
    store = ResultStore(tmp_path)
    store.write("a", rows(2), DEFAULTS)
    store.write("a", rows(2), DEFAULTS)
    assert len(read_results(tmp_path)) == 2
    assert not list(store.parts.rglob(".*tmp"))


def test_a_job_without_rows_is_finished(tmp_path):
    store = ResultStore(tmp_path)
    store.write("artifacts-only", None, DEFAULTS)
    assert store.finished() == {"artifacts-only"} and read_results(tmp_path).empty


@pytest.mark.parametrize("bad, message", [
    ({"nonsense": rows(1)}, "tables must be among"),
    ({"results": [{"dataset": "d", "model_id": "m", "method": "x", "metric": "y",
                   "sample_id": "0", "output": "y", "direction": "higher"}]}, "'value' is missing"),
    ({"results": rows(1, seed=object())}, "factor 'seed'"),
])
def test_bad_rows_are_rejected_before_anything_is_written(tmp_path, bad, message):
    store = ResultStore(tmp_path)
    with pytest.raises((ValueError, TypeError), match=message):
        store.write("a", bad, DEFAULTS)
    assert store.finished() == set() and not store.parts.exists()


def test_bad_job_key_and_missing_run_folder(tmp_path):
    with pytest.raises(ValueError, match="job_key"):
        ResultStore(tmp_path).write("../escape", rows(1), DEFAULTS)
    with pytest.raises(FileNotFoundError, match="run_dir"):
        query(tmp_path / "nope", "select 1")


def _hold_lock(run_dir, ready, release):
    with ResultStore(run_dir).lock():
        ready.set()
        release.wait(30)


def test_the_writer_lock_refuses_a_second_writer_while_the_first_lives(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunLockedError, match=f"process {holder.pid}"), \
                ResultStore(tmp_path).lock():
            pass
    finally:
        release.set()
        holder.join(30)
    with ResultStore(tmp_path).lock():  # released: free again
        assert ResultStore(tmp_path).lock_file.is_file()
    assert not ResultStore(tmp_path).lock_file.exists()


def test_a_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    holder.start()
    assert ready.wait(30)
    os.kill(holder.pid, 9)  # SIGKILL: the lock file stays behind
    holder.join(30)
    store = ResultStore(tmp_path)
    assert json.loads(store.lock_file.read_text())["pid"] == holder.pid
    started = time.monotonic()
    with store.lock():
        assert json.loads(store.lock_file.read_text())["pid"] == os.getpid()
    assert time.monotonic() - started < 5
