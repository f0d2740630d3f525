"""Sanity checks: model parameter randomisation (Adebayo et al. 2018) and the random logit test
(Sixt et al. 2020, :func:`random_logit`).

The explanations of the trained model are compared with those of copies whose layers are
re-initialised one after another, from the output side (``top-down``) or the input side
(``bottom-up``): ``cascading`` keeps earlier layers randomised, ``independent`` randomises one
layer at a time. Similarities per layer and sample: Spearman rank correlation, SSIM and HOG
(Pearson correlation of the maps' HOG descriptors). A faithful method's similarity drops as
layers are randomised.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from skimage.feature import hog
from torch import Tensor, nn

from salbench.explain.checks import preserved_model
from salbench.metrics import registry as R
from salbench.metrics._checks import (
    average_ranks,
    check_attributions,
    check_choice,
    check_images,
    check_targets,
    reduce_channels,
)
from salbench.runtime.seeding import torch_seeded

ExplainFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
SIMILARITIES = ("spearman", "ssim", "hog")


def _pearson(u: Tensor, v: Tensor) -> Tensor:
    """Row-wise Pearson correlation ``[B]``; 0 where a row is constant (no information)."""
    u = u.double() - u.double().mean(1, keepdim=True)
    v = v.double() - v.double().mean(1, keepdim=True)
    den = u.norm(dim=1) * v.norm(dim=1)
    return torch.where(den == 0, torch.zeros_like(den), (u * v).sum(1) / torch.where(
        den == 0, torch.ones_like(den), den))


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of each pair of flattened maps ``[B, ...]`` (mid-ranks for ties,
    as scipy); 0 where a map is constant."""
    return _pearson(average_ranks(a.flatten(1)), average_ranks(b.flatten(1)))


def ssim(a: Tensor, b: Tensor, data_range: Tensor | float | None = None,
         win_size: int = 7) -> Tensor:
    """Mean structural similarity of maps ``[B, H, W]`` with scikit-image's defaults: uniform
    ``win_size`` window, K1 = 0.01, K2 = 0.03, sample covariance, borders of (win_size − 1)/2
    cropped. ``data_range`` defaults per pair to max − min over both maps (as Quantus)."""
    a, b = a.double()[:, None], b.double()[:, None]
    if data_range is None:
        both = torch.cat([a, b], 1).flatten(1)
        data_range = (both.amax(1) - both.amin(1)).view(-1, 1, 1, 1)

    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, win_size, stride=1)

    n = win_size**2
    cov_norm = n / (n - 1)
    ua, ub = mean(a), mean(b)
    va = cov_norm * (mean(a * a) - ua * ua)
    vb = cov_norm * (mean(b * b) - ub * ub)
    vab = cov_norm * (mean(a * b) - ua * ub)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua**2 + ub**2 + c1) * (va + vb + c2))
    return s.flatten(1).mean(1)


def hog_similarity(a: Tensor, b: Tensor, pixels_per_cell: int = 8) -> Tensor:
    """Pearson correlation of the HOG descriptors (scikit-image, 9 orientations,
    ``pixels_per_cell``², 2×2-cell blocks) of each pair of maps ``[B, H, W]``. Per-sample
    scikit-image calls (CPU)."""
    def descriptors(t: Tensor) -> Tensor:
        arr = t.detach().double().cpu().numpy()
        cell = (pixels_per_cell, pixels_per_cell)
        return torch.from_numpy(np.stack([hog(m, pixels_per_cell=cell, cells_per_block=(2, 2))
                                          for m in arr]))
    return _pearson(descriptors(a), descriptors(b)).to(a.device)


def _similarity_to(name: str, original: Tensor) -> Callable[[Tensor], Tensor]:
    """The similarity ``name`` of maps to a fixed ``original`` (for Spearman its ranks are
    computed once)."""
    if name == "spearman":
        ranks = average_ranks(original.flatten(1))
        return lambda b: _pearson(ranks, average_ranks(b.flatten(1)))
    similarity = {"ssim": ssim, "hog": hog_similarity}[name]
    return lambda b: similarity(original, b)


def randomisable_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own a ``reset_parameters`` (convolutions, linear and
    normalisation layers), in definition order (input side first)."""
    return [name for name, mod in model.named_modules()
            if name and hasattr(mod, "reset_parameters")]


class Randomisation(NamedTuple):
    """``layers``: the randomised layer after each step; ``scores``: per similarity a tensor
    ``[L, B]`` (row l: after randomising ``layers[l]``, cumulatively when cascading)."""

    layers: list[str]
    scores: dict[str, Tensor]


def model_randomisation(model: nn.Module, x: Tensor, y: Tensor, explain_fn: ExplainFn, *,
                        a: Tensor | None = None, mode: str = "cascading",
                        order: str = "top-down", layers: Sequence[str] | None = None,
                        similarities: Sequence[str] = SIMILARITIES, reduce: str = "sum",
                        seed: int = 42) -> Randomisation:
    """Model parameter randomisation test (Adebayo et al. 2018).

    ``explain_fn(model, x, y) -> [B, C, H, W]`` explains the original model (unless ``a`` is
    given) and each randomised copy, for the classes ``y``, one batched call per layer.
    ``mode``: ``cascading`` or ``independent``; ``order``: ``top-down`` (output side first) or
    ``bottom-up``; ``layers``: names to randomise (default :func:`randomisable_layers`). Each
    layer is re-initialised by its ``reset_parameters()`` after seeding torch's generator with
    ``seed`` (:func:`~salbench.runtime.seeding.torch_seeded`: the caller's random state is left
    alone; Quantus 0.6 seeds with ``seed + 1`` before every layer). Maps are reduced over
    channels by ``reduce`` before comparison. The model itself is never modified (deep copies).
    """
    check_images(x)
    check_targets(y, x.shape[0])
    check_choice(mode, "mode", ("cascading", "independent"))
    check_choice(order, "order", ("top-down", "bottom-up"))
    for name in similarities:
        check_choice(name, "similarities", SIMILARITIES)
    names = list(layers) if layers is not None else randomisable_layers(model)
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules or not hasattr(modules[name], "reset_parameters"):
            raise ValueError(f"layers: {name!r} is not a module of the model with "
                             "reset_parameters()")
    if order == "top-down":
        names = names[::-1]
    if a is None:
        a = explain_fn(model, x, y)
    original = reduce_channels(check_attributions(a).detach(), reduce)
    scores: dict[str, list[Tensor]] = {name: [] for name in similarities}
    compare = {name: _similarity_to(name, original) for name in similarities}
    randomised = copy.deepcopy(model)
    for name in names:
        if mode == "independent":
            randomised = copy.deepcopy(model)
        with torch_seeded(seed, x.device), torch.no_grad():
            dict(randomised.named_modules())[name].reset_parameters()
        perturbed = reduce_channels(check_attributions(explain_fn(randomised, x, y).detach(),
                                                       "explain_fn output"), reduce)
        for sim in similarities:
            scores[sim].append(compare[sim](perturbed).to(x.dtype))
    return Randomisation(names, {k: torch.stack(v) for k, v in scores.items()})


def _randomisation_result(raw: Randomisation, params) -> tuple[dict, dict, dict]:
    x = torch.arange(1, len(raw.layers) + 1, dtype=torch.float64)
    curves = {sim: R.Curve(x, values.T.double().cpu(), "layers randomised", tuple(raw.layers))
              for sim, values in raw.scores.items()}
    return {sim: values.mean(0) for sim, values in raw.scores.items()}, curves, {}


def _randomisation_cost(params, shape, model=None) -> R.Cost:
    if params["layers"] is not None:
        layers = len(params["layers"])
    else:
        layers = len(randomisable_layers(model)) if model is not None else float("nan")
    return R.Cost(explanations=float(layers))


R.register(
    "model_randomisation", kind="explainer", function=model_randomisation,
    outputs=[R.Output(sim, "lower", (-1.0, 1.0), f"{sim} similarity of the original and the "
                      "randomised model's maps, mean over the randomised layers")
             for sim in SIMILARITIES],
    curves=SIMILARITIES, adapt=_randomisation_result, cost=_randomisation_cost,
    source="Adebayo et al. 2018", summary="model parameter randomisation test: maps should "
    "change as layers are re-initialised")


# ---------------------------------------------------------------- random logit


class RandomLogit(NamedTuple):
    """``off_class`` ``[B]``: the random other class explained per sample; ``scores``: per
    similarity ``[B]``, the similarity of the maps for ``y`` and for ``off_class``."""

    off_class: Tensor
    scores: dict[str, Tensor]


def random_other_classes(y: Tensor, n_classes: int, seed: int = 42) -> Tensor:
    """One class ≠ y_i per sample, uniform over the other ``n_classes − 1``: u_i uniform on
    {0, …, K − 2} from NumPy's ``RandomState(seed).randint`` (the draws of Quantus 0.6's
    ``RandomLogit`` for the same seed and batch), then u_i + 1 where u_i ≥ y_i (skipping y_i)."""
    u = np.random.RandomState(seed).randint(0, n_classes - 1, size=len(y))
    u = torch.from_numpy(u).to(y.device, y.dtype)
    return u + (u >= y).to(y.dtype)


def random_logit(model: nn.Module, x: Tensor, y: Tensor, explain_fn: ExplainFn, *,
                 a: Tensor | None = None, n_classes: int | None = None,
                 similarities: Sequence[str] = SIMILARITIES, reduce: str = "sum",
                 seed: int = 42) -> RandomLogit:
    """Random logit test (Sixt et al. 2020, "When explanations lie: why many modified BP
    attributions fail", ICML; Quantus 0.6 ``RandomLogit``): the similarity of the map explaining
    class y and the map explaining a random other class (:func:`random_other_classes`, from
    ``seed``). A class-sensitive method gives low similarity.

    ``explain_fn(model, x, y) -> [B, C, H, W]`` (as :func:`model_randomisation`) explains ``y``
    (unless ``a`` is given) and the other classes, one batched call each. ``n_classes``: the
    number of classes K ≥ 2 (default: read from the model's output for one image). Both maps are
    reduced over channels by ``reduce``, then compared by each of ``similarities``
    (``spearman``, ``ssim`` on the 2-D maps, ``hog``). Quantus applies its similarity to the
    flattened maps (its SSIM is then one-dimensional) after dividing each by its max |a|; the
    tests show the mapping.
    """
    check_images(x)
    check_targets(y, x.shape[0])
    if not callable(explain_fn):
        raise TypeError("explain_fn must be a callable explain_fn(model, x, y) -> Tensor")
    for name in similarities:
        check_choice(name, "similarities", SIMILARITIES)
    if n_classes is None:
        with preserved_model(model), torch.no_grad():
            n_classes = int(model(x[:1]).shape[-1])
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2 (a class other than y must exist), "
                         f"got {n_classes!r}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"y holds classes {int(y.min())}..{int(y.max())}, outside "
                         f"0..{n_classes - 1} (n_classes={n_classes})")
    off = random_other_classes(y, n_classes, seed)
    if a is None:
        a = explain_fn(model, x, y)
    original = reduce_channels(check_attributions(a).detach(), reduce)
    other = reduce_channels(check_attributions(explain_fn(model, x, off).detach(),
                                               "explain_fn output"), reduce)
    return RandomLogit(off, {sim: _similarity_to(sim, original)(other).to(x.dtype)
                             for sim in similarities})


R.register(
    "random_logit", kind="explainer", function=random_logit,
    outputs=[R.Output(sim, "lower", (-1.0, 1.0), f"{sim} similarity of the maps for the "
                      "explained class and a random other class (lower = class-sensitive)")
             for sim in SIMILARITIES],
    adapt=lambda raw, p: (dict(raw.scores), {}, {}),
    cost=lambda params, shape, model=None: R.Cost(explanations=1.0),
    source="Sixt et al. 2020 (ICML), random logit test; as Quantus RandomLogit",
    summary="maps for the explained class and a random other class should differ")
