"""OpenCV Telea inpainting, in this thread or over one pool of worker threads kept across calls.

``cv2.inpaint`` releases the GIL, so threads run it in parallel without forking (a fork after
torch, OpenCV or tqdm have started threads can inherit a held lock and hang) and without copying
an image: each thread writes its slice of one output array.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

_pool: dict[int, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def inpaint_telea(image: np.ndarray, mask: np.ndarray, radius: float) -> np.ndarray:
    """Inpaint ``image`` ``[C, H, W]`` float32 where ``mask`` ``[H, W]`` is true, each channel as a
    float32 single-channel image (no 8-bit quantisation), with ``cv2.INPAINT_TELEA``."""
    m = mask.astype(np.uint8)
    out = np.empty_like(image)
    for c in range(image.shape[0]):
        out[c] = cv2.inpaint(np.ascontiguousarray(image[c]), m, radius, cv2.INPAINT_TELEA)
    return out


def inpaint_telea_many(images: np.ndarray, masks: np.ndarray, radius: float) -> np.ndarray:
    """:func:`inpaint_telea` over ``[N, C, H, W]`` images and ``[N, H, W]`` masks."""
    return np.stack([inpaint_telea(i, m, radius) for i, m in zip(images, masks)])


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool of ``workers`` threads, created on first use and reused by every call."""
    with _pool_lock:
        if workers not in _pool:
            _pool[workers] = ThreadPoolExecutor(workers, thread_name_prefix="salbench-telea")
        return _pool[workers]


def inpaint_telea_parallel(images: np.ndarray, masks: np.ndarray, radius: float,
                           workers: int) -> np.ndarray:
    """:func:`inpaint_telea_many` split over ``workers`` threads (in this thread when ``workers``
    is 1 or there is one image); the same array as the serial call."""
    workers = min(workers, len(images))
    if workers <= 1:
        return inpaint_telea_many(images, masks, radius)
    cv2.setNumThreads(1)  # parallel over images, not inside one inpainting
    out = np.empty_like(images)

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            out[i] = inpaint_telea(images[i], masks[i], radius)

    bounds = np.linspace(0, len(images), workers + 1).astype(int)
    jobs = [worker_pool(workers).submit(work, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    for job in jobs:
        job.result()
    return out
