"""The `salbench` command as a user runs it: a real process, its exit code and what it prints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from salbench.cli import app
from salbench.metrics import get_metric
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
             "output": metric, "sample_id": str(i), "value": 0.5, "direction": "higher"}
            for metric in ("a", "b") for i in range(3)]
    ResultStore(tmp_path).write("job", rows, {"study": "s", "run": "r"})
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
                "data mri-lesions", "data preview", "metrics", "methods", "evaluate", "explain",
                "train")
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


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory) -> Path:
    """One shrunken quickstart run through the real command (the other tests copy it)."""
    run = tmp_path_factory.mktemp("qs") / "run"
    done = salbench("study", "run", "quickstart", "--quiet", "--device", "cpu", "--out",
                    str(run), *MINI)
    assert done.returncode == 0, done.stdout + done.stderr
    return run


def test_a_shrunken_quickstart_runs_end_to_end_into_results_and_report(quickstart_run):
    run = quickstart_run
    assert (run / "config.yaml").is_file() and (run / "report" / "index.html").is_file()
    counts = query(run, "select method, count(distinct metric || '.' || output) as scores "
                        "from results group by 1 order by 1")
    assert set(counts.method) == {"saliency", "lrp_0", "input_x_gradient", "cam"}
    # every metric of the preset for every method: two five-band schedules x 8 outputs (one
    # metric, so 8 distinct outputs: 7 scores and the density), region perturbation, AOPC,
    # max-sensitivity, HAAS's 2 outputs; the MRI ground-truth metrics (8); the randomisation
    # test for saliency only
    per_method = dict(zip(counts.method, counts.scores))
    assert per_method["input_x_gradient"] == per_method["cam"] == 8 + 5
    assert per_method["lrp_0"] == 8 + 5 and per_method["saliency"] == 8 + 5 + 1
    # one explain-and-score job per model, and each result row carries the registry's direction
    jobs = [json.loads(line) for line in (run / "results" / "manifest.jsonl").open()]
    assert len(jobs) == 2 + 2 + 2 + 2  # data, train, explain and score, gallery
    directions = query(run, "select distinct metric, output, direction from results")
    assert set(directions.direction) <= {"higher", "lower", "none"}
    for metric, output, direction in directions.itertuples(index=False):
        assert get_metric(metric).direction(output) == direction or metric == "region_perturbation"
    html = (run / "report" / "index.html").read_text()
    assert "Quickstart" in html and "Leaderboard" in html
    rerun = salbench("study", "run", "quickstart", "--quiet", "--device", "cpu", "--out",
                     str(run), *MINI)
    assert rerun.returncode == 0 and "0 done" in rerun.stdout


def test_meta_on_the_quickstarts_mri_model_trusts_the_mask_over_the_random_map(quickstart_run,
                                                                                tmp_path):
    """``salbench meta`` on the quickstart's MRI model and test data: the trust table is
    printed; the ground-truth metrics tell the mask from the random map, and a metric that
    cannot (``finite``: every map is finite) is flagged; with ``--linear`` the MoRF curve is
    judged on the linear reference too."""
    model = next((quickstart_run / "models").glob("mri*.safetensors"))
    data = next((quickstart_run / "data").glob("mri*"))
    out = tmp_path / "meta"
    done = salbench("meta", "--model", str(model), "--data", str(data), "--metrics",
                    "top_k_precision,relevance_mass_accuracy,finite,region_perturbation",
                    "--seeds", "2", "--n-samples", "8", "--linear", "--out", str(out),
                    "--device", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Which metrics to trust" in done.stdout and "linear reference" in done.stdout
    trust = pd.read_parquet(out / "trust.parquet").set_index("score")
    for name in ("top_k_precision", "relevance_mass_accuracy"):
        assert trust.loc[name, "low:uniform_random"] > 0, trust.loc[name].to_dict()
        assert trust.loc[name, "effect:uniform_random"] > 0.5
    assert trust.loc["finite", "verdict"] == "flagged"
    linear = pd.read_parquet(out / "linear" / "trust.parquet")
    assert list(linear["metric"]) == ["region_perturbation"]


def test_a_changed_gallery_size_reruns_no_scoring_job(quickstart_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(quickstart_run, run)
    config = (run / "config.yaml").read_text().replace("gallery: 1", "gallery: 2")
    (run / "config.yaml").write_text(config)  # the same run with a larger gallery
    args = [a if a != "gallery=1" else "gallery=2" for a in MINI]
    done = salbench("study", "run", "quickstart", "--quiet", "--device", "cpu", "--out",
                    str(run), "--no-report", *args)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    assert lines["explain and score"].strip().startswith("0 done, 2 already done")
    assert lines["gallery"].strip().startswith("2 done")


def test_a_torn_manifest_line_is_reported_and_a_rerun_repairs_it(quickstart_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(quickstart_run, run)
    manifest = run / "results" / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    explain_line = next(i for i, line in enumerate(lines) if '"results"' in line)
    lines[explain_line] = lines[explain_line][:25]  # a writer killed while recording the job
    manifest.write_text("\n".join(lines) + "\n")
    done = salbench("results", "--run", str(run), "select count(*) as n from results")
    assert done.returncode == 0
    assert "warning: 1 manifest line(s) are torn" in done.stderr
    assert "result part(s) belong to no finished job" in done.stderr
    rerun = salbench("study", "run", "quickstart", "--quiet", "--device", "cpu", "--out",
                     str(run), "--no-report", *MINI)
    assert rerun.returncode == 0 and "explain and score: 1 done, 1 already done" in rerun.stdout
    clean = query(quickstart_run, "select count(*) as n from results")["n"][0]
    assert query(run, "select count(*) as n from results")["n"][0] == clean
    assert ResultStore(run).problems() == [
        "1 manifest line(s) are torn (a writer was killed while recording a job); those jobs "
        "count as not done"]


def test_a_truncated_part_is_a_one_line_warning_in_report_and_a_rerun_repairs_it(
        quickstart_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(quickstart_run, run)
    part = max((run / "results" / "parts" / "results").glob("*.parquet"),
               key=lambda p: p.stat().st_size)
    part.write_bytes(part.read_bytes()[:1000])
    done = salbench("report", str(run))
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "1 finished job(s) have missing or unreadable" in warning[0]
    assert "Traceback" not in done.stderr
    assert "Incomplete results" in (run / "report" / "index.html").read_text()
    rerun = salbench("study", "run", "quickstart", "--quiet", "--device", "cpu", "--out",
                     str(run), "--no-report", *MINI)
    assert rerun.returncode == 0 and "explain and score: 1 done" in rerun.stdout
    assert ResultStore(run).problems() == []


HOLD_LOCK = """
import sys, time
from salbench.results import ResultStore
with ResultStore(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_study_run_into_a_folder_being_written_is_refused(quickstart_run, tmp_path):
    """A live writer (here a process holding the run's lock, as ``study run`` does while it
    runs) makes a second ``study run`` into the folder fail at once, naming the lock; once the
    writer is killed its stale lock is taken over."""
    run = tmp_path / "run"
    shutil.copytree(quickstart_run, run)
    writer = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        second = salbench("study", "run", "quickstart", "--quiet", "--device", "cpu", "--out",
                          str(run), "--no-report", *MINI)
        assert second.returncode == 2
        assert f"being written by process {writer.pid}" in second.stderr
        assert "writer.lock" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        writer.kill()
        writer.wait()
    after = salbench("study", "run", "quickstart", "--quiet", "--device", "cpu", "--out",
                     str(run), "--no-report", *MINI)
    assert after.returncode == 0 and "explain and score: 0 done, 2 already done" in after.stdout


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
