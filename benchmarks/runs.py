"""Whole runs, stage by stage: where the time of ``salbench quickstart`` and of one ``small``
study goes (issue 14, item 4).

Each stage's wall time is split, exclusively, into
- model passes: outermost ``nn.Module`` calls (global forward hooks), autograd backward /
  ``torch.autograd.grad`` calls and the fast LRP backend's node-by-node forward and relevance
  backward (``run_forward``, ``run_backward``: its pass through the model, with explicit tensor
  operations instead of autograd), nested passes counted once;
- optimiser steps (global step hooks);
- the documented CPU-bound steps: image synthesis (``make_chunk`` of the generators), the Telea
  and fast inpainting fills of the perturbation metrics, convex hulls (GAD's region metrics),
  the sorts of the rank-based metrics (Spearman of the randomisation checks, AUROC, average
  precision, top-k precision: ``sort_rows`` and ``_rank_order``, the metric's own O(n log n)
  work per map, like a hull);
- the rest: Python, tables, files, progress bars.
Jobs that explain and score are split further into explaining (``salbench.explain.explain``
and ``lrp_grid_maps`` outside a metric) and scoring (``salbench.metrics.score``, which
re-explains for max-sensitivity); a stage's job shell (loading, result rows) is its rows
without a phase. The report is the HTML report written after the run. Target: the rest is at
most 10 % of every whole stage's wall time (shell and phases together; each phase is printed
too); the report stage is all rest by nature and is listed as a fraction of the whole run.

    .venv/bin/python benchmarks/runs.py                        # quickstart + lrp-grid small
    .venv/bin/python benchmarks/runs.py --quick                # quickstart only
    .venv/bin/python benchmarks/runs.py --small gad --threads 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

import salbench.data.cells
import salbench.data.mri_lesions
import salbench.explain
import salbench.explain.lrp_fast
import salbench.metrics
import salbench.metrics._checks
import salbench.metrics.groundtruth
import salbench.metrics.perturbation
import salbench.metrics.regions
import salbench.studies.executors
from salbench.cli.report import write_report
from salbench.runtime import set_quiet
from salbench.studies import get_study, run_study

PASSES, OPTIMISER, CPU_BOUND, REST = "model passes", "optimiser", "CPU-bound steps", "rest"
KINDS = (PASSES, OPTIMISER, CPU_BOUND, REST)
TARGET_REST = 0.10


class Tally:
    """Exclusive time per (stage, phase, kind) on the main thread: each interval is charged to
    the innermost open kind (a Telea fill inside a metric is CPU-bound, a model pass inside it
    a pass)."""

    def __init__(self):
        self.seconds: dict[tuple[str, str, str], float] = defaultdict(float)
        self.stage, self.kinds, self.phases = "setup", [REST], []
        self.mark = time.perf_counter()
        self.main = threading.main_thread()

    def _charge(self) -> None:
        now = time.perf_counter()
        phase = self.phases[0] if self.phases else ""
        self.seconds[self.stage, phase, self.kinds[-1]] += now - self.mark
        self.mark = now

    def open(self, kind: str) -> None:
        if threading.current_thread() is self.main:
            self._charge()
            self.kinds.append(kind)

    def close(self) -> None:
        if threading.current_thread() is self.main:
            self._charge()
            self.kinds.pop()

    def enter_phase(self, phase: str) -> None:
        self._charge()
        self.phases.append(phase)

    def leave_phase(self) -> None:
        self._charge()
        self.phases.pop()

    def set_stage(self, stage: str) -> None:
        self._charge()
        self.stage = stage


def bracket(fn, before, after):
    """``fn`` with every call bracketed by ``before()`` and ``after()``."""
    def timed(*args, **kwargs):
        before()
        try:
            return fn(*args, **kwargs)
        finally:
            after()

    return timed


def wrap(owner, name: str, before, after) -> None:
    """Replace ``owner.name`` by its bracketed call."""
    setattr(owner, name, bracket(getattr(owner, name), before, after))


def instrument(tally: Tally) -> None:
    """Install the timers (process-wide; this benchmark runs nothing else)."""
    depth = [0]  # model calls open on the main thread (worker threads are not timed)

    def pass_start(*_):
        if threading.current_thread() is tally.main:
            depth[0] += 1
            if depth[0] == 1:
                tally.open(PASSES)

    def pass_end(*_):
        if threading.current_thread() is tally.main:
            depth[0] -= 1
            if depth[0] == 0:
                tally.close()

    torch.nn.modules.module.register_module_forward_pre_hook(lambda *_: pass_start())
    torch.nn.modules.module.register_module_forward_hook(lambda *_: pass_end(), always_call=True)
    for name in ("backward", "grad"):
        wrap(torch.autograd, name, pass_start, pass_end)
    for name in ("run_forward", "run_backward"):  # looked up as module globals by fast_lrp_maps
        wrap(salbench.explain.lrp_fast, name, pass_start, pass_end)
    register_optimizer_step_pre_hook(lambda *_: tally.open(OPTIMISER))
    register_optimizer_step_post_hook(lambda *_: tally.close())

    def cpu_bound(owner, name):
        wrap(owner, name, lambda: tally.open(CPU_BOUND), tally.close)

    cpu_bound(salbench.data.cells, "make_chunk")
    cpu_bound(salbench.data.mri_lesions, "make_chunk")
    cpu_bound(salbench.metrics.perturbation, "inpaint_telea_parallel")
    cpu_bound(salbench.metrics.perturbation, "fast_inpaint")
    cpu_bound(salbench.metrics.regions, "convex_hull_masks")
    cpu_bound(salbench.metrics._checks, "sort_rows")  # average_ranks' global lookup
    cpu_bound(salbench.metrics.groundtruth, "sort_rows")  # imported by name there
    cpu_bound(salbench.metrics.groundtruth, "_rank_order")
    # Every salbench module's reference to explain and score; metrics re-explain through
    # explain_fn, so a phase opened inside "scoring" stays scoring.
    for fn, phase in ((salbench.explain.explain, "explaining"),
                      (salbench.explain.lrp_grid_maps, "explaining"),
                      (salbench.metrics.score, "scoring")):
        timed = bracket(fn, lambda phase=phase: tally.enter_phase(phase), tally.leave_phase)
        for module in [m for name, m in sys.modules.items() if name.startswith("salbench")]:
            for attr, value in list(vars(module).items()):
                if value is fn:
                    setattr(module, attr, timed)

    run = salbench.studies.executors.LocalExecutor.run

    def staged(self, jobs, run_dir, description="jobs"):
        tally.set_stage(description.split(": ", 1)[-1])
        return run(self, jobs, run_dir, description)

    salbench.studies.executors.LocalExecutor.run = staged


def rows(tally: Tally, phases: bool = True) -> list[tuple[str, float, dict[str, float]]]:
    """``(stage or stage/phase, wall seconds, {kind: fraction of its wall})`` in run order; with
    ``phases=False`` one row per whole stage (its job shell and phases together)."""
    groups: dict[str, dict[str, float]] = {}
    for (stage, phase, kind), seconds in tally.seconds.items():
        if stage == "setup":
            continue
        label = f"{stage} / {phase}" if phase and phases else stage
        groups.setdefault(label, defaultdict(float))[kind] += seconds
    out = []
    for label, kinds in groups.items():
        wall = sum(kinds.values())
        out.append((label, wall, {k: kinds.get(k, 0.0) / wall for k in KINDS}))
    return out


def time_run(name: str, preset: str, tally: Tally, out: Path) -> None:
    study = get_study(name)
    config = study.config(preset, [])
    start = time.perf_counter()
    run_study(study, config, out / name, scale=preset)
    tally.set_stage("report")
    write_report(out / name)
    tally.set_stage("setup")
    total = time.perf_counter() - start
    print(f"\n{name} --preset {preset}: {total:.1f} s wall, {torch.get_num_threads()} threads")
    header = "".join(f"{k:>17}" for k in KINDS)
    worst = {}
    for title, by_phase in (("stage / phase", True), ("whole stage", False)):
        print(f"{title:<34}{'wall s':>8}{'of run':>8}{header}")
        for label, wall, fractions in rows(tally, by_phase):
            print(f"{label:<34}{wall:8.1f}{wall / total:8.1%}"
                  + "".join(f"{fractions[k]:17.1%}" for k in KINDS))
            if label != "report":
                worst[by_phase] = max(worst.get(by_phase, 0.0), fractions[REST])
    verdict = "meets" if worst[False] <= TARGET_REST else "misses"
    print(f"largest 'rest' fraction of a whole stage outside the report: {worst[False]:.1%} "
          f"({verdict} the ≤ {TARGET_REST:.0%} target); of a phase: {worst[True]:.1%}")
    tally.seconds.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", default="lrp-grid", help="study timed at its small preset")
    parser.add_argument("--quick", action="store_true", help="quickstart only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_quiet(True)
    tally = Tally()
    instrument(tally)
    with tempfile.TemporaryDirectory() as tmp:
        time_run("quickstart", "tiny", tally, Path(tmp))
        if not args.quick:
            time_run(args.small, "small", tally, Path(tmp))


if __name__ == "__main__":
    main()
