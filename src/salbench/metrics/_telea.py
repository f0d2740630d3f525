"""OpenCV Telea inpainting, in this process or over forked worker processes.

Workers are forked after the inputs are placed in a module global and the output in an anonymous
shared memory map, so no image is pickled: each worker reads its slice of the inputs and writes
its slice of the output in place.
"""

from __future__ import annotations

import mmap
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise

import cv2
import numpy as np

_shared: dict[str, object] = {}


def inpaint_telea(image: np.ndarray, mask: np.ndarray, radius: float) -> np.ndarray:
    """Inpaint ``image`` ``[C, H, W]`` float32 where ``mask`` ``[H, W]`` is true, each channel as a
    float32 single-channel image (no 8-bit quantisation), with ``cv2.INPAINT_TELEA``."""
    cv2.setNumThreads(1)
    m = mask.astype(np.uint8)
    out = np.empty_like(image)
    for c in range(image.shape[0]):
        out[c] = cv2.inpaint(np.ascontiguousarray(image[c]), m, radius, cv2.INPAINT_TELEA)
    return out


def inpaint_telea_many(images: np.ndarray, masks: np.ndarray, radius: float) -> np.ndarray:
    """:func:`inpaint_telea` over ``[N, C, H, W]`` images and ``[N, H, W]`` masks."""
    return np.stack([inpaint_telea(i, m, radius) for i, m in zip(images, masks)])


def _work(lo: int, hi: int) -> None:
    images, masks, out, radius = (_shared[k] for k in ("images", "masks", "out", "radius"))
    out[lo:hi] = inpaint_telea_many(images[lo:hi], masks[lo:hi], radius)


def inpaint_telea_parallel(images: np.ndarray, masks: np.ndarray, radius: float,
                           workers: int) -> np.ndarray:
    """:func:`inpaint_telea_many` split over ``workers`` forked processes (in this process when
    ``workers`` is 1, there is one image, or the platform cannot fork)."""
    workers = min(workers, len(images))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return inpaint_telea_many(images, masks, radius)
    buffer = mmap.mmap(-1, max(images.nbytes, 1))
    out = np.frombuffer(buffer, dtype=np.float32, count=images.size).reshape(images.shape)
    _shared.update(images=images, masks=masks, out=out, radius=radius)
    bounds = np.linspace(0, len(images), workers + 1).astype(int)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for job in [pool.submit(_work, lo, hi) for lo, hi in pairwise(bounds)]:
                job.result()
        return out.copy()
    finally:
        _shared.clear()
        del out
        buffer.close()
