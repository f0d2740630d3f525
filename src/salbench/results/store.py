"""The results store: append-only Parquet parts of long rows, a manifest of finished jobs, DuckDB.

Layout under ``<run>/results/``::

    parts/<job_key>.parquet   the rows one job wrote (written to a temp file, then renamed)
    manifest.jsonl            one JSON line per finished job: {"key", "rows", "finished"}
    failures.jsonl            one JSON line per failed attempt: {"key", "error", "time"}

A job counts as finished only once its manifest line is written, and only finished jobs' parts
are read, so a process killed at any point leaves the store consistent: a rerun redoes the
unfinished job and its part (named by the job key) is replaced, never duplicated.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = ("study", "run", "dataset", "model_id", "method", "metric", "sample_id", "value",
           "params", "meta")
SCHEMA = pa.schema([(name, pa.float64() if name == "value" else pa.string()) for name in COLUMNS])


class ResultStore:
    """Parquet parts + manifest for one run folder (see the module docstring for the layout)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "results"
        self.parts = self.root / "parts"
        self.manifest = self.root / "manifest.jsonl"
        self.failures = self.root / "failures.jsonl"

    def finished(self) -> set[str]:
        """Keys of the jobs whose rows are completely written."""
        return {entry["key"] for entry in _read_jsonl(self.manifest)}

    def write_rows(self, job_key: str, rows: pd.DataFrame | Iterable[Mapping[str, Any]] | None,
                   defaults: Mapping[str, str] | None = None) -> int:
        """Write one finished job's rows atomically and record the job in the manifest.

        ``rows`` holds the columns of :data:`COLUMNS`; missing string columns are taken from
        ``defaults`` (e.g. ``study`` and ``run``) and dict-valued ``params``/``meta`` become JSON.
        Returns the number of rows written. A job with no rows is still recorded as finished.
        """
        _check_key(job_key)
        table = to_table(rows, defaults or {})
        if table.num_rows:
            self.parts.mkdir(parents=True, exist_ok=True)
            final = self.parts / f"{job_key}.parquet"
            tmp = self.parts / f".{job_key}.{os.getpid()}.tmp"
            pq.write_table(table, tmp)
            _fsync(tmp)
            os.replace(tmp, final)
        _append_jsonl(self.manifest, {"key": job_key, "rows": table.num_rows,
                                      "finished": time.time()})
        return table.num_rows

    def record_failure(self, job_key: str, error: str) -> None:
        """Record a failed job attempt (no rows are written for it)."""
        _append_jsonl(self.failures, {"key": job_key, "error": error, "time": time.time()})

    def failed(self) -> dict[str, str]:
        """Last recorded error per job key that has not finished since."""
        done = self.finished()
        return {e["key"]: e["error"] for e in _read_jsonl(self.failures) if e["key"] not in done}

    def part_files(self) -> list[Path]:
        return sorted(p for key in self.finished()
                      if (p := self.parts / f"{key}.parquet").is_file())


def to_table(rows: pd.DataFrame | Iterable[Mapping[str, Any]] | None,
             defaults: Mapping[str, str]) -> pa.Table:
    """Normalise rows to the store's schema, filling columns from ``defaults``."""
    if rows is None:
        frame = pd.DataFrame(columns=list(COLUMNS))
    elif isinstance(rows, pd.DataFrame):
        frame = rows.copy()
    else:
        frame = pd.DataFrame(list(rows))
    unknown = set(frame.columns) - set(COLUMNS)
    if unknown:
        raise ValueError(f"rows: unknown columns {sorted(unknown)}; allowed: {list(COLUMNS)}")
    for name in COLUMNS:
        if name in frame.columns:
            continue
        if name in defaults:
            frame[name] = defaults[name]
        elif name in ("params", "meta"):
            frame[name] = "{}"
        else:
            raise ValueError(f"rows: column {name!r} is missing and has no default")
    for name in ("params", "meta"):
        frame[name] = [v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
                       for v in frame[name]]
    for name in COLUMNS:
        if name != "value" and name not in ("params", "meta"):
            frame[name] = frame[name].astype(str)
    frame["value"] = pd.to_numeric(frame["value"], errors="raise").astype("float64")
    return pa.Table.from_pandas(frame[list(COLUMNS)], schema=SCHEMA, preserve_index=False)


def query(run_dir: str | Path, sql: str) -> pd.DataFrame:
    """Run DuckDB ``sql`` over the view ``results`` (all finished rows of the run) and return a frame."""
    store = ResultStore(run_dir)
    if not store.run_dir.is_dir():
        raise FileNotFoundError(f"run_dir {str(store.run_dir)!r} is not a run folder")
    con = duckdb.connect()
    try:
        files = [str(p) for p in store.part_files()]
        if files:
            con.read_parquet(files).create_view("results")
        else:
            con.register("empty_results", SCHEMA.empty_table())
            con.execute("create view results as select * from empty_results")
        return con.execute(sql).df()
    finally:
        con.close()


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """All finished rows of a run, ordered for reproducible comparisons."""
    order = ", ".join(c for c in COLUMNS if c not in ("value", "params", "meta"))
    return query(run_dir, f"select * from results order by {order}, params")


def _check_key(key: str) -> None:
    if not key or not all(c.isalnum() or c in "-_" for c in key):
        raise ValueError(f"job_key must be a non-empty string of letters, digits, '-' or '_', "
                         f"got {key!r}")


def _append_jsonl(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, sort_keys=True) + "\n"
    with open(path, "a+b") as handle:
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":  # a torn line left by a killed writer: close it off
                line = "\n" + line
        handle.write(line.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Entries of a JSONL file; a torn last line (process killed mid-write) is ignored."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
