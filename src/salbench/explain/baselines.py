"""Null baselines: explanations that know nothing about the model (document 000, section 2.6).

- ``random``: uniform noise maps in [0, 1), seeded;
- ``sobel`` / ``laplace``: edge maps of the input (scikit-image ``filters.sobel`` magnitude and
  ``filters.laplace``), per image and channel; each computed with its own filter (the public code
  of document 000 stored Laplace values as Sobel, NOTES.md);
- ``random_model``: a method on a randomly initialised copy of the architecture (every module's
  ``reset_parameters()`` under ``seed``), the "random model" null model.
"""

from __future__ import annotations

import copy
import weakref

import numpy as np
import torch
from skimage import filters
from torch import Tensor, nn

from salbench.explain.gradients import seeded
from salbench.explain.registry import explain, register


@register("random", "salbench", "uniform random map in [0, 1) (null baseline)",
          requires="none")
def random_map(model: nn.Module, x: Tensor, y: Tensor, seed: int = 0) -> Tensor:
    """U[0, 1) noise ``[B, C, H, W]``; the same seed gives the same maps."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def _edge_map(x: Tensor, fn) -> Tensor:
    images = x.detach().cpu().double().numpy()
    out = np.stack([[fn(channel) for channel in image] for image in images])
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


@register("sobel", "skimage", "Sobel gradient magnitude of the input (null baseline)",
          requires="none")
def sobel(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """skimage ``filters.sobel`` per image and channel: sqrt((S_h² + S_v²)/2), reflect borders."""
    return _edge_map(x, filters.sobel)


@register("laplace", "skimage", "Laplace filter response of the input (null baseline)",
          requires="none")
def laplace(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """skimage ``filters.laplace`` (3×3 discrete Laplacian) per image and channel, signed."""
    return _edge_map(x, filters.laplace)


_RANDOM_COPIES: weakref.WeakKeyDictionary[nn.Module, dict[int, nn.Module]] = (
    weakref.WeakKeyDictionary())


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every module's parameters re-initialised (``reset_parameters``,
    batch-norm running statistics reset too) from ``seed``; cached per model and seed. The
    global random state is left untouched."""
    copies = _RANDOM_COPIES.setdefault(model, {})
    if seed not in copies:
        clone = copy.deepcopy(model)
        device = next((p.device for p in clone.parameters()), torch.device("cpu"))
        with seeded(int(seed), device), torch.no_grad():
            for module in clone.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
                if hasattr(module, "reset_running_stats"):
                    module.reset_running_stats()
        clone.eval()
        copies[seed] = clone
    return copies[seed]


@register("random_model", "salbench", "a method on a randomly initialised copy (null baseline)")
def random_model(model: nn.Module, x: Tensor, y: Tensor, base: str = "saliency", seed: int = 0,
                 base_params: dict | None = None) -> Tensor:
    """``explain(randomised_copy(model, seed), x, y, base, **base_params)``."""
    if base == "random_model":
        raise ValueError("random_model cannot wrap itself; choose a base such as 'saliency'")
    return explain(randomised_copy(model, seed).to(x.device), x, y, base, **(base_params or {}))
