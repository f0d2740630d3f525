"""Complexity of attribution maps: how concentrated the magnitude |s| of a map is, where s is the
map ``a`` reduced over channels by ``reduce`` (an explicit, named step) and flattened to n values
per sample. Computed from the map alone, no model pass.

- :func:`sparseness`, the Gini index of |s| (Chalasani et al. 2020, "Concise explanations of
  neural networks using adversarial training", ICML; Quantus ``Sparseness``): 0 for a uniform
  map, 1 − 1/n for a map with one non-zero value. Higher = more concentrated.
- :func:`complexity`, the entropy of the fractional contribution p_i = |s_i| / Σ_j |s_j| (Bhatt
  et al. 2020, "Evaluating and aggregating feature-based model explanations", IJCAI, the "low
  complexity" criterion; Quantus ``Complexity``): 0 for one non-zero value, ln n for a uniform
  map. Lower = simpler.
- :func:`effective_complexity`, the number of values with |s_i| > ``eps`` (Nguyen & Martínez
  2020, "On quantitative aspects of model interpretability", arXiv:2007.07584; Quantus
  ``EffectiveComplexity``). Lower = simpler.

Undefined cases give NaN (DESIGN.md: never scored silently): an all-zero map has no sparseness
and no fractional contribution. Everything is computed in float64 and returned as ``[B]``
float64 on the maps' device.

Where Quantus 0.6 differs by design (``tests/metrics/test_complexity.py`` shows each mapping):
it takes |a| and divides by the per-sample max |a| before scoring (``abs=True,
normalise=True``), which changes nothing for the Gini index and the entropy (both are
scale-invariant) but rescales ``eps`` of the effective complexity; and its sparseness adds
1e-7 to every value, so ``quantus = ours · Σ|s| / (Σ|s| + n·1e-7)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from salbench.metrics import registry as R
from salbench.metrics._checks import check_attributions, reduce_channels


def magnitudes(a: Tensor, reduce: str = "sum") -> Tensor:
    """|s| ``[B, n]`` float64: ``a`` ``[B, C, H, W]`` (or reduced ``[B, H, W]``) reduced over
    channels by ``reduce`` (:func:`~salbench.metrics._checks.reduce_channels`), then the absolute
    value, flattened."""
    s = reduce_channels(check_attributions(a), reduce)
    return s.detach().double().abs().flatten(1)


def sparseness(a: Tensor, *, reduce: str = "sum") -> Tensor:
    """Gini index of |s| per sample (Chalasani et al. 2020; Hurley & Rickard 2009's form):
    with the n magnitudes sorted ascending, v_(1) ≤ … ≤ v_(n),

        G = Σ_k (2k − n − 1) · v_(k) / (n · Σ_k v_(k))      ∈ [0, 1 − 1/n].

    0 when every value is equal, 1 − 1/n when one value holds everything; NaN for an all-zero
    map (0/0)."""
    v = torch.sort(magnitudes(a, reduce), dim=1).values
    n = v.shape[1]
    k = torch.arange(1, n + 1, dtype=v.dtype, device=v.device)
    total = v.sum(1)
    gini = ((2 * k - n - 1) * v).sum(1) / (n * total)
    return torch.where(total > 0, gini, torch.full_like(gini, torch.nan))


def complexity(a: Tensor, *, reduce: str = "sum") -> Tensor:
    """Entropy of the fractional contribution distribution per sample (Bhatt et al. 2020):
    p_i = |s_i| / Σ_j |s_j|, H = −Σ_i p_i ln p_i (natural log, 0 · ln 0 = 0) ∈ [0, ln n].
    NaN for an all-zero map (no distribution)."""
    v = magnitudes(a, reduce)
    total = v.sum(1, keepdim=True)
    p = v / total
    entropy = -torch.special.xlogy(p, p).sum(1)
    return torch.where(total[:, 0] > 0, entropy, torch.full_like(entropy, torch.nan))


def effective_complexity(a: Tensor, *, eps: float = 1e-5, reduce: str = "sum") -> Tensor:
    """Number of values with |s_i| > ``eps`` per sample (Nguyen & Martínez 2020), ∈ [0, n].

    ``eps`` is absolute, in the map's own units (Quantus's default 1e-5, which it applies after
    dividing each map by its max |a|; normalise first, e.g. with
    :func:`salbench.explain.postprocess.normalise_max_abs`, to get its numbers)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a non-negative number (threshold on |s|), got {eps!r}")
    return (magnitudes(a, reduce) > eps).sum(1).double()


R.register(
    "sparseness", kind="map", function=sparseness,
    outputs=[R.Output("sparseness", "higher", R.UNIT,
                      "Gini index of |s|: higher = the relevance is concentrated on fewer pixels "
                      "(a concise explanation, Chalasani et al.); 0 uniform, 1 − 1/n one pixel")],
    adapt=R.single("sparseness"), cost=R.free,
    source="Chalasani et al. 2020 (ICML), Gini index; as Quantus Sparseness",
    summary="Gini index of the map's magnitudes (how concentrated the map is)")
R.register(
    "complexity", kind="map", function=complexity,
    outputs=[R.Output("complexity", "lower", R.NON_NEGATIVE,
                      "entropy of |s| / Σ|s|: lower = fewer pixels carry the relevance (Bhatt et "
                      "al.'s and Quantus's 'lower is better'); 0 one pixel, ln n uniform")],
    adapt=R.single("complexity"), cost=R.free,
    source="Bhatt et al. 2020 (IJCAI), complexity criterion; as Quantus Complexity",
    summary="entropy of the fractional contribution distribution |s| / Σ|s|")
R.register(
    "effective_complexity", kind="map", function=effective_complexity,
    outputs=[R.Output("effective_complexity", "lower", R.NON_NEGATIVE,
                      "number of pixels with |s| > eps: lower = fewer pixels needed (Nguyen & "
                      "Martínez; Quantus's 'lower is better')")],
    adapt=R.single("effective_complexity"), cost=R.free,
    source="Nguyen & Martínez 2020 (arXiv:2007.07584), effective complexity; as Quantus "
           "EffectiveComplexity",
    summary="number of map values above eps in magnitude")
