"""Speed of the leaderboard statistics and the report renderer.

Prints, in one run: the vectorised bootstrap against a per-resample numpy loop drawing the same
numbers (identical results checked), the signed-rank test against ``scipy.stats.wilcoxon`` on
each of scipy's paths (equal results checked), the whole leaderboard on a study-sized results
frame, and the time to render a report from it.

    .venv/bin/python benchmarks/report_stats.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from salbench.report import render_report
from salbench.results import ResultStore
from salbench.results.stats import (
    _subset_sum_counts,
    bootstrap_ci,
    leaderboard,
    ranked_rows,
    signed_rank_test,
)


def loop_bootstrap(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Reference: one resample per iteration (numpy inside, Python loop over resamples)."""
    rng = np.random.default_rng(seed)
    n = values.size
    means = np.array([values[(rng.random(n) * n).astype(np.intp)].mean() for _ in range(n_boot)])
    low, high = np.quantile(means, [0.025, 0.975])
    return float(values.mean()), float(low), float(high)


def timed(fn, repeat: int = 3):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def results_frame(methods: int, metrics: int, models: int, samples: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    index = pd.MultiIndex.from_product(
        [[f"method{i}" for i in range(methods)], [f"metric{j}" for j in range(metrics)],
         [f"model{k}" for k in range(models)], [str(s) for s in range(samples)]],
        names=["method", "metric", "model_id", "sample_id"])
    frame = index.to_frame(index=False)
    frame["value"] = rng.random(len(frame)) + frame["method"].str[6:].astype(int) * 0.02
    frame["dataset"], frame["output"], frame["direction"] = "mri-lesions", frame["metric"], "higher"
    frame["study"], frame["run"], frame["meta"] = "bench", "r", "{}"
    frame["metric_params"] = frame["method_params"] = "{}"
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    n, n_boot = (500, 1000) if args.quick else (1000, 2000)

    for size in (50, n):
        values = np.random.default_rng(1).normal(size=size)
        t_vec, got = timed(lambda v=values: bootstrap_ci(v, n_boot=n_boot, rng=5))
        t_loop, want = timed(lambda v=values: loop_bootstrap(v, n_boot, 5), repeat=1)
        assert np.allclose(got, want), (got, want)
        print(f"bootstrap n={size} B={n_boot}: vectorised {t_vec * 1e3:.1f} ms, per-resample "
              f"loop {t_loop * 1e3:.1f} ms, ratio ours/loop = {t_vec / t_loop:.3f} "
              "(identical CIs)")

    rng = np.random.default_rng(2)
    cases = {"n=12 with ties (scipy: all 2^12 sign flips)": np.round(rng.normal(size=12), 1),
             "n=40, no ties (exact distribution)": rng.normal(size=40),
             "n=40, ties (normal approximation)": np.round(rng.normal(size=40), 1),
             "n=500 (normal approximation)": rng.normal(size=500)}
    for name, diff in cases.items():
        def ours_uncached(d=diff):
            _subset_sum_counts.cache_clear()  # the null distribution built afresh every call
            return signed_rank_test(d)

        t_ours, ours = timed(ours_uncached)
        t_scipy, ref = timed(lambda d=diff: sps.wilcoxon(d, zero_method="wilcox"), repeat=1)
        assert ours == (float(ref.statistic), float(ref.pvalue)), (ours, ref)
        print(f"signed-rank test {name}: ours {t_ours * 1e3:.2f} ms, scipy.stats.wilcoxon "
              f"{t_scipy * 1e3:.2f} ms, ratio ours/scipy = {t_ours / t_scipy:.4f} (equal p)")

    sizes = (8, 6, 3, 100) if args.quick else (11, 10, 5, 200)
    frame = results_frame(*sizes)
    groups = sizes[0] * sizes[1]
    ranked = ranked_rows(frame)
    t_board, board = timed(lambda: leaderboard(ranked, n_boot=n_boot), repeat=1)
    t_one, _ = timed(lambda: bootstrap_ci(values[: sizes[2] * sizes[3]], n_boot=n_boot, rng=5))
    print(f"leaderboard {len(frame):,} rows ({sizes[0]} methods x {sizes[1]} metrics, "
          f"{len(board.tests)} Wilcoxon tests): {t_board:.2f} s; bootstrap floor "
          f"{groups} x {t_one * 1e3:.1f} ms = {groups * t_one:.2f} s, "
          f"ratio leaderboard/bootstrap floor = {t_board / (groups * t_one):.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        ResultStore(tmp).write("bench", frame.drop(columns="score", errors="ignore"))
        t_render, path = timed(lambda: render_report(Path(tmp), [], n_boot=n_boot), repeat=1)
        print(f"render_report on the same rows: {t_render:.2f} s "
              f"(ratio render/leaderboard = {t_render / t_board:.2f}), "
              f"index.html {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
