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

"vs library" is ours against the same direct Captum call (the wrapper's own overhead; DeepLIFT and
DeepLiftSHAP are salbench's own rescale rule, so there it is the speed-up over Captum).

Then the lrp-grid study's composites on the fast LRP backend (``lrp_grid_maps``, issue 14), on
VGG-16 width 0.25 at 64 px and width 1 at 224 px: one grid point and a 6 x 6 grid's cost per
point, against the Zennit composite (floor column) and one forward + backward (last column).

Usage: .venv/bin/python benchmarks/methods.py [--quick] [--all-archs] [--lrp-grid-only]
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

from salbench.explain import GADSupport, explain, lrp_grid_maps
from salbench.explain.checks import preserved_model
from salbench.explain.gradients import default_conv_layer
from salbench.explain.lrp import build_composite, composite_for
from salbench.explain.registry import get_method
from salbench.models import ARCHITECTURES, build, make_explainable
from salbench.studies.lrp_grid.config import COMPOSITES, DEFAULTS
from salbench.studies.lrp_grid.grid import composite_spec as grid_composite


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


def zennit_by_hand(model, x, y, method, composite=None):
    """A registered LRP method's composite (or ``composite``) applied by hand."""
    if composite is None:
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


HEADER = (f"{'arch':9s} {'method':22s} {'ours ms/img':>12s} {'floor ms/img':>13s} {'ratio':>6s}"
          f" {'vs library':>10s} {'vs fwd+bwd':>10s}")


def best_of(fn, repeats: int) -> float:
    """Smallest process CPU time of ``repeats`` calls (robust to other jobs on a shared machine)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


# The lrp-grid study on the fast LRP backend (issue 14: one grid point <= 3x one forward +
# backward): VGG-16 width 0.25 at 64 px (batch 2, best of 3) and width 1 at 224 px (batch 1, one
# repeat); each composite at its default point, and a 6 x 6 grid through lrp_grid_maps.
GRID_AXIS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
GRID_CASES = ((0.25, 64, 2, 3), (1.0, 224, 1, 1))  # width, input size, batch, repeats


def lrp_grid_lines() -> None:
    """Print, per case and composite: ``fast <composite>``, one grid point by ``lrp_grid_maps``
    against the same composite by Zennit applied by hand (floor column) and against one forward
    + backward; ``... 6x6/pt``, a 6 x 6 grid's time per point against the same two."""
    for width, size, batch, repeats in GRID_CASES:
        torch.manual_seed(0)
        model = make_explainable(build("vgg16", 10, 3, size, width)).eval()
        x = torch.rand(batch, 3, size, size)
        y = torch.arange(batch) % 10
        print(f"lrp-grid points, fast LRP backend: vgg16 width {width}, {size} px, batch "
              f"{batch}, best of {repeats}; floor = the Zennit composite", flush=True)
        with preserved_model(model):
            plain = best_of(functools.partial(fwd_bwd, model, x, y), repeats)
        for composite in COMPOSITES:
            spec = grid_composite(composite, *DEFAULTS[composite], "zennit")
            grid = [grid_composite(composite, a, b, "zennit") for a in GRID_AXIS
                    for b in GRID_AXIS]
            point = functools.partial(lrp_grid_maps, model, x, y, [spec])
            point()  # warm-up (the traced graph is cached per model)
            fast = best_of(point, repeats)
            with preserved_model(model):
                zennit = best_of(functools.partial(
                    zennit_by_hand, model, x, y, None, build_composite(model, spec, x)), repeats)
            per_point = best_of(functools.partial(lrp_grid_maps, model, x, y, grid), 1) / len(grid)
            short = composite.replace("decreasing_gamma", "dec_gamma")
            for name, ours in ((f"fast {short}", fast), (f"fast {short} 6x6/pt", per_point)):
                print(f"{'vgg16':9s} {name:22s} {1e3 * ours / batch:12.3f} "
                      f"{1e3 * zennit / batch:13.3f} {ours / zennit:6.2f} {'':10s} "
                      f"{ours / plain:10.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and methods")
    parser.add_argument("--all-archs", action="store_true", help="every zoo architecture")
    parser.add_argument("--lrp-grid-only", action="store_true",
                        help="only the lrp-grid lines (fast LRP backend, about 2 min)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU time is "
                        "measured, so one thread keeps the figures honest on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # Captum's notices on direct calls
    if args.lrp_grid_only:
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU time")
        print(HEADER)
        lrp_grid_lines()
        return
    archs = list(ARCHITECTURES) if args.all_archs else ["vgg16", "resnet18", "alexnet"]
    repeats = 3
    batch, width, size = 8, 0.25, 64
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {batch}, "
          f"width {width}, CPU time, best of {repeats}", flush=True)
    print(HEADER)
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
    lrp_grid_lines()


if __name__ == "__main__":
    main()
