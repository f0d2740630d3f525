"""Explanation infidelity (Yeh et al. 2019, "On the (in)fidelity and sensitivity of
explanations", NeurIPS, section 2, definition 2.1; Captum's ``captum.metrics.infidelity``):

    INFD(Φ, f, x) = E_{I ∼ μ_I} [ (Iᵀ Φ(f, x) − (f(x) − f(x − I)))² ],

the mean squared error between the change of the model's score that the map predicts for a
perturbation I (the dot product Iᵀ Φ over every input value) and the change that happens.
μ_I here is Gaussian noise, I ∼ N(0, std²) i.i.d. per input value (the perturbation of Captum's
docs; Yeh et al.'s public code draws std 0.2 and clips x − I to the input range, which this
function does not). The expectation is estimated from ``n_samples`` draws.

The unperturbed pass runs once; the perturbed inputs of many (sample, draw) pairs go through the
model together, in chunks bounded by ``memory_budget`` (the eager model: infidelity subtracts
nearby scores, so no fused or bf16 copy).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from salbench.metrics import registry as R
from salbench.metrics._checks import (
    ScoreFn,
    check_model_inputs,
    chunk_size,
    forward_chunks,
    target_score,
)

STD = 0.2  # noise std of Yeh et al.'s public code (saliency_evaluation, "Gaussian" infidelity)
N_SAMPLES = 100  # perturbations per image in the same code (Captum's default is 10)


def gaussian_perturbations(shape: tuple[int, ...], n_samples: int, std: float,
                           seed: int) -> Iterator[Tensor]:
    """The draws, one at a time: ``n_samples`` tensors I_j of ``shape`` = [B, C, H, W], float64
    on the CPU, each ``std · torch.randn(shape)`` from one generator seeded with ``seed``, in
    order j = 0, 1, … (the same draws whatever the chunking; sample i of draw j is
    ``I_j[i]``)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_samples):
        yield torch.randn(shape, generator=g, dtype=torch.float64) * std


def infidelity(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *, std: float = STD,
               n_samples: int = N_SAMPLES, normalise: bool = False,
               score: str | ScoreFn = "logit", seed: int = 0,
               memory_budget: int | None = None) -> Tensor:
    """Infidelity ``[B]`` (float64) of the maps ``a`` for the classes ``y``: the mean over
    ``n_samples`` Gaussian perturbations I_j (:func:`gaussian_perturbations`, from ``seed``) of
    (Σ I_j · a − (f(x) − f(x − I_j)))², f = ``score`` of class ``y`` (``logit``, ``probability``
    or a callable ``(outputs, y) -> [N]``). Lower is better: 0 when the map predicts every change.

    ``a``: ``[B, C, H, W]`` as the method returns it (no channel reduction: the dot product runs
    over every input value), or ``[B, 1, H, W]`` / ``[B, H, W]``, then the same weight for each
    channel of a pixel. ``normalise=True`` scales Iᵀa by the optimal β = Σ_j Iᵀa·Δf / Σ_j (Iᵀa)²
    first (β = 0 where every Iᵀa is 0), which makes the score invariant to the map's scale
    (Captum's ``normalize=True``; the optimal scaling of Yeh et al.'s code). The model is used as
    given (call ``model.eval()`` first); no gradients are taken.
    """
    check_model_inputs(model, x, y, a)
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not std > 0:
        raise ValueError(f"std must be a positive number (the noise standard deviation), got "
                         f"{std!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer (perturbations per image), got "
                         f"{n_samples!r}")
    if not isinstance(normalise, bool):
        raise TypeError(f"normalise must be True or False, got {normalise!r}")
    scorer = target_score(score)
    b = x.shape[0]
    weights = (a[:, None] if a.ndim == 3 else a).detach().double()
    draws = gaussian_perturbations(tuple(x.shape), n_samples, float(std), seed)
    per_block = max(1, chunk_size(model, x, memory_budget) // b)  # draws per block of passes
    predicted = torch.empty(n_samples, b, dtype=torch.float64, device=x.device)
    change = torch.empty(n_samples, b, dtype=torch.float64, device=x.device)
    with torch.inference_mode():
        f_x = scorer(forward_chunks(model, x, memory_budget), y).double()
        for start in range(0, n_samples, per_block):
            block = list(itertools.islice(draws, per_block))
            noise = torch.stack(block).to(x.device, x.dtype)
            k = len(noise)
            perturbed = (x.unsqueeze(0) - noise).flatten(0, 1)
            f_p = scorer(forward_chunks(model, perturbed, memory_budget), y.repeat(k)).double()
            change[start:start + k] = f_x - f_p.view(k, b)
            predicted[start:start + k] = (noise.double() * weights).flatten(2).sum(2)
    if normalise:
        num, den = (predicted * change).sum(0), (predicted * predicted).sum(0)
        beta = torch.where(den == 0, torch.zeros_like(num), num / torch.where(
            den == 0, torch.ones_like(den), den))
        predicted = predicted * beta
    return ((predicted - change) ** 2).mean(0)


R.register(
    "infidelity", kind="model", function=infidelity,
    outputs=[R.Output("infidelity", "lower", R.NON_NEGATIVE,
                      "mean (Iᵀa − (f(x) − f(x − I)))² over Gaussian perturbations I: lower = "
                      "the map predicts the model's changes better")],
    adapt=R.single("infidelity"),
    cost=lambda params, shape, model=None: R.Cost(forward=1 + params["n_samples"]),
    source="Yeh et al. 2019, section 2, definition 2.1; as captum.metrics.infidelity",
    summary="squared error of the score change the map predicts under Gaussian input noise")
