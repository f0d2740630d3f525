"""The results store: append-only Parquet parts per job and table, a manifest, a writer lock, and
DuckDB over it all.

Layout under ``<run>/results/``::

    parts/<table>/<job_key>.parquet   rows one job wrote to one table (temp file, fsync, rename)
    manifest.jsonl                    one JSON line per finished job: {"key", "parts", "finished"},
                                      ``parts`` = {table: row count}
    failures.jsonl                    one JSON line per failed attempt: {"key", "error", "time"}
    writer.lock                       held by the one process writing the run (JSON: pid, host,
                                      process start, command, since)

A job is **done** when its manifest line is complete and every part it lists exists and holds
the listed number of rows. Anything else is not done and a rerun redoes it, replacing its parts:
a process killed at any point, a torn manifest line, a deleted or truncated part. Reading never
drops rows silently: :meth:`ResultStore.problems` describes every job or part left out, and the
CLI and the report print it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from salbench.results.tables import SCHEMAS, TABLES, Rows, to_table

LOCK_NAME = "writer.lock"


class RunLockedError(RuntimeError):
    """Another live process is writing the run folder."""


@dataclass
class StoreStatus:
    """What :meth:`ResultStore.status` found: ``done`` job keys with intact parts, ``broken``
    finished jobs whose parts are missing or unreadable (key -> reason), ``torn`` manifest lines
    that do not parse, ``orphans`` part files no complete manifest entry lists."""

    done: dict[str, dict[str, int]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    torn: int = 0
    orphans: list[Path] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One human-readable line per kind of problem (empty when the store is intact)."""
        out = []
        if self.broken:
            key, reason = next(iter(self.broken.items()))
            out.append(f"{len(self.broken)} finished job(s) have missing or unreadable result "
                       f"parts and are left out (e.g. {key}: {reason}); rerun the study or "
                       "command to redo them")
        if self.torn:
            out.append(f"{self.torn} manifest line(s) are torn (a writer was killed while "
                       "recording a job); those jobs count as not done")
        if self.orphans:
            out.append(f"{len(self.orphans)} result part(s) belong to no finished job and are "
                       "left out (an interrupted job); a rerun replaces them")
        return out


class ResultStore:
    """Parquet parts + manifest for one run folder (see the module docstring for the layout)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "results"
        self.parts = self.root / "parts"
        self.manifest = self.root / "manifest.jsonl"
        self.failures = self.root / "failures.jsonl"
        self.lock_file = self.root / LOCK_NAME

    def part_path(self, table: str, job_key: str) -> Path:
        return self.parts / table / f"{job_key}.parquet"

    # ---------------------------------------------------------------- writing

    def write(self, job_key: str, tables: Mapping[str, Rows | None] | Rows | None,
              defaults: Mapping[str, str] | None = None) -> dict[str, int]:
        """Write one finished job's rows, one part per non-empty table, then its manifest line.

        ``tables`` maps table names (:data:`~salbench.results.tables.TABLES`) to rows; plain rows
        (a list or DataFrame) go to ``results``; ``None`` records a job without rows. Missing
        key columns come from ``defaults`` (``study``, ``run``). Returns rows per table.
        """
        _check_key(job_key)
        if tables is None:
            tables = {}
        elif not isinstance(tables, Mapping):
            tables = {"results": tables}
        unknown = sorted(set(tables) - set(TABLES))
        if unknown:
            raise ValueError(f"tables must be among {TABLES}, got {unknown}")
        arrow = {name: to_table(name, rows, defaults or {}) for name, rows in tables.items()}
        counts = {}
        for name, table in arrow.items():
            if not table.num_rows:
                continue
            final = self.part_path(name, job_key)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{job_key}.{os.getpid()}.tmp")
            pq.write_table(table, tmp)
            _fsync(tmp)
            os.replace(tmp, final)
            counts[name] = table.num_rows
        _append_jsonl(self.manifest, {"key": job_key, "parts": counts, "finished": time.time()})
        return counts

    def record_failure(self, job_key: str, error: str) -> None:
        """Record a failed job attempt (no rows are written for it)."""
        _append_jsonl(self.failures, {"key": job_key, "error": error, "time": time.time()})

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's writer lock: refuse (:class:`RunLockedError`) while another live process
        holds it; take over a stale one (its process is gone)."""
        self.root.mkdir(parents=True, exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:200]}
        tmp = self.lock_file.with_name(f".{LOCK_NAME}.{os.getpid()}")
        tmp.write_text(json.dumps(mine))
        try:
            while True:
                try:  # link(): the lock appears atomically with its content, or not at all
                    os.link(tmp, self.lock_file)
                    break
                except FileExistsError:
                    holder = _read_lock(self.lock_file)
                    if holder is not None and _alive(holder):
                        raise RunLockedError(
                            f"run folder {str(self.run_dir)!r} is being written by process "
                            f"{holder.get('pid')} on {holder.get('host')} since "
                            f"{holder.get('since')} (lock {self.lock_file}); wait for it to "
                            "finish, or delete the lock if that process is gone") from None
                    self.lock_file.unlink(missing_ok=True)  # stale: its process is gone
        finally:
            tmp.unlink(missing_ok=True)
        try:
            yield
        finally:
            holder = _read_lock(self.lock_file)
            if holder is not None and holder.get("pid") == mine["pid"]:
                self.lock_file.unlink(missing_ok=True)

    # ---------------------------------------------------------------- reading

    def status(self) -> StoreStatus:
        """Check every manifest entry against its parts (see :class:`StoreStatus`)."""
        status = StoreStatus()
        entries, status.torn = _read_jsonl(self.manifest)
        listed = set()
        for entry in entries:
            key, parts = entry.get("key"), entry.get("parts")
            if not isinstance(key, str) or not isinstance(parts, dict):
                status.torn += 1
                continue
            listed |= {self.part_path(t, key) for t in parts}
            reason = self._check_parts(key, parts)
            if reason is None:
                status.done[key] = parts
                status.broken.pop(key, None)
            elif key not in status.done:
                status.broken[key] = reason
        if self.parts.is_dir():
            status.orphans = sorted(p for p in self.parts.glob("*/*.parquet") if p not in listed)
        return status

    def _check_parts(self, key: str, parts: Mapping[str, int]) -> str | None:
        for table, rows in parts.items():
            path = self.part_path(table, key)
            if not path.is_file():
                return f"part {table}/{path.name} is missing"
            try:
                found = pq.read_metadata(path).num_rows
            except Exception as err:
                return f"part {table}/{path.name} is unreadable ({type(err).__name__})"
            if found != rows:
                return f"part {table}/{path.name} holds {found} rows, the manifest {rows}"
        return None

    def finished(self) -> set[str]:
        """Keys of the jobs whose rows are completely written and readable."""
        return set(self.status().done)

    def failed(self) -> dict[str, str]:
        """Last recorded error per job key that has not finished since."""
        done = self.finished()
        entries, _ = _read_jsonl(self.failures)
        return {e["key"]: e["error"] for e in entries if e.get("key") not in done}

    def problems(self) -> list[str]:
        return self.status().problems()

    def part_files(self, table: str = "results", status: StoreStatus | None = None) -> list[Path]:
        """Part files of ``table`` of every done job."""
        status = status or self.status()
        return sorted(self.part_path(table, key) for key, parts in status.done.items()
                      if table in parts)


def connect(run_dir: str | Path) -> tuple[duckdb.DuckDBPyConnection, StoreStatus]:
    """A DuckDB connection with one view per table over the done jobs' parts (factor columns
    unioned by name) and the store's status."""
    store = ResultStore(run_dir)
    if not store.run_dir.is_dir():
        raise FileNotFoundError(f"run_dir {str(store.run_dir)!r} is not a run folder")
    status = store.status()
    con = duckdb.connect()
    for table in TABLES:
        files = [str(p) for p in store.part_files(table, status)]
        if files:
            con.read_parquet(files, union_by_name=True).create_view(table)
        else:
            con.register(f"_empty_{table}", SCHEMAS[table].empty_table())
            con.execute(f"create view {table} as select * from _empty_{table}")
    return con, status


def query(run_dir: str | Path, sql: str) -> pd.DataFrame:
    """Run DuckDB ``sql`` over the views ``results``, ``curves``, ``summaries`` and
    ``predictions`` (every done job's rows) and return a frame."""
    con, _ = connect(run_dir)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def read_results(run_dir: str | Path, table: str = "results") -> pd.DataFrame:
    """All rows of one table of a run, factor columns included, in a reproducible order."""
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")
    order = [c for c in SCHEMAS[table].names if c not in ("value", "x", "meta", "true",
                                                          "predicted", "correct")]
    return query(run_dir, f"select * from {table} order by {', '.join(order)}")


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


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Entries of a JSONL file and the number of lines that do not parse (torn writes)."""
    if not path.is_file():
        return [], 0
    entries, torn = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            torn += 1
    return entries, torn


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _process_start(pid: int | None = None) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid or os.getpid()}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(holder: Mapping[str, Any]) -> bool:
    """Whether the lock's process still runs (a lock from another host counts as alive)."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = holder.get("start")
    return start is None or _process_start(pid) in (None, start)
