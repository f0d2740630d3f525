"""Attribution methods against their cost floor, measured in the same run.

For each architecture (zoo models at reduced width) and method, prints the time per image of
``salbench.explain.explain`` and of the method's floor, and their ratio (target <= 1.3):

- single-pass gradient methods, CAMs: one forward + backward of the batch;
- DeepLIFT: one forward + backward of the batch and its baselines (Captum concatenates them);
- integrated gradients / GradientSHAP / SmoothGrad / DeepLiftSHAP: forward + backward of
  n_steps / n_samples / nt_samples / 2·n_baselines copies of the batch in chunks of 64 images
  (the methods' ``internal_batch_size``); counts reduced to 16 / 5 / 16 / 2·4 for speed;
- guided Grad-CAM: two forward + backward passes; occlusion (16-px window, stride 16): one
  forward per window position plus the unoccluded one;
- LRP: the same Zennit composite applied by hand (context, forward, autograd.grad): Zennit's
  rules re-run each layer's forward inside the backward pass, so that *is* the floor (the plain
  forward + backward ratio is printed too, for information);
- random_model: the base method on the model itself (the random copy is cached);
- GAD over saliency with two support models: three forward + backward passes.

"vs library" is ours against the same direct Captum call (the wrapper's own overhead); DeepLIFT's
gap to its floor is Captum's per-activation multiplier work, intrinsic to the rescale rule.

Usage: .venv/bin/python benchmarks/methods.py [--quick] [--all-archs]
"""

from __future__ import annotations

import argparse
import copy
import functools
import time
import warnings

import torch
from captum.attr import (
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

from salbench.explain import GADSupport, explain
from salbench.explain.checks import preserved_model
from salbench.explain.gradients import default_conv_layer
from salbench.explain.lrp import composite_for
from salbench.explain.registry import get_method
from salbench.models import build, make_explainable


def fwd_bwd(model, x, y, copies: int = 1, chunk: int = 64, backward: bool = True) -> None:
    """Forward (+ backward to the input) of ``copies`` copies of the batch in chunks of images."""
    images = x.repeat(copies, 1, 1, 1)
    targets = y.repeat(copies)
    for start in range(0, images.shape[0], chunk):
        xs = images[start:start + chunk].detach().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            out = model(xs).gather(1, targets[start:start + chunk, None]).sum()
            if backward:
                torch.autograd.grad(out, xs)


def zennit_by_hand(model, x, y, method):
    composite = composite_for(model, x, method, get_method(method).params)
    with composite.context(model) as modified:
        inputs = x.detach().clone().requires_grad_(True)
        out = modified(inputs)
        start = torch.zeros_like(out).scatter(1, y[:, None], out.gather(1, y[:, None]).detach())
        torch.autograd.grad(out, inputs, grad_outputs=start)


# Smaller step/sample counts than the defaults keep the run short; each floor uses the same counts.
PARAMS = {"integrated_gradients": {"n_steps": 16}, "gradient_shap": {"n_samples": 5},
          "smoothgrad": {"nt_samples": 16}, "deeplift_shap": {"n_baselines": 4},
          "occlusion": {"window": 16, "stride": 16}}


def floors(model, x, y, size):
    def single():
        return fwd_bwd(model, x, y)

    windows = ((size - 16) // 16 + 1) ** 2
    table = {
        "saliency": single, "input_x_gradient": single, "guided_backprop": single,
        "deconvolution": single, "gradcam": single, "hirescam": single, "cam": single,
        "deeplift": lambda: fwd_bwd(model, x, y, 2),
        "guided_gradcam": lambda: (fwd_bwd(model, x, y), fwd_bwd(model, x, y)),
        "integrated_gradients": lambda: fwd_bwd(model, x, y, 16),
        "gradient_shap": lambda: fwd_bwd(model, x, y, 5),
        "deeplift_shap": lambda: fwd_bwd(model, x, y, 8),
        "smoothgrad": lambda: fwd_bwd(model, x, y, 16),
        "occlusion": lambda: fwd_bwd(model, x, y, windows + 1, backward=False),
        "random_model": single,
        # saliency on the model and two supports: three models, so three separate passes
        "gad": lambda: [fwd_bwd(model, x, y) for _ in range(3)],
    }
    for name in ("lrp_0", "lrp_epsilon", "lrp_gamma", "lrp_alpha_beta", "lrp_flat",
                 "lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box", "lrp_tutorial",
                 "lrp_decreasing_gamma"):
        table[name] = (lambda name=name: zennit_by_hand(model, x, y, name))
    return table


def library_calls(model, x, y):
    """The same attributions as direct Captum calls (our wrapper's own overhead)."""
    zeros = torch.zeros_like(x)
    noise = torch.rand(4, *x.shape[1:])
    return {
        "saliency": lambda: Saliency(model).attribute(x, target=y, abs=False),
        "input_x_gradient": lambda: InputXGradient(model).attribute(x, target=y),
        "guided_backprop": lambda: GuidedBackprop(model).attribute(x, target=y),
        "deconvolution": lambda: Deconvolution(model).attribute(x, target=y),
        "deeplift": lambda: DeepLift(model).attribute(x, baselines=zeros, target=y),
        "guided_gradcam": lambda: GuidedGradCam(model, default_conv_layer(model)).attribute(
            x, target=y),
        "integrated_gradients": lambda: IntegratedGradients(model).attribute(
            x, baselines=zeros, target=y, n_steps=16, internal_batch_size=64),
        "gradient_shap": lambda: GradientShap(model).attribute(
            x, baselines=zeros[:1], target=y, n_samples=5),
        "deeplift_shap": lambda: DeepLiftShap(model).attribute(x, baselines=noise, target=y),
        "smoothgrad": lambda: NoiseTunnel(Saliency(model)).attribute(
            x, nt_samples=16, stdevs=0.15, target=y, abs=False, nt_samples_batch_size=8),
        "occlusion": lambda: Occlusion(model).attribute(
            x, sliding_window_shapes=(3, 16, 16), strides=(3, 16, 16), baselines=0.0, target=y,
            perturbations_per_eval=8),
    }


def best_of(fn, repeats: int) -> float:
    """Smallest process CPU time of ``repeats`` calls (robust to other jobs on a shared machine)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and methods")
    parser.add_argument("--all-archs", action="store_true", help="all six zoo architectures")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU time is "
                        "measured, so one thread keeps the figures honest on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # Captum's notices on direct calls
    archs = (["vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "alexnet"] if args.all_archs
             else ["vgg16", "resnet18", "alexnet"])
    repeats = 3
    batch, width, size = 8, 0.25, 64
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {batch}, "
          f"width {width}, CPU time, best of {repeats}", flush=True)
    print(f"{'arch':9s} {'method':22s} {'ours ms/img':>12s} {'floor ms/img':>13s} {'ratio':>6s}"
          f" {'vs library':>10s} {'vs fwd+bwd':>10s}")
    worst = 0.0
    for arch in archs:
        torch.manual_seed(0)
        model = make_explainable(build(arch, 10, 3, size, width)).eval()
        x = torch.rand(batch, 3, size, size)
        y = torch.arange(batch) % 10
        table = floors(model, x, y, size)
        library = library_calls(model, x, y)
        gad_support = GADSupport((0, 1), (0.0, 8.0), [copy.deepcopy(model) for _ in range(2)])
        names = list(table) if not args.quick else ["saliency", "integrated_gradients",
                                                     "gradcam", "deeplift", "lrp_tutorial"]
        for name in names:
            if name == "cam" and not arch.startswith("resnet"):
                continue
            params = {"support": gad_support, "base": "saliency"} if name == "gad" else {}
            run = functools.partial(explain, model, x, y, name, **PARAMS.get(name, params))
            run()  # warm-up (and the cached structure check / random copy)
            with preserved_model(model):
                table[name]()
            ours = best_of(run, repeats)
            with preserved_model(model):
                floor = best_of(table[name], repeats)
                plain = best_of(functools.partial(fwd_bwd, model, x, y), repeats)
                lib = best_of(library[name], repeats) if name in library else None
            ratio = ours / floor
            worst = max(worst, ratio)
            vs_lib = f"{ours / lib:10.2f}" if lib else f"{'':10s}"
            vs_plain = f"{ours / plain:10.2f}" if name.startswith("lrp") else ""
            print(f"{arch:9s} {name:22s} {1e3 * ours / batch:12.3f} {1e3 * floor / batch:13.3f} "
                  f"{ratio:6.2f} {vs_lib} {vs_plain}", flush=True)
    print(f"worst ratio: {worst:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
