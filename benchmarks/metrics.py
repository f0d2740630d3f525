"""Speed benchmark of salbench.metrics: ratios against references measured in this same run.

    .venv/bin/python benchmarks/metrics.py [--quick] [--device auto|cpu|cuda]

Prints, per line, our time, the reference time and the ratio:
- each perturbation metric vs its forward-pass floor (the same number of batched forward passes
  of the same sizes, run bare on ready-made inputs; target <= 1.25x) and vs Quantus 0.6 at
  equal settings, with the largest difference of the results (they must agree);
- the fast inpainting fill vs per-step OpenCV Telea, 224x224, 784-step schedule (target >= 20x),
  and the Telea fill over worker processes vs one process;
- max-sensitivity vs its explanation floor (target <= 1.2x) and vs Quantus;
- soft five-band vs a per-sample, per-threshold loop (target >= 20x);
- peak memory (process peak RSS; CUDA peak allocation on a GPU).
"""

from __future__ import annotations

import argparse
import math
import resource
import time
import warnings

import cv2
import numpy as np
import torch
from torch import nn

from salbench.metrics import fiveband as fb
from salbench.metrics import perturbation as pt
from salbench.metrics import robustness as rb
from salbench.metrics._checks import chunk_size
from salbench.runtime import resolve_device

warnings.filterwarnings("ignore")


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def clock() -> float:
    """CPU seconds on the CPU (stable on a shared machine); wall seconds on a GPU."""
    return time.perf_counter() if DEVICE.type == "cuda" or WALL else cpu_seconds()


WALL = False


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    out, best = None, float("inf")
    for _ in range(repeat):
        sync()
        t = clock()
        out = fn()
        sync()
        best = min(best, clock() - t)
    return best, out


DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def peak_memory() -> str:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = f"peak RSS {rss:.0f} MiB"
    if DEVICE.type == "cuda":
        text += f", CUDA peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
        torch.cuda.reset_peak_memory_stats()
    return text


def cnn(channels: int, width: int = 32, classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    layers, c = [], channels
    for _ in range(4):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
        c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes)]
    return nn.Sequential(*layers).eval().to(DEVICE)


def forward_floor(model, x, n_images: int) -> float:
    """The same forward passes as the metric (unperturbed + every perturbed image, in chunks of
    the metric's size), on ready-made inputs."""
    chunk = chunk_size(model, x, None)
    batches = [x.repeat(math.ceil(chunk / len(x)), 1, 1, 1)[:chunk]]
    sizes = [len(x)] + [min(chunk, n_images - s) for s in range(0, n_images, chunk)]

    def run():
        with torch.inference_mode():
            for s in sizes:
                model(batches[0][:s])
    return best_of(run)[0]


def line(name: str, ours: float, ref: float, ref_name: str, extra: str = "") -> None:
    speed = f"({ref / ours:5.1f}x faster)" if ours < ref else ""
    print(f"{name:<44} ours {ours:7.3f} s  {ref_name} {ref:7.3f} s  ratio {ours / ref:5.2f}x "
          f"{speed:<16}" + extra)


def bench_perturbation(quick: bool) -> None:
    import quantus

    b, size = (8, 32) if quick else (16, 32)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, size, size, generator=g).to(DEVICE)
    a = torch.randn(b, 3, size, size, generator=g).to(DEVICE)
    y = torch.arange(b, device=DEVICE) % 10
    model = cnn(3)
    q = {"abs": False, "normalise": False, "disable_warnings": True}
    qcall = {"channel_first": True, "softmax": False, "device": str(DEVICE), "batch_size": b}

    # region perturbation, 2x2 patches, one patch per step (Quantus's only schedule)
    patches = (size // 2) ** 2
    t_ours, out = best_of(lambda: pt.region_perturbation(
        model, x, y, a, patch=2, fill=0.25, steps="linear:1"))
    floor = forward_floor(model, x, b * patches)
    line(f"region_perturbation {b}x3x{size}^2 {patches} steps", t_ours, floor, "floor",
         "target <= 1.25x")
    rp = quantus.RegionPerturbation(patch_size=2, regions_evaluation=patches,
                                    perturb_baseline=0.25, **q)
    t_q, theirs = best_of(lambda: rp(model=model, x_batch=x.cpu().numpy(), y_batch=y.cpu().numpy(),
                                     a_batch=a.cpu().numpy(), **qcall), repeat=2)
    diff = np.abs((out.curves[:, :1] - out.curves[:, 1:]).cpu().numpy() - np.asarray(theirs)).max()
    line("region_perturbation vs Quantus", t_ours, t_q, "quantus",
         f"max |diff| {diff:.1e}; target <= 1x")

    # thesis settings scaled down: log schedule, repeated flipping, last step gray, gray fill
    t_ours, out = best_of(lambda: pt.region_perturbation(
        model, x, y, a, patch=2, fill="gray", steps="log:32", last_step_gray=True))
    floor = forward_floor(model, x, b * (out.curves.shape[1] - 1))
    line("region_perturbation log:32 gray", t_ours, floor, "floor", "target <= 1.25x")
    t_ours, out = best_of(lambda: pt.region_perturbation(
        model, x, y, a, patch=2, fill="inpaint-fast", steps="linear:4"))
    floor = forward_floor(model, x, b * (out.curves.shape[1] - 1))
    line("region_perturbation inpaint-fast linear:4", t_ours, floor, "floor",
         "(includes the inpainting)")

    # pixel flipping on 1-channel images (Quantus flips features of the flattened C*H*W array)
    model1 = cnn(1)
    x1, a1 = x[:, :1].contiguous(), a[:, :1].contiguous()
    n_steps = size * size // 4
    t_ours, out = best_of(lambda: pt.pixel_flipping(
        model1, x1, y, a1, fill=0.0, steps="linear:4"))
    floor = forward_floor(model1, x1, b * n_steps)
    line(f"pixel_flipping {b}x1x{size}^2 {n_steps} steps", t_ours, floor, "floor",
         "target <= 1.25x")
    pf = quantus.PixelFlipping(features_in_step=4, perturb_baseline=0.0, **q)
    t_q, theirs = best_of(lambda: pf(model=model1, x_batch=x1.cpu().numpy(),
                                     y_batch=y.cpu().numpy(), a_batch=a1.cpu().numpy(), **qcall),
                          repeat=2)
    diff = np.abs(out.curves[:, 1:].cpu().numpy() - np.asarray(theirs)).max()
    line("pixel_flipping vs Quantus", t_ours, t_q, "quantus",
         f"max |diff| {diff:.1e}; target <= 1x")

    # AOPC, region 4 on 32 px (8x8 regions, like 28 px regions on 224 px)
    t_ours, out = best_of(lambda: pt.aopc(model, x * 2 - 1, y, a, region=4))
    floor = forward_floor(model, x, b * 64)
    line("aopc region 4 (64 steps)", t_ours, floor, "floor", "target <= 1.25x")
    print(f"{'':<44} {peak_memory()}")


def bench_inpainting(quick: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 224, 224, generator=g)
    ids, n = pt.patch_grid(224, 224, 8)
    ranks = torch.randperm(n, generator=g)[ids].view(1, 1, 224, 224)
    counts = torch.arange(1, n + 1)
    steps = counts[::8] if quick else counts
    fill = pt.FastInpaintFill()

    def fast():
        for s in range(0, len(steps), 64):
            m = ranks < steps[s:s + 64].view(-1, 1, 1, 1)
            fill(x.expand(len(m), -1, -1, -1), m)

    img = x[0].numpy()

    def telea():
        for c in steps.tolist():
            m = (ranks[0, 0] < c).numpy().astype(np.uint8)
            for ch in range(3):
                cv2.inpaint(img[ch], m, 3, cv2.INPAINT_TELEA)

    t_fast, _ = best_of(fast)
    t_telea, _ = best_of(telea, repeat=1)
    line(f"fast inpainting, 224^2, {len(steps)} steps", t_fast, t_telea, "per-step telea",
         "target >= 20x faster")
    sub = steps[::4]  # every 4th step: the speed-up of the pool shows on fewer images
    masks = ranks < sub.view(-1, 1, 1, 1)
    xs = x.expand(len(sub), -1, -1, -1)
    global WALL
    WALL = True  # parallel speed-up is a wall-clock matter
    t_pool, _ = best_of(lambda: pt.TeleaFill()(xs, masks), repeat=1)
    t_one, _ = best_of(lambda: pt.TeleaFill(workers=1)(xs, masks), repeat=1)
    WALL = False
    line(f"telea fill, {pt.os.cpu_count()} workers, {len(sub)} steps (wall)", t_pool, t_one,
         "one process")
    print(f"{'':<44} {peak_memory()}")


def bench_sensitivity(quick: bool) -> None:
    import quantus

    b, n = (8, 10) if quick else (16, 20)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, 32, 32, generator=g).to(DEVICE)
    y = torch.arange(b, device=DEVICE) % 10
    model = cnn(3)

    def saliency(m, xs, ys):
        xs = xs.detach().clone().requires_grad_(True)
        out = m(xs)
        grad, = torch.autograd.grad(out.gather(1, ys[:, None]).sum(), xs)
        return grad

    noise = ((torch.rand((n, *x.shape), generator=g) * 2 - 1) * 0.1)
    t_ours, out = best_of(lambda: rb.max_sensitivity(model, x, y, saliency, radius=0.1,
                                                     n_samples=n, target="label", noise=noise,
                                                     relative=True))
    per_call = chunk_size(model, x, None)
    xp = (x.repeat(n, 1, 1, 1) + noise.view(-1, *x.shape[1:]).to(DEVICE))
    yp = y.repeat(n)

    def floor():
        saliency(model, x, y)
        for s in range(0, n * b, per_call):
            saliency(model, xp[s:s + per_call], yp[s:s + per_call])
    t_floor, _ = best_of(floor)
    line(f"max_sensitivity {b} x {n} samples", t_ours, t_floor, "explain floor",
         "target <= 1.2x")
    steps = []  # the shared perturbations, consumed one per Quantus step

    def perturb(arr, indices, indexed_axes=None, **kwargs):
        return arr + steps.pop(0).reshape(arr.shape)

    def q_explain(model, inputs, targets, **kwargs):
        return saliency(model, torch.as_tensor(inputs, device=DEVICE),
                        torch.as_tensor(targets, device=DEVICE)).cpu().numpy()

    ms = quantus.MaxSensitivity(nr_samples=n, perturb_func=perturb, normalise=False, abs=False,
                                disable_warnings=True)
    a = saliency(model, x, y).detach()
    def quantus_run():
        steps[:] = list(noise.numpy())
        return ms(model=model, x_batch=x.cpu().numpy(), y_batch=y.cpu().numpy(),
                  a_batch=a.cpu().numpy(), explain_func=q_explain, channel_first=True,
                  device=str(DEVICE), batch_size=b)
    t_q, theirs = best_of(quantus_run, repeat=2)
    diff = np.abs(out.scores.cpu().numpy() - np.asarray(theirs)).max()
    line("max_sensitivity vs Quantus", t_ours, t_q, "quantus", f"max |diff| {diff:.1e}")
    print(f"{'':<44} {peak_memory()}")


def bench_fiveband(quick: bool) -> None:
    b = 16 if quick else 64
    g = torch.Generator().manual_seed(0)
    h = torch.randn(b, 3, 64, 64, generator=g).to(DEVICE)
    h0 = torch.tensor([0.0, 0.4, 0.9])[torch.randint(0, 3, (b, 64, 64), generator=g)].to(DEVICE)
    t_ours, out = best_of(lambda: fb.soft_five_band(h, h0, "standard"))

    def loop():
        adj = fb.channel_adjust(h)
        s0 = fb.stratify_ground_truth(h0)
        res = torch.empty(b, len(fb.STANDARD.t1), 4, dtype=torch.float64)
        for k in range(b):
            for m, (t1, t2) in enumerate(zip(fb.STANDARD.t1, fb.STANDARD.t2)):
                c = fb.five_band_counts(fb.stratify(adj[k], t1, t2), s0[k])
                res[k, m] = torch.stack(list(fb.scores_from_counts(c, 64 * 64)))
        return res
    t_loop, ref = best_of(loop, repeat=1)
    diff = (torch.stack(list(out.per_threshold), -1).cpu() - ref).abs().max().item()
    line(f"soft five-band {b} maps 64^2, 56 thresholds", t_ours, t_loop, "loop",
         f"max |diff| {diff:.1e}; target >= 20x faster")
    print(f"{'':<44} {peak_memory()}")


def main() -> None:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 30 s)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: OpenCV Telea and Quantus's NumPy "
                        "loops are single-threaded, and a shared machine times 1 thread stably)")
    args = parser.parse_args()
    DEVICE = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    kind = "wall" if DEVICE.type == "cuda" else "CPU (user + system, incl. worker processes)"
    print(f"device {DEVICE}, torch threads {torch.get_num_threads()}; {kind} seconds, best of 3 "
          "runs (2 for Quantus, 1 for Telea and the loop)")
    bench_perturbation(args.quick)
    bench_inpainting(args.quick)
    bench_sensitivity(args.quick)
    bench_fiveband(args.quick)


if __name__ == "__main__":
    main()
