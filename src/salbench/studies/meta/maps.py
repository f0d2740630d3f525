"""The maps a meta-evaluation scores: one known good by construction, degraded copies of it, and
copies that should score the same.

- **good** (:data:`GOOD`): the ground-truth mask itself, ``m`` repeated over the channels
  ``[B, C, H, W]`` — on data whose mask marks the pixels that drive the class, the best map
  there is. On the **linear reference** (:func:`fit_linear`), a linear model fitted to the same
  samples, the good map is its exact map for each metric (:func:`exact_map`): what each pixel
  adds to that model's logit against the value that metric puts in its place, whatever the
  mask says.
- **degraded** (:data:`DEGRADED`): the mask plus Gaussian noise of σ = 0.25, 0.5 and 1 × the map's
  standard deviation (per sample, one draw per pixel shared by the channels); the mask's pixels
  in a random order (``shuffled``: the same values, so every permutation-invariant statistic is
  unchanged); salbench's ``random`` method (U[0, 1) per pixel and channel); the ``random_model``
  method (saliency of a copy of the model with every layer re-initialised).
- **invariant** (:data:`INVARIANT`): changes that keep what the map says: ``scaled`` (× 2, a
  positive constant) and ``jitter`` (noise of 1 % of the map's standard deviation).

Every random draw comes from ``seed`` (and the kind), so one seed gives the same maps.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from salbench.explain import explain
from salbench.metrics.perturbation import ConstantFill, Fill, UniformFill
from salbench.metrics.removal import removal_fill

GOOD = "ground_truth"
NOISE_LEVELS = {"noise_0.25": 0.25, "noise_0.5": 0.5, "noise_1": 1.0}
DEGRADED = (*NOISE_LEVELS, "shuffled", "uniform_random", "random_model")
SEVERE = ("noise_1", "shuffled", "uniform_random", "random_model")
"""The degraded kinds a metric must tell from the good map to be trusted (light noise leaves the
map nearly right: a metric may saturate there without being wrong)."""
RANDOM = "uniform_random"
"""The kind a metric that cannot tell from the good map is flagged for."""
INVARIANT = ("scaled", "jitter")
INDEPENDENT = (RANDOM, "random_model")
"""The kinds made without the good map: the same maps whatever good map a metric is given."""
SCALE = 2.0
JITTER = 0.01
KINDS = (GOOD, *DEGRADED, *INVARIANT)


def _generator(seed: int, kind: str) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + zlib.crc32(kind.encode()))


def good_map(m: Tensor, channels: int) -> Tensor:
    """The mask ``m`` ``[B, H, W]`` as a map ``[B, C, H, W]`` (float)."""
    return m.float()[:, None].expand(-1, channels, -1, -1).contiguous()


def _noise_like(good: Tensor, sigma: float, seed: int, kind: str) -> Tensor:
    """``good`` + N(0, (σ · std of each sample's map)²), one draw per pixel for all channels."""
    b, _, h, w = good.shape
    noise = torch.randn((b, 1, h, w), generator=_generator(seed, kind)).to(good.device)
    std = good.flatten(1).std(1).clamp_min(1e-12)[:, None, None, None]
    return good + sigma * std * noise


def shuffled(good: Tensor, seed: int) -> Tensor:
    """Each sample's pixels (all channels together) in a random order from ``seed``."""
    b, c, h, w = good.shape
    keys = torch.rand((b, h * w), generator=_generator(seed, "shuffled")).to(good.device)
    order = keys.argsort(1)
    flat = good.flatten(2)
    return flat.gather(2, order[:, None].expand(-1, c, -1)).reshape(good.shape)


def fit_linear(x: Tensor, y: Tensor, num_classes: int, weight_decay: float = 1e-3,
               steps: int = 200) -> nn.Sequential:
    """A linear classifier ``Flatten → Linear(C·H·W, num_classes)`` fitted to ``x``, ``y``:
    cross-entropy + ``weight_decay`` · ||W||² (the penalty keeps the optimum finite on separable
    data), full batch, L-BFGS (strong Wolfe line search) from zero weights for at most ``steps``
    iterations: deterministic for given data. Returned in eval mode."""
    linear = nn.Linear(x[0].numel(), num_classes).to(x.device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    model = nn.Sequential(nn.Flatten(), linear)
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=steps,
                                  line_search_fn="strong_wolfe")
    flat = x.detach().flatten(1).float()

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = (nn.functional.cross_entropy(linear(flat), y)
                + weight_decay * linear.weight.pow(2).sum())
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


BASELINE = 0.5
"""The reference input of :func:`contributions` where a metric has no replacement image of its
own: the value salbench's perturbation metrics put in a removed pixel on [0, 1] inputs (the
``gray`` fill; the mean of their uniform-noise fills)."""


def contributions(model: nn.Sequential, x: Tensor, y: Tensor,
                  baseline: float | Tensor = BASELINE) -> Tensor:
    """The exact contribution map of a linear model ``Flatten → Linear`` (:func:`fit_linear`)
    against a reference input ``r`` (a constant or an image broadcastable to ``x``):
    ``W_y ⊙ (x − r)``, shaped like ``x`` ``[B, C, H, W]``. Pixel i is exactly what replacing x_i
    by r_i removes from the logit f_y, and the map sums to f_y(x) − f_y(r); it is what
    integrated gradients and DeepLIFT give a linear model with that baseline. A perturbation
    metric that fills with r therefore drops the logit fastest along this map's order (one
    pixel per patch): the map is good for the model by construction."""
    return (_weights(model, x, y) * (x - baseline)).detach()


def _weights(model: nn.Sequential, x: Tensor, y: Tensor) -> Tensor:
    if not (isinstance(model, nn.Sequential) and len(model) == 2
            and isinstance(model[0], nn.Flatten) and isinstance(model[1], nn.Linear)):
        raise TypeError("contributions needs nn.Sequential(nn.Flatten(), nn.Linear(...)), "
                        f"got {type(model).__name__}")
    return model[1].weight[y].reshape(x.shape)


def replacement(name: str, params: Mapping[str, Any]) -> Fill | None:
    """The static fill metric ``name`` (with its resolved ``params``) puts where it removes
    pixels: its ``fill`` (insertion: its ``start`` canvas), a uniform-noise fill by its mean
    (the noise's expectation, so the map is exact in expectation only: one noise draw u adds
    W_y ⊙ (0.5 − u) and may reorder close regions). None where the replacement depends on
    what is removed (inpainting fills, ROAD's imputation) or the metric removes nothing."""
    key = "start" if name == "insertion" else "fill"
    if key not in params or "input_range" not in params:
        return None
    fill = removal_fill(params[key], tuple(params["input_range"]))
    if isinstance(fill, UniformFill):
        fill = ConstantFill((fill.low + fill.high) / 2)
    return None if fill.mask_dependent else fill


def exact_map(model: nn.Sequential, x: Tensor, y: Tensor, name: str,
              params: Mapping[str, Any]) -> tuple[Tensor, str]:
    """The linear model's map that is exact for metric ``name`` (resolved ``params``), and how
    it was made:

    - a removal metric with a static replacement r (:func:`replacement`): ``W_y ⊙ (x − r)``,
      what removing each pixel takes from the logit under that metric's own fill (exact for a
      metric that scores the logit; one that scores the softmax probability sees it exactly
      only where p_y is monotone in f_y, e.g. two classes with W_0 = −W_1, else approximately);
    - ``infidelity``: ``W_y``, since Iᵀ W_y = f_y(x) − f_y(x − I) for every perturbation I
      (infidelity 0, Yeh et al. 2019, section 2);
    - ``conservation``: ``W_y ⊙ x + b_y / D`` (D input values), which sums to f_y(x)
      (conservation error 0);
    - any other metric: ``W_y ⊙ (x − 0.5)`` (:data:`BASELINE`).
    """
    if name == "infidelity":
        return _weights(model, x, y).clone(), "W_y (infidelity 0)"
    if name == "conservation":
        bias = model[1].bias[y].view(-1, 1, 1, 1) / x[0].numel()
        return contributions(model, x, y, 0.0) + bias, "W_y ⊙ x + b_y / D (sums to f_y(x))"
    fill = replacement(name, params)
    if fill is None:
        return contributions(model, x, y), f"W_y ⊙ (x − {BASELINE:g})"
    return contributions(model, x, y, fill(x, None)), f"W_y ⊙ (x − r), r = {fill!r}"


def make_maps(model: nn.Module, x: Tensor, y: Tensor, m: Tensor, seed: int,
              kinds: Sequence[str] = KINDS, good: Tensor | None = None) -> dict[str, Tensor]:
    """Every map of ``kinds`` for the samples ``x``, ``y`` with masks ``m``, from ``seed``; the
    good map is ``good`` when given (the linear reference's contributions), else the mask."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"kinds must be among {list(KINDS)}, got {unknown}")
    if good is None:
        good = good_map(m, x.shape[1]).to(x.device)
    makers: dict[str, Callable[[], Tensor]] = {
        GOOD: lambda: good,
        "shuffled": lambda: shuffled(good, seed),
        RANDOM: lambda: explain(model, x, y, "random", seed=seed),
        "random_model": lambda: explain(model, x, y, "random_model", seed=seed).detach(),
        "scaled": lambda: good * SCALE,
        "jitter": lambda: _noise_like(good, JITTER, seed, "jitter"),
    }
    for kind, sigma in NOISE_LEVELS.items():
        makers[kind] = lambda sigma=sigma, kind=kind: _noise_like(good, sigma, seed, kind)
    return {kind: makers[kind]() for kind in kinds}
