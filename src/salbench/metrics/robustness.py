"""Robustness of explanations: max- and avg-sensitivity (Yeh et al. 2019; document 003,
section 2.2.2, settings in table 6).

SENS_MAX(Φ, f, x, r) = max_{‖δ‖∞ ≤ r} ‖Φ(f, x) − Φ(f, x + δ)‖_F, estimated by Monte-Carlo over
``n_samples`` perturbations δ ~ U[−r, r]^D; SENS_AVG takes the mean instead of the max. The
explanations of all samples × perturbations are computed as batched calls of ``explain_fn``,
in chunks bounded by ``memory_budget`` (bytes of inputs plus forward activations; on the CPU the
default is cache-sized, where explanations also run fastest per image); the unperturbed
explanation is computed once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from salbench.metrics import registry as R
from salbench.metrics._checks import (
    check_attributions,
    check_choice,
    check_images,
    check_targets,
    chunk_size,
)

ExplainFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
# (radius, n_samples) pairs of document 003, table 6.
TABLE_6 = ((0.05, 20), (0.1, 20), (0.2, 30), (0.3, 30), (0.4, 40), (0.5, 40))


class Sensitivity(NamedTuple):
    """``scores`` ``[B]`` and the per-perturbation distances ``[B, n_samples]``."""

    scores: Tensor
    distances: Tensor


def _explanation_targets(model: nn.Module, x: Tensor, y: Tensor, target: str) -> Tensor:
    check_choice(target, "target", ("predicted", "label"))
    if target == "label":
        return y
    with torch.no_grad():  # not inference_mode: the targets feed explain_fn's autograd graph
        return model(x).argmax(1)


def sensitivity_distances(model: nn.Module, x: Tensor, y: Tensor, explain_fn: ExplainFn, *,
                          radius: float = 0.2, n_samples: int = 20, relative: bool = False,
                          target: str = "predicted", a: Tensor | None = None,
                          noise: Tensor | None = None, seed: int = 0,
                          memory_budget: int | None = None) -> Tensor:
    """‖Φ(x) − Φ(x + δ_j)‖_F for every sample and perturbation j: ``[B, n_samples]``.

    ``explain_fn(model, x, y) -> [B, C, H, W]`` (any method; see :mod:`salbench.explain`), called
    with the class predicted on the unperturbed x (``target="predicted"``, Yeh et al. and
    document 003) or with ``y`` (``target="label"``). ``relative=True`` divides by ‖Φ(x)‖_F
    (Quantus's and Captum's form; document 003's code does not). ``a``: the explanation at x if
    already computed. ``noise``: explicit δ ``[n_samples, B, C, H, W]`` (to reproduce another
    implementation); by default δ ~ U[−radius, radius] i.i.d. per input value from ``seed``.
    """
    check_images(x)
    check_targets(y, x.shape[0])
    if not callable(explain_fn):
        raise TypeError("explain_fn must be a callable explain_fn(model, x, y) -> Tensor")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if not radius > 0:
        raise ValueError(f"radius must be positive (L-infinity radius), got {radius!r}")
    if noise is not None and tuple(noise.shape) != (n_samples, *x.shape):
        raise ValueError(f"noise must have shape {(n_samples, *x.shape)} "
                         f"([n_samples, B, C, H, W]), got {tuple(noise.shape)}")
    targets = _explanation_targets(model, x, y, target)
    if a is None:
        a = explain_fn(model, x, targets)
    a = check_attributions(a).detach()
    if a.shape[0] != x.shape[0]:
        raise ValueError(f"a has batch size {a.shape[0]}, expected {x.shape[0]}")
    b = x.shape[0]
    if noise is None:
        g = torch.Generator().manual_seed(seed)
        noise = ((torch.rand((n_samples, *x.shape), generator=g, dtype=torch.float64) * 2 - 1)
                 * radius).to(x.dtype)
    flat_noise = noise.reshape(n_samples * b, *x.shape[1:])
    per_call = chunk_size(model, x, memory_budget)
    a_flat = a.flatten(1)
    distances = torch.empty(n_samples * b, dtype=torch.float64, device=x.device)
    rows = torch.arange(n_samples * b, device=x.device) % b
    for start in range(0, n_samples * b, per_call):
        stop = min(start + per_call, n_samples * b)
        bi = rows[start:stop]
        xp = x[bi] + flat_noise[start:stop].to(x.device)
        ap = explain_fn(model, xp, targets[bi]).detach()
        distances[start:stop] = (a_flat[bi] - ap.flatten(1)).double().norm(dim=1)
    if not bool(torch.isfinite(distances).all()):  # one check: a NaN/inf map gives NaN/inf
        raise ValueError("explain_fn output contains NaN or infinite values for perturbed inputs")
    distances = distances.view(n_samples, b).T
    if relative:
        distances = distances / a_flat.double().norm(dim=1, keepdim=True)
    return distances.to(x.dtype)


def max_sensitivity(model: nn.Module, x: Tensor, y: Tensor, explain_fn: ExplainFn,
                    **params) -> Sensitivity:
    """Max-sensitivity (Yeh et al. 2019; document 003, eq. 8): the largest
    ‖Φ(x) − Φ(x + δ)‖_F over the sampled δ. Parameters: :func:`sensitivity_distances`
    (``radius``, ``n_samples``, ``relative``, ``target``, ``a``, ``noise``, ``seed``,
    ``memory_budget``)."""
    d = sensitivity_distances(model, x, y, explain_fn, **params)
    return Sensitivity(d.amax(1), d)


def avg_sensitivity(model: nn.Module, x: Tensor, y: Tensor, explain_fn: ExplainFn,
                    **params) -> Sensitivity:
    """Avg-sensitivity (Yeh et al. 2019): the mean of ‖Φ(x) − Φ(x + δ)‖_F over the sampled δ."""
    d = sensitivity_distances(model, x, y, explain_fn, **params)
    return Sensitivity(d.mean(1), d)


def _sensitivity_cost(params, shape, model=None) -> R.Cost:
    return R.Cost(forward=1.0, explanations=float(params["n_samples"]))


_SENSITIVITY_PARAMS = {"radius": 0.2, "n_samples": 20, "relative": False, "target": "predicted",
                       "noise": None, "seed": 0, "memory_budget": None}
for _name, _fn, _summary, _how in (
        ("max_sensitivity", max_sensitivity, "largest", "max"),
        ("avg_sensitivity", avg_sensitivity, "mean", "mean")):
    R.register(
        _name, kind="explainer", function=_fn, params=_SENSITIVITY_PARAMS,
        outputs=[R.Output(_name, "lower", R.NON_NEGATIVE, f"{_summary} ‖Φ(x) − Φ(x + δ)‖_F over "
                          "the sampled δ (relative: divided by ‖Φ(x)‖_F)")],
        adapt=lambda raw, p, name=_name: ({name: raw.scores}, {}, {}), cost=_sensitivity_cost,
        source="Yeh et al. 2019; document 003, section 2.2.2",
        summary=f"{_how} change of the explanation under uniform input noise of radius r")
