"""Region metrics of GAD (document 004, sections 5 and 6): convex hull of the most important
pixels, complexity ratio RC and occlusion sensitivity RS.

The convex hull itself is scikit-image's ``convex_hull_image`` (pixel centres inside or on the
hull of the selected pixels' edge midpoints), called once per map: the one per-sample loop of
this package, CPU image processing of a few milliseconds, not a model pass.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.morphology import convex_hull_image
from torch import Tensor, nn

from salbench.metrics import registry as R
from salbench.metrics._checks import (
    ScoreFn,
    check_attributions,
    check_images,
    check_mask,
    check_targets,
    forward_chunks,
    reduce_channels,
    target_score,
)


def important_pixels(a: Tensor, keep: float | None = 0.5, threshold: float | None = None,
                     reduce: str = "abs-sum") -> Tensor:
    """Boolean ``[B, H, W]`` selection of the most important pixels (exactly one of):
    ``keep``: the top ``round(keep · H · W)`` pixels by importance (document 004, section 6:
    "retaining only the most important half", keep = 0.5; ties: lower row-major index first);
    ``threshold``: pixels whose importance exceeds ``threshold · max`` (section 5, figure 4:
    10 %). Importance is the map after ``reduce`` (default ``abs-sum``: gradient signs are not
    importance). Pixels of zero importance are never selected (a sparse GAD map keeps only its
    support)."""
    if (keep is None) == (threshold is None):
        raise ValueError("give exactly one of keep= (fraction of pixels) or threshold= "
                         "(fraction of the maximum)")
    s = reduce_channels(check_attributions(a), reduce)
    flat = s.flatten(1)
    if keep is not None:
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be a fraction in (0, 1], got {keep!r}")
        k = max(1, round(keep * flat.shape[1]))
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :k]
        sel = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, True)
    else:
        if not 0 <= threshold < 1:
            raise ValueError(f"threshold must be a fraction in [0, 1), got {threshold!r}")
        sel = flat > threshold * flat.amax(1, keepdim=True)
    return (sel & (flat > 0)).view(s.shape)


def convex_hull_masks(selection: Tensor) -> Tensor:
    """Convex hull of each boolean selection ``[B, H, W]`` as a mask (scikit-image); an empty
    selection gives an empty mask."""
    sel = selection.cpu().numpy()
    hulls = np.stack([convex_hull_image(s) if s.any() else np.zeros_like(s) for s in sel])
    return torch.from_numpy(hulls).to(selection.device)


def hull_mask(a: Tensor, keep: float | None = 0.5, threshold: float | None = None,
              reduce: str = "abs-sum") -> Tensor:
    """M: the convex hull of :func:`important_pixels` as a float 0/1 mask ``[B, H, W]``."""
    return convex_hull_masks(important_pixels(a, keep, threshold, reduce)).to(a.dtype)


def complexity_ratio(a_gad: Tensor, a_orig: Tensor, keep: float | None = 0.5,
                     threshold: float | None = None, reduce: str = "abs-sum") -> Tensor:
    """RC = A(CH_GAD) / A(CH_Orig) (document 004, eq. 1): hull areas in pixels; RC < 1 means a
    smaller important region for the GAD map. NaN where the original map selects no pixel (an
    all-zero map has no important region, so RC is undefined), as the sensitivities below."""
    if a_gad.shape != a_orig.shape:
        raise ValueError(f"a_gad {tuple(a_gad.shape)} and a_orig {tuple(a_orig.shape)} must "
                         "have the same shape")
    area_gad = hull_mask(a_gad, keep, threshold, reduce).flatten(1).sum(1)
    area_orig = hull_mask(a_orig, keep, threshold, reduce).flatten(1).sum(1)
    return torch.where(area_orig > 0, area_gad / area_orig, float("nan"))


def supplementary_mask(m_orig: Tensor, m_gad: Tensor) -> Tensor:
    """M_Orig − M_GAD (document 004, section 5), clipped at 0 where the GAD hull leaves the
    original one."""
    return (m_orig - m_gad).clamp_min(0)


def occlusion_sensitivity(model: nn.Module, x: Tensor, y: Tensor, m: Tensor, *,
                          score: str | ScoreFn = "logit",
                          memory_budget: int | None = None) -> Tensor:
    """RS(I, M, a) = |N_a(I) − N_a(I · (1 − M))| / Σ M (document 004, eq. 2), ``[B]``.

    ``y`` is the output a (class index) per sample; N_a is the pre-softmax output by default
    (``score="logit"``; the document distances classes on pre-softmax outputs); ``m`` a binary
    non-empty mask ``[B, H, W]`` (e.g. :func:`hull_mask`), applied to every channel.
    """
    check_images(x)
    check_targets(y, x.shape[0])
    m = check_mask(m, (x.shape[0], *x.shape[-2:]))
    read = target_score(score)
    mf = m.to(x.dtype)[:, None]
    with torch.inference_mode():
        out = read(forward_chunks(model, torch.cat([x, x * (1 - mf)]), memory_budget),
                   torch.cat([y, y]))
        return (out[: len(x)] - out[len(x):]).abs() / mf.flatten(1).sum(1)


def _masked_sensitivity(model: nn.Module, x: Tensor, y: Tensor, m: Tensor, score: str | ScoreFn,
                        memory_budget: int | None) -> Tensor:
    """:func:`occlusion_sensitivity` where ``m`` is non-empty, NaN where it is empty (RS divides
    by the mask's area)."""
    out = torch.full((len(x),), float("nan"), dtype=torch.float64, device=x.device)
    valid = torch.nonzero(m.flatten(1).sum(1) > 0).flatten()
    if len(valid):
        out[valid] = occlusion_sensitivity(model, x[valid], y[valid], m[valid], score=score,
                                           memory_budget=memory_budget).double()
    return out


def hull_sensitivity(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *,
                     keep: float | None = 0.5, threshold: float | None = None,
                     reduce: str = "abs-sum", score: str | ScoreFn = "logit",
                     memory_budget: int | None = None) -> Tensor:
    """RS(x, M) with M = :func:`hull_mask` of ``a`` (document 004, eq. 2 with M_GAD when ``a``
    is a GAD map): influence per pixel of the region the map marks; NaN for an empty hull."""
    m = hull_mask(a, keep, threshold, reduce)
    return _masked_sensitivity(model, x, y, m, score, memory_budget)


def supplementary_sensitivity(model: nn.Module, x: Tensor, y: Tensor, a: Tensor,
                              reference: Tensor, *, keep: float | None = 0.5,
                              threshold: float | None = None, reduce: str = "abs-sum",
                              score: str | ScoreFn = "logit",
                              memory_budget: int | None = None) -> Tensor:
    """RS(x, M_ref − M_a) (document 004, section 5: M_Orig − M_GAD with ``reference`` the base
    method's map and ``a`` the GAD map): influence per pixel of what ``a`` left out; NaN where
    that region is empty."""
    m = supplementary_mask(hull_mask(reference, keep, threshold, reduce),
                           hull_mask(a, keep, threshold, reduce))
    return _masked_sensitivity(model, x, y, m, score, memory_budget)


_GAD = "document 004, sections 5 and 6"
R.register("complexity_ratio", kind="map_pair", function=complexity_ratio,
           outputs=[R.Output("complexity_ratio", "lower", R.NON_NEGATIVE,
                             "A(CH_a) / A(CH_reference); < 1: a's important region is smaller")],
           adapt=R.single("complexity_ratio"), cost=R.free, source=_GAD,
           summary="convex-hull area ratio of the important pixels of two maps (RC)")
R.register("hull_sensitivity", kind="model", function=hull_sensitivity,
           outputs=[R.Output("hull_sensitivity", "higher", R.NON_NEGATIVE,
                             "|f_a(x) − f_a(x·(1 − M))| / ΣM for M the map's hull")],
           adapt=R.single("hull_sensitivity"), cost=R.forward_passes(2), source=_GAD,
           summary="occlusion sensitivity RS of the convex hull of the map's important pixels")
R.register("supplementary_sensitivity", kind="model_pair", function=supplementary_sensitivity,
           outputs=[R.Output("supplementary_sensitivity", "lower", R.NON_NEGATIVE,
                             "RS of M_reference − M_a: what the map left out should matter less")],
           adapt=R.single("supplementary_sensitivity"), cost=R.forward_passes(2), source=_GAD,
           summary="occlusion sensitivity RS of the reference hull minus the map's hull")
