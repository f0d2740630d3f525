"""Training throughput: ``salbench.models.fit`` against a bare PyTorch loop, in one run.

Both train the same architecture from the same initial weights on the same in-memory data with
the same optimiser (SGD momentum, step decay), batch size and epochs: the bare loop is shuffle,
index, forward, cross-entropy, backward, step (with bf16 autocast and channels-last on CUDA, as
``fit`` uses). ``fit`` is timed as a whole call (setup, snapshots, progress bar included; no
validation data). Runs alternate and the best of ``--repeats`` is kept for each, so machine load
hits both alike. Target: ratio (bare images/s over fit images/s) <= 1.1.

    .venv/bin/python benchmarks/training.py            # resnet18 width 0.25, 64 px, CPU
    .venv/bin/python benchmarks/training.py --quick
    .venv/bin/python benchmarks/training.py --arch vgg16 --width 1 --size 224 --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from salbench.models import TrainConfig, build, fit
from salbench.runtime import resolve_device, set_quiet


def bare_loop(model, x, y, config: TrainConfig, device: torch.device) -> float:
    """The per-step floor: seconds for ``config.epochs`` epochs of plain training."""
    model.to(device).train()
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    sched = torch.optim.lr_scheduler.StepLR(opt, config.step_size, config.gamma)
    gen = torch.Generator().manual_seed(0)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cuda
                else contextlib.nullcontext())
    x, y = x.to(device), y.to(device)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=gen).to(device)
        for i in range(0, len(x), config.batch_size):
            idx = order[i:i + config.batch_size]
            xb = x[idx]
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast:
                out = model(xb)
            loss = torch.nn.functional.cross_entropy(out.float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed_fit(model, x, y, config: TrainConfig, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fit(model, (x, y), None, config)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="n=256, 1 epoch, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.n, args.epochs, args.repeats = 256, 1, 2
    set_quiet(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.n, 3, args.size, args.size)
    y = torch.randint(0, 2, (args.n,))
    initial = build(args.arch, 2, 3, args.size, args.width)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.01,
                         device=str(device))
    images = args.n * args.epochs

    def fresh():
        model = build(args.arch, 2, 3, args.size, args.width)
        model.load_state_dict(initial.state_dict())
        return model

    bare_loop(fresh(), x[:64], y[:64], config.model_copy(update={"epochs": 1}), device)  # warm-up
    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(fresh(), x, y, config, device))
        ours.append(timed_fit(fresh(), x, y, config, device))
    bare_ips, fit_ips = images / min(bare), images / min(ours)
    print(f"device: {device} ({torch.get_num_threads()} threads); {args.arch} width {args.width}, "
          f"{args.size} px, {args.n} images x {args.epochs} epochs, batch {args.batch_size}")
    print(f"bare PyTorch loop: {bare_ips:8.1f} images/s (best of {args.repeats})")
    print(f"salbench fit:      {fit_ips:8.1f} images/s (best of {args.repeats})")
    print(f"ratio bare/fit: {bare_ips / fit_ips:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main()
