"""Synthetic ten-class cell dataset with 0 / 0.4 / 0.9 ground-truth heatmaps (document 001, 3.1).

Classes: 0 CCell (round cell, border), 1 CCellM (bar), 2 CCellP (plus), 3 RCell, 4 RCellB,
5 RCellC (rectangular cells told apart by the dominant red / green / blue of their border),
6 CCellT, 7 CCellT3, 8 CCellT8 (one, three, eight tails), 9 NoCell. Backgrounds: 1 plain dark,
2 low-frequency noise, 3 sinusoidal rings, drawn uniformly.

Shapes follow Algorithms 1 and 2: ``d = sqrt(X^2 + (Y / y_s)^2) + noise``; border
``r - t <= d <= r``, inner ball ``d < r - t``; bar ``|X'| <= r, |Y'| <= t_b / 2`` and pole
``|Y'| <= r v_s, |X'| <= t_p / 2`` on noise-displaced coordinates ``X' = X + n_1, Y' = Y + n_2``;
rotation by theta and a centre shift. The drawing parameters are the public code's at 512 px
(NOTES.md), scaled linearly with ``size``: radius U(90, 110), border t U(10, 30), stretch
y_s U(0.5, 1.5), bar t_b U(10, 30), pole t_p U(5, 40), rectangle sides U(100, 200), tail thickness
U(10, 30) reaching from 0.8 r y_s to 1.5 r y_s + t, radial noise N(0, U(6, 12)) on a lattice of
U(31, 64) px (appendix "noise roughness"), centre shift U(-0.33, 0.33) size, rotation U(-60, 60)
degrees. Colours: border U(0.5, 0.9) per channel, inner (U(0.1, 0.3), U(0.1, 0.3), U(0.3, 0.5)),
tails 0.75 x border, rectangle borders (U(0.6, 0.9), U(0, 0.2), U(0, 0.2)) with the dominant channel
red, green or blue for classes 3, 4, 5.

The heatmap is ``make_explanation`` of Algorithm 1: a part is "on" where the channel RMS
``(1/3) sqrt(sum_c part_c^2)`` exceeds 0.05; the discriminative part (border of classes 0, 3-5;
bar or plus of 1-2; tails of 6-8) is 0.9, the rest of the cell 0.4, everything else 0; class 9 is
all zeros. Shapes are drawn by evaluating the rotated, shifted coordinates at every pixel (no image
rotation), so heatmap levels are exact float32 {0, 0.4, 0.9}.

Every cell of classes 0-8 has 0.9 pixels at every size >= 32 px (salbench): bars, poles and tails
are at least 2 px wide (half-width ``max(int(t / 2), 1)`` for bars and poles, whose public-code
truncation made them vanish below about 128 px, ``max(t / 2, 1)`` for tails), and a cell whose
discriminative part lies wholly outside the image (a tail pointing out of it) is drawn again.

Samples are drawn uniformly over the classes and grouped into shards of ``shard_size`` (200 in the
document); shards go to train/val/test in the proportions 32/8/8 (train, val, train, test, train,
train, ...), so a run needs at least four shards (an error names the largest ``shard_size``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from salbench.data.dataset import (
    GroundTruthDataset,
    check_fractions,
    check_split_sizes,
    split_of_position,
    units_needed,
)
from salbench.data.shards import (
    Chunk,
    check_count,
    generate_dataset,
    make_chunk,
    write_dataset,
)

CLASSES = ["CCell", "CCellM", "CCellP", "RCell", "RCellB", "RCellC", "CCellT", "CCellT3",
           "CCellT8", "NoCell"]
BACKGROUNDS = {1: "plain dark", 2: "low-frequency noise", 3: "sinusoidal rings"}
REFERENCE_SIZE = 512  # the public code draws at 512 x 512 (NOTES.md)
DEFAULT_SIZE = 224  # document 001, table 1 (VGG, AlexNet); 512 for ResNet
SHARD_SIZE = 200  # document 001, section 3.1
SHARD_FRACTIONS = (32 / 48, 8 / 48, 8 / 48)  # document 001, section 3.1: 32/8/8 shards
THRESHOLD = 0.05  # document 001, appendix: th_d = th_l = 0.05
LOCALISATION, DISCRIMINATIVE = 0.4, 0.9  # document 001, section 3.1
TAIL_ANGLES = {6: (0.0,), 7: (0.0, 120.0, 240.0), 8: tuple(45.0 * k for k in range(8))}
NO_CELL = 9
MIN_SIZE = 32
MIN_HALF_WIDTH = 1.0  # salbench: bars, poles and tails >= 2 px wide, so none vanishes at 32 px
MAX_DRAWS = 100  # salbench: redrawings allowed for a cell whose feature falls outside the image


def smooth_noise(rng: np.random.Generator, size: int, cell: float, std: float) -> np.ndarray:
    """N(0, std) on a lattice of ``cell``-pixel cells, bilinearly resized to ``size`` x ``size``."""
    lattice = max(1, int(size / cell))
    coarse = rng.normal(0.0, std, (lattice, lattice)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)


def rms_on(mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Algorithm 1's ``(1/3) sqrt(sum_c layer_c^2) > 0.05`` for the colour layer
    ``mask * colour`` (a binary part painted in one colour)."""
    return mask & bool(np.sqrt((np.asarray(colour, np.float64) ** 2).sum()) / 3 > THRESHOLD)


def make_explanation(discriminative: tuple[np.ndarray, np.ndarray],
                     localisation: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Heatmap of Algorithm 1 from ``(mask, colour)`` parts: 0.9 where the discriminative part is
    on, 0.4 where a localisation part is on and the discriminative one is not, 0 elsewhere."""
    feature = rms_on(*discriminative)
    body = np.zeros_like(feature)
    for part in localisation:
        body |= rms_on(*part)
    heatmap = np.zeros(feature.shape, np.float32)
    heatmap[body & ~feature] = np.float32(LOCALISATION)
    heatmap[feature] = np.float32(DISCRIMINATIVE)
    return heatmap


def paint(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``[3, S, S]`` image of binary parts in their colours; a later part covers earlier ones."""
    image = np.zeros((3, *parts[0][0].shape), np.float32)
    for mask, colour in parts:
        for c in range(3):
            image[c][mask] = colour[c]
    return image


@functools.lru_cache(maxsize=4)
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


@dataclass(frozen=True)
class CellSpec:
    """Everything sample ``i`` depends on."""

    seed: int
    size: int
    shard_size: int
    split_fractions: tuple[float, float, float]
    classes_drawn: tuple[int, ...]
    name: str = "cells"

    def classes(self) -> list[str]:
        return list(CLASSES)

    def shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def has_masks(self) -> bool:
        return True

    def params(self) -> dict:
        return {"seed": self.seed, "size": self.size, "shard_size": self.shard_size,
                "split_fractions": list(self.split_fractions),
                "classes_drawn": list(self.classes_drawn)}

    def prepare(self) -> None:
        return None

    def make(self, start: int, stop: int) -> Chunk:
        return make_chunk(self.sample, start, stop, self.shape())

    def sample(self, i: int) -> tuple[np.ndarray, int, np.ndarray, dict]:
        rng = np.random.default_rng([self.seed, 8001, i])
        label = int(self.classes_drawn[rng.integers(len(self.classes_drawn))])
        background_type = int(rng.integers(1, 4))
        cell, heatmap, support, info = draw_visible_cell(label, self.size, rng)
        background = draw_background(background_type, self.size, rng)
        image = np.where(support[None], cell, background)
        shard = i // self.shard_size
        meta = {"sample_id": i, "split": split_of_position(shard, self.split_fractions),
                "shard": shard, "cell_type": CLASSES[label], "background": background_type,
                **info}
        return np.clip(image, 0.0, 1.0).astype(np.float32), label, heatmap, meta


def draw_background(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``[3, S, S]``: 1 plain dark (zeros), 2 low-frequency noise, 3 sinusoidal rings.

    Type 2: per channel U(0.2, 0.7) on an 8 x 8 lattice (64 px cells at 512 px), bilinear.
    Type 3: per channel ``0.5 (0.5 sin(s (d + n d) 180 / pi) + 0.5)`` with d the distance (in
    512-px units) from a centre drawn in the middle half of the image, s U(1e-4, 1e-3) and n
    U(-0.3, 0.3) on a 16 x 16 lattice (32 px cells at 512 px).
    """
    if kind == 1:
        return np.zeros((3, size, size), np.float32)
    if kind == 2:
        coarse = rng.uniform(0.2, 0.7, (3, 8, 8)).astype(np.float32)
        return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR)
                         for c in coarse])
    centre = rng.uniform(size / 4, 3 * size / 4, 2)
    rows, cols = pixel_grid(size)
    d = np.hypot(rows - centre[0], cols - centre[1]) * (REFERENCE_SIZE / size)
    channels = []
    for _ in range(3):
        n = cv2.resize(rng.uniform(-0.3, 0.3, (16, 16)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_LINEAR)
        stretch = rng.uniform(1e-4, 1e-3)
        channels.append(0.5 * (0.5 * np.sin(stretch * (d + n * d) * 180 / np.pi) + 0.5))
    return np.stack(channels).astype(np.float32)


def _uniform_colour(rng: np.random.Generator, bounds) -> np.ndarray:
    return np.array([rng.uniform(lo, hi) for lo, hi in bounds], np.float32)


BORDER_COLOUR = ((0.5, 0.9),) * 3
INNER_COLOUR = ((0.1, 0.3), (0.1, 0.3), (0.3, 0.5))


def draw_visible_cell(label: int, size: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """:func:`draw_cell`, drawn again while the discriminative part has no pixel in the image (a
    tail pointing out of it; the public code kept such cells); ``info["draws"]`` counts the
    drawings (1 for all but about 1 in 1000 cells)."""
    for draws in range(1, MAX_DRAWS + 1):
        cell, heatmap, support, info = draw_cell(label, size, rng)
        if label == NO_CELL or (heatmap == np.float32(DISCRIMINATIVE)).any():
            return cell, heatmap, support, {**info, "draws": draws}
    raise RuntimeError(f"no {CLASSES[label]} cell with a discriminative part inside a {size} px "
                       f"image in {MAX_DRAWS} drawings")


def draw_cell(label: int, size: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Cell image ``[3, S, S]``, heatmap ``[S, S]``, support ``[S, S]`` and drawing parameters."""
    if label == NO_CELL:
        zeros = np.zeros((size, size), np.float32)
        return np.zeros((3, size, size), np.float32), zeros, zeros > 0, {}
    k = size / REFERENCE_SIZE
    theta = np.deg2rad(rng.uniform(-60, 60))
    shift = np.trunc(rng.uniform(-0.33, 0.33, 2) * size)
    d_noise = rng.uniform(6, 12) * k
    roughness = rng.uniform(31, 64) * k
    rows, cols = pixel_grid(size)
    centre = (size - 1) / 2 + shift
    u, v = cols - centre[1], rows - centre[0]
    x = np.cos(theta) * u + np.sin(theta) * v
    y = -np.sin(theta) * u + np.cos(theta) * v
    border_colour = _uniform_colour(rng, BORDER_COLOUR)
    inner_colour = _uniform_colour(rng, INNER_COLOUR)
    t = rng.uniform(10, 30) * k
    info = {"theta_deg": float(np.rad2deg(theta)), "centre_row": float(centre[0]),
            "centre_col": float(centre[1]), "border_thickness": float(t)}

    xn = x + smooth_noise(rng, size, roughness, d_noise)
    yn = y + smooth_noise(rng, size, roughness, d_noise)
    if label in (3, 4, 5):  # rectangular cell, Algorithm 1 with a rectangle
        h, w = rng.uniform(100, 200, 2) * k
        outer = (np.abs(xn) <= w / 2) & (np.abs(yn) <= h / 2)
        inner = (np.abs(xn) <= w / 2 - t) & (np.abs(yn) <= h / 2 - t)
        border = outer & ~inner
        channel_bounds = [(0.0, 0.2)] * 3
        channel_bounds[label - 3] = (0.6, 0.9)
        parts = [(border, _uniform_colour(rng, channel_bounds)), (inner, inner_colour)]
        info.update({"height": float(h), "width": float(w)})
        return paint(parts), make_explanation(parts[0], parts[1:]), outer, info
    r = rng.uniform(90, 110) * k
    stretch = rng.uniform(0.5, 1.5)
    d = np.sqrt(x**2 + (y / stretch) ** 2) + smooth_noise(rng, size, roughness, d_noise)
    border = (d <= r) & (d >= r - t)
    inner = d < r - t
    ball = [(border, border_colour), (inner, inner_colour)]
    info.update({"radius": float(r), "vertical_stretch": float(stretch)})
    if label == 0:  # Algorithm 1: the border is the feature
        return paint(ball), make_explanation(ball[0], ball[1:]), border | inner, info
    if label in (1, 2):  # Algorithm 2: bar (minus) or bar + pole (plus)
        t_bar = rng.uniform(10, 30) * k
        feature = (np.abs(xn) <= r) & (np.abs(yn) <= max(int(t_bar / 2), MIN_HALF_WIDTH))
        info["bar_thickness"] = float(t_bar)
        if label == 2:
            t_pole = rng.uniform(5, 40) * k
            feature |= ((np.abs(yn) <= r * stretch)
                        & (np.abs(xn) <= max(int(t_pole / 2), MIN_HALF_WIDTH)))
            info["pole_thickness"] = float(t_pole)
        feature_colour = border_colour
    else:  # tails
        t_tail = rng.uniform(10, 30) * k
        feature = np.zeros_like(border)
        for angle in np.deg2rad(TAIL_ANGLES[label]):
            x1 = np.cos(angle) * xn - np.sin(angle) * yn
            y1 = np.sin(angle) * xn + np.cos(angle) * yn
            feature |= ((np.abs(x1) <= max(t_tail / 2, MIN_HALF_WIDTH))
                        & (y1 >= 0.8 * stretch * r)
                        & (y1 <= 1.5 * r * stretch + t))
        info["tail_thickness"] = float(t_tail)
        feature_colour = np.clip(border_colour * 0.75, 0.0, 1.0)
    skeleton = (feature, feature_colour)
    return (paint([*ball, skeleton]), make_explanation(skeleton, ball), border | inner | feature,
            info)


def make_spec(seed: int = 0, size: int = DEFAULT_SIZE, shard_size: int = SHARD_SIZE,
              split_fractions=SHARD_FRACTIONS, classes=None) -> CellSpec:
    """Validate the parameters of :func:`generate` and freeze them into a spec."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE} (pixels), got {size!r}")
    shard_size = check_count(shard_size, "shard_size")
    fractions = check_fractions(split_fractions)
    if classes is None:
        drawn = tuple(range(len(CLASSES)))
    else:
        drawn = []
        for c in classes:
            if isinstance(c, str):
                if c not in CLASSES:
                    raise ValueError(f"unknown cell class {c!r}; classes are {CLASSES}")
                drawn.append(CLASSES.index(c))
            elif isinstance(c, (int, np.integer)) and 0 <= c < len(CLASSES):
                drawn.append(int(c))
            else:
                raise ValueError(f"unknown cell class {c!r}; use a name of {CLASSES} or 0-9")
        if not drawn:
            raise ValueError("classes must name at least one cell class")
        drawn = tuple(sorted(set(drawn)))
    return CellSpec(int(seed), int(size), shard_size, fractions, drawn)


def check_splits(spec: CellSpec, n: int) -> None:
    """Refuse ``n`` images whose shards leave a split with a positive fraction empty."""
    need = units_needed(spec.split_fractions)

    def remedy(empty: list[str]) -> str:
        fewer = f", shard_size <= {(n - 1) // (need - 1)}," if n >= need else ""
        return (f"use n >= {(need - 1) * spec.shard_size + 1}{fewer} or split_fractions with 0 "
                f"for {' and '.join(empty)}")

    check_split_sizes(np.arange(n) // spec.shard_size, spec.split_fractions, spec.name, "images",
                      "shard", remedy)


def generate(n: int, seed: int = 0, size: int = DEFAULT_SIZE, workers: int = 1,
             **params) -> GroundTruthDataset:
    """Generate ``n`` cell images (document 001, section 3.1).

    Returns a :class:`GroundTruthDataset`: ``x`` float32 ``[n, 3, size, size]`` in [0, 1], ``y`` in
    0..9 (uniformly drawn), ``masks`` with exactly the levels {0, 0.4, 0.9}, ``meta`` with split,
    shard, cell_type, background (1-3), the drawing parameters and ``draws`` (drawings until the
    discriminative part was in the image). A split left empty by too few shards is an error.
    ``params``: ``shard_size``
    (200), ``split_fractions`` over shards ((32, 8, 8) / 48), ``classes`` (names or indices to draw
    from; default all ten; ``y`` keeps the ten-class numbering).
    """
    n = check_count(n)
    spec = make_spec(seed=seed, size=size, **params)
    check_splits(spec, n)
    return generate_dataset(spec, n, workers)


def write(n: int, out: str | Path, seed: int = 0, workers: int = 1, **params) -> Path:
    """Generate to the on-disk format in ``out``, one file shard per dataset shard (resumable)."""
    n = check_count(n)
    spec = make_spec(seed=seed, **params)
    check_splits(spec, n)
    return write_dataset(spec, n, out, workers, spec.shard_size)
