"""One stage of a study at any preset, timed job by job on this machine's device, and the whole
stage extrapolated from the jobs timed (issue 14, item 5: the documents' ``paper`` stages on a GPU,
whose full runs take longer than a lent GPU's minutes).

The stages before STAGE run first, as the preset says or made smaller with ``--set`` (they give
STAGE its data and models: their wall times are printed but are not the measurement); ``--skip``
leaves out earlier stages STAGE does not read (cam-faithfulness's table 1). Then ``--warmup`` jobs
of STAGE run untimed (caches, traced copies, cuDNN's autotuning), then ``--jobs`` of the rest,
evenly spaced over them, are timed one by one (CUDA synchronised before and after), and the
stage's estimate is its job count times their mean. Spacing spreads the timed jobs over a grid's
factors (lrp-grid's jobs run composite by composite and stabiliser by stabiliser, and the vanilla
stabiliser's grid points that give no finite map score nothing), so there the estimate holds;
where the jobs differ in kind (cam-faithfulness: one model and one metric family per job) every
job's time is printed, and timing them all (``--jobs 0``) is the measurement. The rows a timed
job returns are counted, not stored.

    python benchmarks/stages.py lrp-grid --preset paper --stage grid --jobs 6 --set train.epochs=1
    python benchmarks/stages.py cam-faithfulness --preset paper --stage "explain and score" \\
        --warmup 0 --jobs 0 --skip "table 1" --set train.epochs=1 --set n_samples=64 --set n_haas=64
    python benchmarks/stages.py lrp-grid --preset tiny --stage grid --jobs 2 --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from salbench.runtime import execute, resolve_device, set_quiet
from salbench.studies import get_study
from salbench.studies.base import prepare_run_dir
from salbench.studies.executors import make_executor


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def result_rows(result: object) -> int:
    """Rows a job returned (``{table: rows}`` or a list of rows)."""
    if isinstance(result, dict):
        return sum(len(v) for v in result.values() if isinstance(v, list))
    return len(result) if isinstance(result, list) else 0


def time_stage(name: str, preset: str, stage_name: str, sets: list[str], skip: list[str],
               warmup: int, jobs: int, device: torch.device, run_dir: Path) -> None:
    study = get_study(name)
    config = study.config(preset, sets)
    stages = study.stages(config)
    names = [s.name for s in stages]
    for label, wanted in [("--stage", [stage_name]), ("--skip", skip)]:
        unknown = [s for s in wanted if s not in names]
        if unknown:
            raise SystemExit(f"{label}: {unknown} is not a stage of {name}; its stages: {names}")
    prepare_run_dir(run_dir, config, study.name, preset)
    runner = make_executor("local", str(device))
    for stage in stages[:names.index(stage_name)]:
        if stage.name in skip:
            print(f"{stage.name:<28} skipped")
            continue
        start = time.perf_counter()
        summary = runner.run(stage.expand(run_dir), run_dir, description=f"{name}: {stage.name}")
        print(f"{stage.name:<28} {time.perf_counter() - start:8.1f} s  "
              f"({len(summary.done)} jobs, not the measurement)", flush=True)
        if summary.failed:
            raise SystemExit(f"stage {stage.name!r} failed: {summary.failed[:3]}")
    target = stages[names.index(stage_name)].expand(run_dir)
    rest = target[warmup:]
    timed = rest if jobs == 0 or jobs >= len(rest) else [
        rest[i * len(rest) // jobs] for i in range(jobs)]
    if not timed:
        raise SystemExit(f"--stage {stage_name!r} has {len(target)} jobs: none left to time "
                         f"after --warmup {warmup}")
    for job in target[:warmup]:
        execute(job, run_dir, str(device))
    seconds = []
    for job in timed:
        synchronise(device)
        start = time.perf_counter()
        rows = result_rows(execute(job, run_dir, str(device)))
        synchronise(device)
        seconds.append(time.perf_counter() - start)
        print(f"  {job.label or job.key:<60} {seconds[-1]:8.2f} s  {rows} rows", flush=True)
    mean = statistics.fmean(seconds)
    print(f"{name} --preset {preset}, stage {stage_name!r} on {device_name(device)}: "
          f"{len(seconds)} of {len(target)} jobs timed after {warmup} untimed, "
          f"mean {mean:.2f} s, median {statistics.median(seconds):.2f} s per job; "
          f"whole stage estimated at {len(target) * mean:.0f} s "
          f"({len(target) * mean / 60:.1f} min)"
          + (" (every job after the warm-up timed)" if len(seconds) + warmup == len(target)
             else ""))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="study name (salbench study list)")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--stage", required=True, help="the stage timed, by its name")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="config override key=value (repeat), as salbench study run")
    parser.add_argument("--skip", action="append", default=[],
                        help="an earlier stage the timed one does not need (repeat)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed jobs first")
    parser.add_argument("--jobs", type=int, default=4, help="jobs timed (0: all the rest)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, help="run folder (default: a temporary one)")
    args = parser.parse_args()
    if args.warmup < 0 or args.jobs < 0:
        parser.error("--warmup and --jobs must be >= 0")
    set_quiet(True)
    device = resolve_device(args.device)
    if args.out is not None:
        time_stage(args.study, args.preset, args.stage, args.sets, args.skip, args.warmup,
                   args.jobs, device, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        time_stage(args.study, args.preset, args.stage, args.sets, args.skip, args.warmup,
                   args.jobs, device, Path(tmp) / args.study)


if __name__ == "__main__":
    sys.exit(main())
