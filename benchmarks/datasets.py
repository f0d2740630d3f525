"""Generation speed of the ground-truth datasets, 1 worker against 2 (issue 3's targets).

Prints slices per second for MRI lesions at 270 x 270 and images per second for cells at 224 x 224,
each with 1 and 2 worker processes, the ratio between them (target >= 1.7), the projected time for
the paper-sized MRI dataset (about 41 500 slices; target < 10 minutes on 2 cores) and whether cells
reach 200 images per second. Run: .venv/bin/python benchmarks/datasets.py [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

from salbench.data import cells, mri_lesions
from salbench.data.shards import generate_dataset
from salbench.runtime import set_quiet

PAPER_MRI_SLICES = 24_924 + 8_319 + 8_319  # document 000, section 2.1


def rate(spec, n: int, workers: int) -> float:
    start = time.perf_counter()
    generate_dataset(spec, n, workers=workers, chunk_size=16)
    return n / (time.perf_counter() - start)


def cpu_rate(spec, n: int) -> float:
    """Samples per CPU-second in this process (what one uncontended core reaches)."""
    start = time.process_time()
    spec.make(0, n)
    return n / (time.process_time() - start)


def busy(_: int) -> int:
    total = 0
    for k in range(2_000_000):
        total += k
    return total


def control_speedup() -> float:
    """Speed-up of 2 processes over 1 on a pure-Python loop: the most this machine gives now."""
    start = time.perf_counter()
    for k in range(4):
        busy(k)
    serial = time.perf_counter() - start
    with multiprocessing.get_context("fork").Pool(2) as pool:
        start = time.perf_counter()
        pool.map(busy, range(4))
        parallel = time.perf_counter() - start
    return serial / parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples (about 20 s)")
    args = parser.parse_args()
    set_quiet(True)
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPU cores, load average {load:.1f}"
          + (" (busy machine: wall-clock rates and ratios are unreliable)"
             if load > 0.5 * (os.cpu_count() or 1) else ""))
    print(f"control: 2 processes run a pure-Python loop {control_speedup():.2f}x faster than 1 "
          "(the ceiling for the ratios below)")
    n_mri, n_cells = (128, 512) if args.quick else (480, 2400)
    for label, spec, n, unit in [
        ("MRI lesions 270x270", mri_lesions.make_spec(size=270), n_mri, "slices"),
        ("cells 224x224", cells.make_spec(size=224), n_cells, "images"),
    ]:
        spec.prepare()  # lesion bank and template slices: built once, outside the timing
        rate(spec, 16, 1)  # warm-up
        one, two = rate(spec, n, 1), rate(spec, n, 2)
        per_core = cpu_rate(spec, n // 4)
        print(f"{label}: 1 worker {one:7.1f} {unit}/s | 2 workers {two:7.1f} {unit}/s | "
              f"ratio 2/1 workers = {two / one:.2f}x (target >= 1.7)")
        print(f"  CPU time: {per_core:.1f} {unit} per CPU-second (one uncontended core)")
        if unit == "slices":
            minutes = PAPER_MRI_SLICES / two / 60
            print(f"  paper-sized MRI dataset ({PAPER_MRI_SLICES} slices) with 2 workers: "
                  f"{minutes:.1f} min (target < 10)")
        else:
            print(f"  cells with 2 workers: {two:.0f} images/s "
                  f"({'meets' if two >= 200 else 'misses'} the 200/s target)")


if __name__ == "__main__":
    main()
