"""The `salbench` command as a user runs it: a real process, its exit code and what it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from salbench.cli import app
from salbench.results import ResultStore, query

SALBENCH = [sys.executable, "-m", "salbench"]


def in_process(*args: str):
    """The same command run in this process (the real code path, without interpreter start-up)."""
    return CliRunner().invoke(app, list(args))


def salbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SALBENCH, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=900, check=False)


def test_results_prints_a_table_of_the_query(tmp_path):
    rows = [{"dataset": "d", "model_id": "m", "method": "saliency", "metric": metric,
             "sample_id": str(i), "value": 0.5} for metric in ("a", "b") for i in range(3)]
    ResultStore(tmp_path).write_rows("job", rows, {"study": "s", "run": "r"})
    done = salbench("results", "--run", str(tmp_path),
                    "select metric, count(*) as n from results group by 1 order by 1")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "│" in line or "┃" in line]
    assert any("metric" in line and "n" in line for line in lines)
    assert sum(line.split("│")[1].strip() in ("a", "b") for line in lines if "│" in line) == 2


def test_bad_sql_and_missing_run_are_one_line_errors(tmp_path):
    done = in_process("results", "--run", str(tmp_path), "select nope from results")
    assert done.exit_code == 2 and "error: sql:" in done.stderr
    done = in_process("results", "--run", str(tmp_path / "missing"), "select 1")
    assert done.exit_code == 2 and "is not a run folder" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["study", "run", "nosuch"], "study must be one of"),
    (["study", "run", "quickstart", "--preset", "huge"], "--preset must be one of"),
    (["study", "run", "quickstart", "--set", "n_sample=3"], "unknown key 'n_sample'"),
    (["study", "run", "quickstart", "--set", "n_samples=-1"], "n_samples = -1"),
    (["study", "run", "quickstart", "--executor", "dask"], "--executor must be one of"),
    (["study", "run", "quickstart", "--set", "parts.mri.methods=[{name: nosuch}]"],
     "method must be one of"),
])
def test_bad_study_input_fails_before_any_work(tmp_path, args, message):
    done = in_process(*args, "--out", str(tmp_path / "run"))
    assert done.exit_code == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_every_command_has_help_with_an_example():
    commands = ("quickstart", "report", "results", "study run", "study list", "data cells",
                "data mri-lesions", "data preview")
    for command in commands:
        done = in_process(*command.split(), "--help")
        assert done.exit_code == 0, (command, done.output)
        assert "Example" in done.stdout, command


MINI = ["--set", "n_samples=3", "--set", "gallery=1",
        "--set", "parts.mri.data.n=90", "--set", "parts.mri.data.size=64",
        "--set", "parts.mri.data.params={slices_per_subject: 10}",
        "--set", "parts.cells.data.n=120",
        "--set", "parts.cells.data.params.shard_size=20",
        "--set", "parts.mri.train.epochs=1", "--set", "parts.cells.train.epochs=1",
        "--set", "parts.mri.methods=[{name: saliency}, {name: lrp_0}]",
        "--set", "parts.cells.methods=[{name: input_x_gradient}, {name: cam}]"]


def test_a_shrunken_quickstart_runs_end_to_end_into_results_and_report(tmp_path):
    run = tmp_path / "qs"
    done = salbench("study", "run", "quickstart", "--quiet", "--device", "cpu", "--out",
                    str(run), *MINI)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (run / "config.yaml").is_file() and (run / "report" / "index.html").is_file()
    counts = query(run, "select dataset, method, count(distinct metric) as metrics "
                        "from results where method != 'model' group by 1, 2 order by 1, 2")
    assert set(counts.method) == {"saliency", "lrp_0", "input_x_gradient", "cam"}
    # every metric of the preset was scored for every method: five-band yields 9 result metrics,
    # pixel flipping and AOPC a score and a mean curve each, max-sensitivity 1, HAAS 2, and the
    # model randomisation one per layer for the sanity-checked saliency
    per_method = dict(zip(counts.method, counts.metrics))
    assert per_method["input_x_gradient"] == per_method["cam"] == 2 * 9 + 5 + 2
    assert per_method["lrp_0"] == 8 + 5 + 2
    assert per_method["saliency"] > per_method["lrp_0"] + 10
    html = (run / "report" / "index.html").read_text()
    assert "Quickstart" in html and "Leaderboard" in html
    rerun = salbench("study", "run", "quickstart", "--quiet", "--device", "cpu", "--out",
                     str(run), *MINI)
    assert rerun.returncode == 0 and "0 done" in rerun.stdout


@pytest.mark.slow
def test_a_study_killed_mid_run_resumes_to_the_rows_of_an_uninterrupted_run(tmp_path):
    import os
    import signal
    import time

    from salbench.results import read_results

    killed, clean = tmp_path / "killed", tmp_path / "clean"
    args = [*SALBENCH, "study", "run", "quickstart", "--quiet", "--device", "cpu", "--no-report"]
    child = subprocess.Popen([*args, "--out", str(killed), *MINI], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store, deadline = ResultStore(killed), time.monotonic() + 600
    while len(store.finished()) < 6 and child.poll() is None:  # data, train, some explain jobs
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert len(store.finished()) < 2 + 2 + 4, "the kill did not land mid-study"
    for out in (killed, clean):
        done = subprocess.run([*args, "--out", str(out), *MINI], capture_output=True, text=True,
                              timeout=900, check=False)
        assert done.returncode == 0, done.stderr
    drop = ["run"]
    pd.testing.assert_frame_equal(read_results(killed).drop(columns=drop),
                                  read_results(clean).drop(columns=drop))
