"""Pre-training corpora and starting points (document 000, section 2.2).

- **within-domain**: lesion-free MRI slices with an anatomical label (inferior / superior half of
  the volume) or the subject's sex when a demographics table is given
  (``salbench.data.mri_lesions.generate_lesion_free``).
- **out-of-domain**: torchvision's ImageNet weights when the file is in the local cache (or given),
  otherwise the generated *natural-image-like corpus* below.
- **none**: the randomly initialised, untrained model (document 000, section 2.6's null model).

The natural-image-like corpus (salbench's design, cheap to generate): each image is a colour
background of ``1/f`` noise (amplitude spectrum ``f^-beta``, ``beta ~ U(1.2, 2)`` per image,
the power-law statistics of natural photographs; 70 % a luminance field shared by the channels,
30 % per-channel colour) with one object of class ``k`` pasted on it: ``disk``, ``square``,
``triangle``, ``ring``, ``cross``, ``bar`` at random position, size (diameter 30-50 % of the
side), rotation and colour (80 % flat colour, 20 % its own ``1/f`` texture), anti-aliased edges.
The task (which shape?) needs edges, corners and colour contrast, features that transfer like
ImageNet's low-level ones without being MRI-like. Masks hold the object's support.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from salbench.data import GroundTruthDataset
from salbench.models.training import TrainConfig, fit
from salbench.models.zoo import build, imagenet_weights_path, replace_head, spec_of

NATURAL_CLASSES = ("disk", "square", "triangle", "ring", "cross", "bar")
CORPORA = ("within-domain", "out-of-domain", "none")


def _pink_noise(rng: np.random.Generator, n: int, size: int, channels: int,
                beta: np.ndarray) -> np.ndarray:
    """``[n, channels, size, size]`` noise with amplitude spectrum ``f^-beta``, scaled to [0, 1]."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0 / size
    amplitude = f[None, None] ** -beta[:, None, None, None]
    phase = rng.uniform(0, 2 * np.pi, (n, channels, size, size // 2 + 1))
    img = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(size, size))
    low = img.min(axis=(2, 3), keepdims=True)
    high = img.max(axis=(2, 3), keepdims=True)
    return ((img - low) / (high - low + 1e-12)).astype(np.float32)


def _shape_mask(kind: int, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Soft mask in [0, 1] of shape ``kind`` in rotated, centred coordinates ``u, v`` (pixels)."""
    if kind == 0:  # disk
        d = np.hypot(u, v) - r
    elif kind == 1:  # square
        d = np.maximum(np.abs(u), np.abs(v)) - 0.85 * r
    elif kind == 2:  # triangle (equilateral, circumradius r)
        d = np.full_like(u, -np.inf)
        for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            d = np.maximum(d, -(u * np.cos(a) + v * np.sin(a)) - r / 2)
    elif kind == 3:  # ring
        d = np.abs(np.hypot(u, v) - 0.7 * r) - 0.25 * r
    elif kind == 4:  # cross
        arm = np.minimum(np.maximum(np.abs(u) - r, np.abs(v) - 0.3 * r),
                         np.maximum(np.abs(v) - r, np.abs(u) - 0.3 * r))
        d = arm
    else:  # bar
        d = np.maximum(np.abs(u) - r, np.abs(v) - 0.3 * r)
    return np.clip(0.5 - d, 0.0, 1.0)


def natural_image_corpus(n: int, seed: int = 0, size: int = 64, channels: int = 3,
                         split_fractions: tuple[float, float, float] = (0.8, 0.2, 0.0)
                         ) -> GroundTruthDataset:
    """The generated natural-image-like corpus (module docstring): ``n`` images of ``size`` px.

    Returns a ``GroundTruthDataset`` with ``x`` float32 ``[n, channels, size, size]`` in [0, 1],
    ``y`` in ``0..5`` (``NATURAL_CLASSES``, balanced), object masks and a random train/val/test
    split.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16 (pixels), got {size!r}")
    rng = np.random.default_rng(seed)
    k = len(NATURAL_CLASSES)
    y = rng.permutation(np.arange(n) % k)
    beta = rng.uniform(1.2, 2.0, n)
    # Natural colours are correlated across channels: a shared luminance field plus some colour.
    x = 0.7 * _pink_noise(rng, n, size, 1, beta) + 0.3 * _pink_noise(rng, n, size, channels, beta)
    texture = _pink_noise(rng, n, size, channels, rng.uniform(1.2, 2.0, n))
    masks = np.zeros((n, size, size), np.float32)
    grid = np.arange(size, dtype=np.float64) + 0.5
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    for i in range(n):
        r = rng.uniform(0.3, 0.5) * size / 2
        cy, cx = rng.uniform(r, size - r, 2)
        angle = rng.uniform(0, 2 * np.pi)
        u = (gx - cx) * math.cos(angle) + (gy - cy) * math.sin(angle)
        v = -(gx - cx) * math.sin(angle) + (gy - cy) * math.cos(angle)
        m = _shape_mask(int(y[i]), u, v, r)
        colour = rng.uniform(0, 1, channels)[:, None, None]
        fill = 0.8 * colour + 0.2 * texture[i]
        x[i] = (1 - m) * x[i] + m * fill
        masks[i] = m > 0.5
    splits = rng.choice(["train", "val", "test"], size=n, p=list(split_fractions))
    meta = pd.DataFrame({"sample_id": [f"natural-{seed}-{i}" for i in range(n)],
                         "split": splits, "shape": [NATURAL_CLASSES[c] for c in y]})
    return GroundTruthDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)),
                              torch.from_numpy(masks), meta, list(NATURAL_CLASSES),
                              name="natural-image-like",
                              params={"n": n, "seed": seed, "size": size, "channels": channels})


def within_domain_corpus(n: int, seed: int = 0, size: int = 64, label: str = "slice_position",
                         **params) -> GroundTruthDataset:
    """Lesion-free MRI slices labelled by ``label`` (``"slice_position"`` or ``"sex"``)."""
    from salbench.data.mri_lesions import generate_lesion_free

    return generate_lesion_free(n, seed=seed, label=label, size=size, **params)


def pretrained_model(arch: str, corpus: str, num_classes: int, in_channels: int = 1,
                     input_size: int = 64, width: float = 1.0, n: int = 512, seed: int = 0,
                     config: TrainConfig | None = None, use_imagenet: bool = True,
                     corpus_params: dict | None = None) -> tuple[nn.Module, dict]:
    """A starting point for fine-tuning on ``num_classes`` classes and where it came from.

    ``corpus``: ``"within-domain"`` (train on ``n`` lesion-free slices), ``"out-of-domain"``
    (ImageNet weights when ``use_imagenet``, ``width == 1`` and the file is cached; otherwise train
    on ``n`` natural-image-like images) or ``"none"`` (random initialisation). Pre-training uses
    ``config`` (default: document 000's SGD regime, the "mri" preset without early stopping, 10
    epochs). The returned model's class-score layer is new (``num_classes`` outputs), as in
    document 000, section 2.3. ``corpus_params`` go to the corpus generator (e.g. ``{"label":
    "sex", "backgrounds": DIR, "demographics": CSV}`` for within-domain). ``info`` says ``source``
    and, when trained, the pre-training scores on the validation split and its size.
    """
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3 for a pre-trained model, got {in_channels}")
    if corpus == "none":
        torch.manual_seed(seed)
        return build(arch, num_classes, in_channels, input_size, width), {"source": "random"}
    if corpus == "out-of-domain" and use_imagenet and width == 1.0 and \
            imagenet_weights_path(arch).is_file():
        model = build(arch, num_classes, in_channels, input_size, width, weights="imagenet")
        return model, {"source": "imagenet", "path": str(imagenet_weights_path(arch))}
    if config is None:
        config = TrainConfig(epochs=10, seed=seed)
    if corpus == "within-domain":
        data = within_domain_corpus(n, seed=seed, size=input_size, **(corpus_params or {}))
        source_channels = 1
    else:
        data = natural_image_corpus(n, seed=seed, size=input_size, **(corpus_params or {}))
        source_channels = 3
    torch.manual_seed(seed)
    model = build(arch, len(data.classes), source_channels, input_size, width)
    result = fit(model, data.split("train"), data.split("val"), config)
    # grey_to_rgb has no parameters: a 3-channel model's weights fit the 1-channel model.
    target = build(arch, len(data.classes), in_channels, input_size, width)
    target.load_state_dict(model.state_dict())
    target = replace_head(target.cpu(), num_classes)
    target.salbench_spec = spec_of(target).model_copy(update={"weights": f"pretrained:{corpus}"})
    info = {"source": corpus, "corpus": data.name, "n": n, "pretrain_scores": result.val_scores,
            "pretrain_val_n": len(data.split("val")), "pretrain_stop_reason": result.stop_reason}
    return target, info
