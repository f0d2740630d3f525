"""Speed benchmark of salbench.metrics: ratios against references measured in this same run.

    .venv/bin/python benchmarks/metrics.py [--quick] [--device auto|cpu|cuda]

Prints, per line, our time, the reference time and the ratio:
- each perturbation metric vs its forward-pass floor (the same number of batched forward passes
  of the same sizes, run bare on ready-made inputs; target <= 1.25x) and vs Quantus 0.6 at
  equal settings, with the largest difference of the results (they must agree); at the
  documents' sizes also ``precision="bf16"`` vs Quantus, with its curves' distance from fp32;
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
from salbench.metrics.passes import BF16_TOLERANCE
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


FLOOR_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_PER_IMAGE: dict[tuple, float] = {}


def per_image_floor(model, x, most: int) -> float:
    """Seconds per image of bare forward passes of ``model`` as given (eager, fp32, inference
    mode, ready-made inputs) at its fastest batch size up to ``most``: at each size one warm-up
    call, then timed calls (at least 2 and 0.3 s)."""
    key = (id(model), tuple(x.shape[1:]), most)
    if key not in _PER_IMAGE:
        best = float("inf")
        for size in [s for s in FLOOR_SIZES if s <= most]:
            batch = x.repeat(math.ceil(size / len(x)), 1, 1, 1)[:size]
            with torch.inference_mode():
                model(batch)
                sync()
                calls, start = 0, clock()
                while calls < 2 or clock() - start < 0.3:
                    model(batch)
                    calls += 1
                sync()
                best = min(best, (clock() - start) / (calls * size))
        _PER_IMAGE[key] = best
    return _PER_IMAGE[key]


def forward_floor(model, x, n_images: int, most: int = 256) -> float:
    """The metric's forward passes (``n_images`` of them: unperturbed + every perturbed image),
    bare, at the fastest batch size."""
    return n_images * per_image_floor(model, x, min(most, n_images))


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
    floor = forward_floor(model, x, b * (patches + 1))
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
    floor = forward_floor(model, x, out.curves.numel())
    line("region_perturbation log:32 gray", t_ours, floor, "floor", "target <= 1.25x")
    t_ours, out = best_of(lambda: pt.region_perturbation(
        model, x, y, a, patch=2, fill="inpaint-fast", steps="linear:4"))
    floor = forward_floor(model, x, out.curves.numel())
    line("region_perturbation inpaint-fast linear:4", t_ours, floor, "floor",
         "(includes the inpainting)")

    # pixel flipping on 1-channel images (Quantus flips features of the flattened C*H*W array)
    model1 = cnn(1)
    x1, a1 = x[:, :1].contiguous(), a[:, :1].contiguous()
    n_steps = size * size // 4
    t_ours, out = best_of(lambda: pt.pixel_flipping(
        model1, x1, y, a1, fill=0.0, steps="linear:4"))
    floor = forward_floor(model1, x1, b * (n_steps + 1))
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
    floor = forward_floor(model, x, b * 65)
    line("aopc region 4 (64 steps)", t_ours, floor, "floor", "target <= 1.25x")
    print(f"{'':<44} {peak_memory()}")


def doc_line(name: str, fp32: tuple, bf16: tuple) -> None:
    """One documents'-size case: ours vs Quantus (target <= 0.8x: 1.25x faster) and vs the floor
    (target <= 1.05x); ``first`` is our first call (it measures the chunk size, builds the fused
    copy). Then ``precision="bf16"`` vs Quantus, with its largest curve difference from our fp32
    curves relative to their largest value (stated tolerance ``BF16_TOLERANCE``)."""
    ours, first, quantus, floor, diff = fp32
    print(f"{name:<44} ours {ours:7.2f} s  quantus {quantus:7.2f} s  ratio {ours / quantus:4.2f}x "
          f"({quantus / ours:4.2f}x faster)  floor {floor:7.2f} s  ratio {ours / floor:4.2f}x  "
          f"first call {first:6.2f} s  max |diff| {diff:.1e}", flush=True)
    t_bf16, rel = bf16
    print(f"{'  same, precision=bf16':<44} ours {t_bf16:7.2f} s  ratio to quantus "
          f"{t_bf16 / quantus:4.2f}x ({quantus / t_bf16:4.2f}x faster)  curves vs fp32 "
          f"{rel:.1e} of max (tolerance {BF16_TOLERANCE})", flush=True)


def square_schedule_perturb(ranks: np.ndarray, shape: tuple, patch: int, value: float):
    """Quantus perturb_func for document 002's schedule: at Quantus's step k it sets the 2k - 1
    patches new at step k to ``value`` (ranks [B, P], 0 = first; patches row-major), all
    channels; Quantus's loop, copies and model calls as usual."""
    order = np.argsort(ranks, 1)
    cols = shape[3] // patch
    state = {"step": 0}

    def perturb(arr, indices, **kwargs):
        k = state["step"] = state["step"] + 1
        out = arr.copy().reshape(shape)
        for i, new in enumerate(order[:, (k - 1) ** 2:k ** 2]):
            for r, c in zip(*np.divmod(new, cols)):
                out[i, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = value
        return out.reshape(arr.shape)
    return perturb


def noise_perturb(noise: np.ndarray):
    """Quantus perturb_func replacing the indices of a step by the image's noise (document 003's
    uniform noise drawn once per image, as salbench's ``fill="uniform"``)."""
    flat = noise.reshape(len(noise), -1)

    def perturb(arr, indices, **kwargs):
        out = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        out[rows, indices] = flat[rows, indices]
        return out
    return perturb


def calibrate_batch_norm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Batch norm running statistics from the images ``x`` (random weights otherwise), then eval
    mode: a random ResNet's activations stay normalised and its logits O(1). With the default
    statistics (mean 0, variance 1) a random ResNet-50's softmax saturated: AOPC's target
    probabilities were ~1e-20, so equal curves and the bf16 distance said nothing."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def bench_documents(quick: bool) -> None:
    """The documents' sizes: region perturbation of 002 (8x8 patches, square schedule, gray) on
    VGG-16 and ResNet-50 at 224^2, AOPC of 003 (uniform noise) on ResNet-50 at 224^2, and the
    issue-14 case (ResNet-18 at 128^2, 256 linear steps, constant fill); random weights."""
    import quantus

    from salbench.models import build

    g = torch.Generator().manual_seed(0)
    q = {"abs": False, "normalise": False, "disable_warnings": True}

    def case(arch: str, size: int, b: int):
        torch.manual_seed(0)  # the same random weights in every run
        model = build(arch, 10, 3, size, 1.0).to(DEVICE)
        x = torch.rand(b, 3, size, size, generator=g).to(DEVICE)
        calibrate_batch_norm(model, torch.cat([x, x * 2 - 1]))
        a = torch.randn(b, 3, size, size, generator=g).to(DEVICE)
        y = torch.arange(b, device=DEVICE) % 10
        return model, x, y, a

    def run(metric, model, x, y, a, quantus_metric, quantus_x, softmax, **params):
        t0 = clock()
        metric(model, x, y, a, **params)
        first = clock() - t0
        t_ours, out = best_of(lambda: metric(model, x, y, a, **params), repeat=1 if quick else 2)
        call = {"model": model, "x_batch": quantus_x, "y_batch": y.cpu().numpy(),
                "a_batch": a.cpu().numpy(), "channel_first": True, "softmax": softmax,
                "device": str(DEVICE), "batch_size": len(x)}
        t_q, theirs = best_of(lambda: quantus_metric()(**call), repeat=1 if quick else 2)
        c = out.curves
        diff = np.abs((c[:, :1] - c[:, 1:]).cpu().numpy() - np.asarray(theirs)).max()
        metric(model, x, y, a, precision="bf16", **params)  # measures its own chunk size
        t_bf16, low = best_of(lambda: metric(model, x, y, a, precision="bf16", **params),
                              repeat=1 if quick else 2)
        bf16 = (t_bf16, (low.curves - c).abs().max().item() / c.abs().max().item())
        return (t_ours, first, t_q, forward_floor(model, x, c.numel()), diff), bf16

    # document 002: 8x8 patches, k^2 patches after step k (28 steps at 224^2), gray fill
    b = 2
    for arch in ("vgg16", "resnet50"):
        model, x, y, a = case(arch, 224, b)
        ranks = pt.patch_ranks(pt.patch_scores(a.sum(1), 8), "morf").cpu().numpy()
        steps = len(pt.step_counts("square", 28 * 28))
        res = run(pt.region_perturbation, model, x, y, a,
                  lambda ranks=ranks, shape=tuple(x.shape), steps=steps:
                  quantus.RegionPerturbation(
                      patch_size=8, regions_evaluation=steps,
                      perturb_func=square_schedule_perturb(ranks, shape, 8, 0.5), **q),
                  x.cpu().numpy(), False, patch=8, fill="gray", steps="square")
        doc_line(f"002 region_perturbation {arch} {b}x3x224^2 sq", *res)
        if arch == "resnet50":
            resnet50 = model, x * 2 - 1, y, a
    # document 003: AOPC, uniform noise over [-1, 1] drawn once per image, its region sizes
    model, x, y, a = resnet50
    for region in (28,) if quick else (56, 28, 16):  # 21 does not divide 224: Quantus pads
        noise = pt.UniformFill(-1.0, 1.0, seed=0)(x, None).cpu().numpy()
        n = (224 // region) ** 2
        res = run(pt.aopc, model, x, y, a,
                  lambda region=region, n=n, noise=noise: quantus.RegionPerturbation(
                      patch_size=region, regions_evaluation=n, perturb_func=noise_perturb(noise),
                      **q),
                  x.cpu().numpy(), True, region=region)
        doc_line(f"003 aopc resnet50 {b}x3x224^2 region {region}", *res)
    # issue 14: ResNet-18 width 1, 8 x 3x128^2, 8x8 patches, 256 steps linear, constant fill
    b = 4 if quick else 8
    model, x, y, a = case("resnet18", 128, b)
    res = run(pt.region_perturbation, model, x, y, a,
              lambda: quantus.RegionPerturbation(patch_size=8, regions_evaluation=256,
                                                 perturb_baseline=0.25, **q),
              x.cpu().numpy(), False, patch=8, fill=0.25, steps="linear:1")
    doc_line(f"region_perturbation resnet18 {b}x3x128^2 256", *res)
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
    bench_documents(args.quick)
    bench_inpainting(args.quick)
    bench_sensitivity(args.quick)
    bench_fiveband(args.quick)


if __name__ == "__main__":
    main()
