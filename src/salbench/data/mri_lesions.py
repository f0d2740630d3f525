"""MRI-lesion ground-truth dataset (document 000, section 2.1, appendix C, figures 1, 2, 5).

Class 0 ("regular") slices carry 3 to 5 round lesions, class 1 ("irregular") 3 to 5 elongated
ones; the ground-truth mask is the lesions' support. Steps:

1. Lesion bank (:func:`lesion_bank`): a 256 x 256 uniform white-noise image, Gaussian filter
   (sigma 2 px), Otsu binarisation, erosion then opening; irregular candidates get a second erosion.
   Connected components of exactly ``lesion_area`` pixels (70, as in the public code; appendix C's
   figure shows 49) are candidates; compactness 4 pi A / p^2 (p: Crofton perimeter, as in the
   public code) above 0.8 makes a regular lesion, below 0.4 an irregular one. Each lesion is padded
   by 2 px, smoothed with a Gaussian of sigma 0.75 px and values below 0.2 are cut to 0. The bank
   is seeded (``bank={"seed": 0, "per_type": 64}``), built once and cached on disk.
2. Field of view and lesion size (``field_of_view``). ``"crop"`` (default): the slice keeps the
   document's 0.7 mm pixels and the image is a ``size`` px window of it where the brain is
   (:mod:`salbench.data.backgrounds`); lesions are the bank's as drawn (``lesion_scale = 1``, the
   document's composition of the 70 px candidates into the 270 px slice), so their area and shape
   are the same at every ``size``. ``"scale"``: the whole slice is resampled to ``size`` px and
   lesions with it, ``lesion_scale = 2 * size / 270`` (the public code enlarged bank lesions twice
   for 270 px slices). A scaled lesion is resized bilinearly and cut below 0.2 of its peak again.
3. Placement: a uniformly random brain pixel is a lesion's top-left corner; a lesion is accepted
   only if its whole bounding box lies inside the brain (or the white matter, ``placement=
   "white_matter"``) and touches no earlier lesion (8-neighbourhood). All valid corners are found at
   once, so the draw is the public code's rejection sampling without its retries. Larger lesions
   are placed first (salbench: fewer slices without room for the last lesion).
4. Composition: each lesion is rescaled to [0, w] and blended in as a *screen*:
   ``x = 1 - (1 - B) (1 - L)`` (NOTES.md: the public code inverts the slice, multiplies by
   ``1 - L`` and inverts back; the document's "pixel-wise multiplied" with "higher w, whiter
   lesions" fits only this reading). The ground-truth mask is the support of ``L``.

Both classes come from one code path that differs only in the bank drawn from, and every image
draws fresh lesions from its bank (the public code reused the first lesions of one class).
Sample ``i`` depends only on ``(seed, i, params)``; classes alternate in random order within each
pair of samples, so any even ``n`` is exactly balanced.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.measure import perimeter_crofton

from salbench.data.backgrounds import (
    DOCUMENT_PIXELS,
    FIELDS_OF_VIEW,
    HCP_FOV_MM,
    MAX_BLACK_FRACTION,
    SLICES_PER_SUBJECT,
    Deformation,
    NiftiBackgrounds,
    TemplateBackgrounds,
    box_sums,
)
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

log = logging.getLogger("salbench.data")
CLASSES = ["regular", "irregular"]
DEFAULT_SIZE = DOCUMENT_PIXELS  # document 000, section 2.1: 270 px
DEFAULT_W = 0.5  # document 000, section 2.1
LESIONS_PER_IMAGE = (3, 5)  # document 000, section 2.1: three to five lesions
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # document 000, section 2.1: by subject
MIN_LESION_PX = 5  # salbench: a scaled lesion narrower than this loses its shape
DEFAULT_FIELD_OF_VIEW = "crop"
CROP_LESION_SCALE = 1.0  # document 000, section 2.1: the bank's lesions composed as drawn
SCALE_LESION_SCALE = 2.0  # public code: bank lesions enlarged x2 for 270 px slices (NOTES.md)
CROP_ROOM = 0.3  # salbench: lesion boxes (+ 1 px ring) may cover 30 % of a crop window
PLACEMENT_TRIES = 5  # salbench: placements of a slice's lesions tried before giving up
POSITION_CLASSES = ("inferior", "superior")
LABELS = ("lesion_type", "slice_position", "sex")


# ---------------------------------------------------------------------------------------------
# lesion bank


@dataclass(frozen=True)
class LesionBankSpec:
    """Parameters of the lesion bank (document 000, section 2.1 and appendix C)."""

    seed: int = 0
    per_type: int = 64
    lesion_area: int = 70
    noise_size: int = 256
    noise_sigma: float = 2.0
    smooth_sigma: float = 0.75
    pad: int = 2
    cut: float = 0.2
    regular_min: float = 0.8
    irregular_max: float = 0.4

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Lesion:
    """A bank lesion: its binary component, smoothed patch in [0, 1] and compactness."""

    shape: np.ndarray  # bool, the connected component's bounding box
    patch: np.ndarray  # float32, padded and smoothed, max 1
    compactness: float


def compactness(component: np.ndarray) -> float:
    """4 pi A / p^2 with p the Crofton perimeter (4 directions) of a binary component."""
    perimeter = perimeter_crofton(np.pad(component, 1), directions=4)
    return float(4 * np.pi * component.sum() / perimeter**2)


def noise_morphology(spec: LesionBankSpec, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise image ``k``: the eroded-and-opened binary image and its second erosion."""
    noise = np.random.default_rng([spec.seed, 5001, k]).random((spec.noise_size,) * 2)
    smooth = ndimage.gaussian_filter(noise, spec.noise_sigma)
    binary = smooth > threshold_otsu(smooth)
    opened = ndimage.binary_opening(ndimage.binary_erosion(binary))
    return opened, ndimage.binary_erosion(opened)


def components_of_area(binary: np.ndarray, area: int) -> list[np.ndarray]:
    labels, _ = ndimage.label(binary)
    sizes = np.bincount(labels.ravel())
    boxes = ndimage.find_objects(labels)
    return [labels[boxes[j - 1]] == j for j in np.flatnonzero(sizes == area) if j > 0]


def smooth_lesion(shape: np.ndarray, spec: LesionBankSpec) -> np.ndarray:
    patch = ndimage.gaussian_filter(np.pad(shape.astype(np.float64), spec.pad), spec.smooth_sigma)
    patch[patch < spec.cut] = 0.0
    return (patch / patch.max()).astype(np.float32)


def build_lesion_bank(spec: LesionBankSpec) -> dict[str, list[Lesion]]:
    """Draw noise images until ``per_type`` regular and irregular lesions are found (in order)."""
    bank: dict[str, list[Lesion]] = {"regular": [], "irregular": []}
    k = 0
    while min(len(v) for v in bank.values()) < spec.per_type:
        opened, eroded = noise_morphology(spec, k)
        for name, binary in (("regular", opened), ("irregular", eroded)):
            if len(bank[name]) >= spec.per_type:
                continue
            for shape in components_of_area(binary, spec.lesion_area):
                c = compactness(shape)
                wanted = c > spec.regular_min if name == "regular" else c < spec.irregular_max
                if wanted and len(bank[name]) < spec.per_type:
                    bank[name].append(Lesion(shape, smooth_lesion(shape, spec), c))
        k += 1
        if k > 200_000:
            raise RuntimeError(f"no lesion bank for {spec}: too few candidates after {k} images")
    return bank


def cache_dir() -> Path:
    return Path(os.environ.get("SALBENCH_CACHE", Path.home() / ".cache" / "salbench"))


@functools.lru_cache(maxsize=4)
def lesion_bank(spec: LesionBankSpec = LesionBankSpec()) -> dict[str, list[Lesion]]:
    """The seeded lesion bank, from the on-disk cache when present (``$SALBENCH_CACHE``)."""
    path = cache_dir() / f"lesion-bank-{spec.key()}.pkl"
    if path.is_file():
        try:
            return pickle.loads(path.read_bytes())
        except Exception as err:
            log.warning("lesion bank cache %s unreadable (%s); rebuilding it", path, err)
    bank = build_lesion_bank(spec)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(bank))
        tmp.replace(path)
    except OSError:
        pass
    return bank


def scale_patch(patch: np.ndarray, scale: float, cut: float) -> np.ndarray:
    """Bilinear resize by ``scale``; values below ``cut`` of the peak are cut to 0; max 1."""
    h, w = patch.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = cv2.resize(patch, size, interpolation=cv2.INTER_LINEAR) if scale != 1 else patch.copy()
    out = out / max(float(out.max()), 1e-12)
    out[out < cut] = 0.0
    return out.astype(np.float32)


@functools.lru_cache(maxsize=4)
def scaled_bank(spec: LesionBankSpec, scale: float) -> dict[str, list[tuple[np.ndarray, float]]]:
    """The bank's patches scaled by ``scale``, with each lesion's compactness."""
    return {name: [(scale_patch(les.patch, scale, spec.cut), les.compactness) for les in lesions]
            for name, lesions in lesion_bank(spec).items()}


# ---------------------------------------------------------------------------------------------
# placement and composition


def valid_corners(allowed: np.ndarray, h: int, w: int) -> np.ndarray:
    """Boolean ``[S, S]``: top-left corners whose ``h`` x ``w`` box lies wholly in ``allowed``."""
    size_r, size_c = allowed.shape
    out = np.zeros(allowed.shape, dtype=bool)
    if h > size_r or w > size_c:
        return out
    out[: size_r - h + 1, : size_c - w + 1] = box_sums(allowed, h, w) == h * w
    return out


def place_lesions(patches: list[np.ndarray], allowed: np.ndarray, rng: np.random.Generator
                  ) -> list[tuple[int, int]] | None:
    """Top-left corners for ``patches`` (in their order), each box inside ``allowed`` and off the
    other lesions and their 8-neighbourhood; ``None`` when ``PLACEMENT_TRIES`` placements of the
    whole set all ran out of room."""
    for _ in range(PLACEMENT_TRIES):
        corners = place_once(patches, allowed, rng)
        if corners is not None:
            return corners
    return None


def place_once(patches: list[np.ndarray], allowed: np.ndarray, rng: np.random.Generator
               ) -> list[tuple[int, int]] | None:
    """One sequential placement, largest box first, each corner uniform over the free ones."""
    free = allowed.copy()
    corners = [(0, 0)] * len(patches)
    for j in sorted(range(len(patches)), key=lambda j: -patches[j].size):
        patch = patches[j]
        candidates = np.flatnonzero(valid_corners(free, *patch.shape))
        if not len(candidates):
            return None
        r, c = divmod(int(rng.choice(candidates)), free.shape[1])
        corners[j] = (r, c)
        h, w = patch.shape  # the lesion and its 8-neighbourhood are no longer free
        grown = ndimage.binary_dilation(np.pad(patch > 0, 1), structure=np.ones((3, 3), bool))
        r0, c0 = max(r - 1, 0), max(c - 1, 0)
        r1, c1 = min(r + h + 1, free.shape[0]), min(c + w + 1, free.shape[1])
        free[r0:r1, c0:c1] &= ~grown[r0 - r + 1:r1 - r + 1, c0 - c + 1:c1 - c + 1]
    return corners


def screen_blend(background: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """``1 - (1 - B)(1 - L)``: the public code's composition (NOTES.md)."""
    return 1.0 - (1.0 - background) * (1.0 - layer)


# ---------------------------------------------------------------------------------------------
# the generator spec


@dataclass(frozen=True)
class MRISpec:
    """Everything sample ``i`` depends on. Build with :func:`make_spec`."""

    seed: int
    size: int
    w: float
    lesion_scale: float
    lesions_per_image: tuple[int, int]
    placement: str
    split_fractions: tuple[float, float, float]
    bank: LesionBankSpec
    backgrounds: TemplateBackgrounds | NiftiBackgrounds
    lesion_free: bool = False
    label: str = "lesion_type"
    name: str = "mri-lesions"

    def classes(self) -> list[str]:
        if self.label == "lesion_type":
            return list(CLASSES)
        if self.label == "slice_position":
            return list(POSITION_CLASSES)
        return ["female", "male"]

    def shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def has_masks(self) -> bool:
        return not self.lesion_free

    def params(self) -> dict:
        bg = self.backgrounds
        background = ({"kind": "mni152", **{k: v for k, v in asdict(bg).items()
                                            if k not in ("size", "seed", "field_of_view")}}
                      if isinstance(bg, TemplateBackgrounds) else
                      {"kind": "nifti", "folder": bg.folder, "demographics": bg.demographics,
                       "fov_mm": bg.fov_mm, "max_black_fraction": bg.max_black_fraction,
                       "subjects": bg.n_subjects})
        return {"seed": self.seed, "size": self.size, "field_of_view": bg.field_of_view,
                "w": self.w, "lesion_scale": self.lesion_scale,
                "lesions_per_image": list(self.lesions_per_image),
                "placement": self.placement, "split_fractions": list(self.split_fractions),
                "bank": asdict(self.bank), "backgrounds": background,
                "lesion_free": self.lesion_free, "label": self.label}

    def prepare(self) -> None:
        if not self.lesion_free:
            self.scaled_bank()
        if isinstance(self.backgrounds, TemplateBackgrounds):
            self.backgrounds.kept()

    def scaled_bank(self) -> dict[str, list[tuple[np.ndarray, float]]]:
        return scaled_bank(self.bank, self.lesion_scale)

    def target(self, i: int) -> int:
        """Lesion class of sample ``i``: a random one of the pair ``(2j, 2j+1)`` gets class 0."""
        first = int(np.random.default_rng([self.seed, 6001, i // 2]).integers(2))
        return first if i % 2 == 0 else 1 - first

    def sample(self, i: int) -> tuple[np.ndarray, int, np.ndarray, dict]:
        bg_source = self.backgrounds
        position, k = bg_source.locate(i)
        rng = np.random.default_rng([self.seed, 6002, i])
        background = bg_source.render(position, k, rng)
        meta = {"sample_id": i, "split": split_of_position(position, self.split_fractions),
                "subject": background.subject, "slice_index": background.slice_index,
                "slice_position": background.position, "sex": bg_source.subject_sex(position),
                "window_row": background.window[0], "window_col": background.window[1]}
        mask = np.zeros((self.size, self.size), np.float32)
        if self.lesion_free:
            if self.label == "slice_position":
                y = int(background.position >= 0.5)
            else:
                y = ["female", "male"].index(normalise_sex(meta["sex"], background.subject))
            return background.image, y, mask, meta
        y = self.target(i)
        lesion_type = CLASSES[y]
        bank = self.scaled_bank()[lesion_type]
        count = int(rng.integers(self.lesions_per_image[0], self.lesions_per_image[1] + 1))
        chosen = rng.choice(len(bank), size=count, replace=False)
        patches = [bank[j][0] for j in chosen]
        allowed = background.brain
        if self.placement == "white_matter":
            allowed = background.white_matter
        corners = place_lesions(patches, allowed, rng)
        fallback = corners is None and self.placement == "white_matter"
        if fallback:  # no room in this slice's white matter: the brain is used instead
            corners = place_lesions(patches, background.brain, rng)
        if corners is None:
            raise RuntimeError(f"sample {i}: no room for {count} lesions in the brain of "
                               f"{background.subject} slice {background.slice_index}; lower "
                               "lesion_scale or raise size")
        layer = np.zeros_like(mask)
        centres, areas = [], []
        for patch, (r, c) in zip(patches, corners):
            h, w = patch.shape
            layer[r:r + h, c:c + w] = np.maximum(layer[r:r + h, c:c + w], patch * self.w)
            rows, cols = np.nonzero(patch > 0)
            centres.append([float(r + rows.mean()), float(c + cols.mean())])
            areas.append(len(rows))
        mask = (layer > 0).astype(np.float32)
        image = np.where(layer > 0, screen_blend(background.image, layer),
                         background.image).astype(np.float32)
        meta.update({"lesion_type": lesion_type, "n_lesions": count,
                     "lesion_ids": [int(j) for j in chosen], "lesion_centres": centres,
                     "lesion_areas": areas,
                     "lesion_compactness": [float(bank[j][1]) for j in chosen],
                     "placement_fallback": bool(fallback)})
        return image, y, mask, meta

    def make(self, start: int, stop: int) -> Chunk:
        return make_chunk(self.sample, start, stop, self.shape())


def normalise_sex(value, subject: str) -> str:
    text = str(value).strip().lower()
    if text in ("f", "female", "0", "w", "woman"):
        return "female"
    if text in ("m", "male", "1", "man"):
        return "male"
    raise ValueError(f"subject {subject}: sex {value!r} is not one of F/M/female/male/0/1")


# ---------------------------------------------------------------------------------------------
# public API


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def make_spec(seed: int = 0, size: int = DEFAULT_SIZE, w: float = DEFAULT_W,
              field_of_view: str = DEFAULT_FIELD_OF_VIEW, lesion_scale: float | None = None,
              lesions_per_image: tuple[int, int] = LESIONS_PER_IMAGE, placement: str = "brain",
              split_fractions=SPLIT_FRACTIONS, backgrounds: str | Path | None = None,
              demographics: str | Path | None = None, fov_mm: float = HCP_FOV_MM,
              max_black_fraction: float = MAX_BLACK_FRACTION,
              slices_per_subject: int = SLICES_PER_SUBJECT,
              deformation: Deformation | dict | None = None,
              bank: LesionBankSpec | dict | None = None, lesion_free: bool = False,
              label: str | None = None) -> MRISpec:
    """Validate the parameters of :func:`generate` (see there) and freeze them into a spec."""
    seed = _check_int(seed, "seed", 0)
    size = _check_int(size, "size", 8)
    if label is None:
        label = "slice_position" if lesion_free else "lesion_type"
    if (label == "lesion_type") == lesion_free or label not in LABELS:
        raise ValueError(f"label must be 'slice_position' or 'sex' for lesion-free slices and "
                         f"'lesion_type' otherwise, got {label!r}")
    if not (isinstance(w, (int, float)) and 0 < w <= 1):
        raise ValueError(f"w must be in (0, 1] (the lesions' peak intensity), got {w!r}")
    if placement not in ("brain", "white_matter"):
        raise ValueError(f"placement must be 'brain' or 'white_matter', got {placement!r}")
    if field_of_view not in FIELDS_OF_VIEW:
        raise ValueError(f"field_of_view must be 'crop' (a window of the 270 px slice, lesions at "
                         f"their drawn size) or 'scale' (the whole slice resampled to size, "
                         f"lesions scaled with it), got {field_of_view!r}")
    low, high = (int(v) for v in lesions_per_image)
    if not 1 <= low <= high:
        raise ValueError(f"lesions_per_image must be (min, max) with 1 <= min <= max, "
                         f"got {lesions_per_image!r}")
    fractions = check_fractions(split_fractions)
    bank_spec = bank if isinstance(bank, LesionBankSpec) else LesionBankSpec(**(bank or {}))
    deform = (deformation if isinstance(deformation, Deformation)
              else Deformation(**(deformation or {})))
    if lesion_scale is not None:
        scale = float(lesion_scale)
    elif field_of_view == "crop":
        scale = CROP_LESION_SCALE
    else:
        scale = SCALE_LESION_SCALE * size / DEFAULT_SIZE
    if not lesion_free:
        check_lesion_fit(size, scale, bank_spec, high, field_of_view)
    if label == "sex" and demographics is None:
        raise ValueError("label='sex' needs backgrounds=DIR and demographics=CSV (columns "
                         "subject, sex)")
    if backgrounds is not None and placement == "white_matter":
        raise ValueError("placement='white_matter' needs the MNI152 template's tissue map; "
                         "NIfTI folders have none: use placement='brain'")
    if backgrounds is None:
        if demographics is not None:
            raise ValueError("demographics needs backgrounds=DIR (a NIfTI folder); the MNI152 "
                             "template's pseudo-subjects have no sex")
        source = TemplateBackgrounds(size, seed, fov_mm, max_black_fraction, slices_per_subject,
                                     deform, field_of_view)
    else:
        source = NiftiBackgrounds.scan(backgrounds, size, seed, fov_mm, max_black_fraction,
                                       demographics, field_of_view)
    if label == "sex":
        missing = [f for f, s in zip(source.files, source.sexes) if s is None]
        if missing:
            raise ValueError(f"demographics={str(demographics)!r} has no sex for {len(missing)} "
                             f"subjects, e.g. {Path(missing[0]).name}")
        for f, s in zip(source.files, source.sexes):
            normalise_sex(s, Path(f).name)
    return MRISpec(seed, size, float(w), scale, (low, high), placement, fractions, bank_spec,
                   source, lesion_free, label,
                   "mri-lesion-free" if lesion_free else "mri-lesions")


def check_lesion_fit(size: int, scale: float, bank: LesionBankSpec, count: int,
                     field_of_view: str) -> None:
    """Scaled lesions must keep their shape (>= 5 px wide) and ``count`` of them must fit.

    A typical lesion's box is ``s = scale (2 pad + sqrt(lesion_area))`` px wide. ``"scale"``: the
    whole slice, about half brain, must offer ``count (1.6 s)^2 <= 0.2 size^2``; ``"crop"``: the
    window, chosen where the brain is, ``count (s + 2)^2 <= CROP_ROOM size^2`` (the box and the
    ring no other lesion may touch).
    """
    if not scale > 0:
        raise ValueError(f"lesion_scale must be > 0, got {scale!r}")
    side = 2 * bank.pad + np.sqrt(bank.lesion_area)
    scaled = side * scale
    if scaled < MIN_LESION_PX:
        remedy = ("a larger lesion_scale" if field_of_view == "crop" else
                  f"size >= {int(np.ceil(MIN_LESION_PX / side * DEFAULT_SIZE / 2))}, "
                  "field_of_view='crop' or a larger lesion_scale")
        raise ValueError(f"size={size} is too small for the lesions: at lesion_scale={scale:.3g} "
                         f"a lesion is {scaled:.1f} px wide (< {MIN_LESION_PX}); use {remedy}")
    if field_of_view == "crop":
        fits = count * (scaled + 2) ** 2 <= CROP_ROOM * size * size
        need = int(np.ceil((scaled + 2) * np.sqrt(count / CROP_ROOM)))
    else:
        fits = count * (scaled * 1.6) ** 2 <= 0.2 * size * size
        need = int(np.ceil(scaled * 1.6 * np.sqrt(count / 0.2)))
    if not fits:
        raise ValueError(f"lesion_scale={scale:.3g} makes lesions too large ({scaled:.0f} px) for "
                         f"{count} of them in a {size} px image (field_of_view={field_of_view!r}); "
                         f"use size >= {need} or a smaller lesion_scale")


def check_splits(spec: MRISpec, n: int) -> None:
    """Refuse ``n`` slices whose subjects leave a split with a positive fraction empty."""
    source = spec.backgrounds
    need = units_needed(spec.split_fractions)

    def remedy(empty: list[str]) -> str:
        zero = f"or split_fractions with 0 for {' and '.join(empty)}"
        if isinstance(source, TemplateBackgrounds):
            fewer = (f", slices_per_subject <= {(n - 1) // (need - 1)}," if n >= need else "")
            return f"use n >= {(need - 1) * source.slices_per_subject + 1}{fewer} {zero}"
        if source.n_subjects < need:
            return (f"add volumes to backgrounds ({source.n_subjects} subjects, {need} needed) "
                    f"{zero}")
        return f"use n >= {sum(len(z) for z in source.slices[:need - 1]) + 1} {zero}"

    subjects = np.array([source.locate(i)[0] for i in range(n)])
    check_split_sizes(subjects, spec.split_fractions, spec.name, "slices", "subject", remedy)


def generate(n: int, seed: int = 0, size: int = DEFAULT_SIZE, w: float = DEFAULT_W,
             workers: int = 1, **params) -> GroundTruthDataset:
    """Generate ``n`` MRI slices with 3-5 regular (class 0) or irregular (class 1) lesions.

    Document 000, section 2.1. Returns a :class:`GroundTruthDataset` with ``x`` float32
    ``[n, 1, size, size]`` in [0, 1] (background in [0, 0.7], lesions screen-blended with peak
    ``w``), ``y`` in {0 regular, 1 irregular} (exactly balanced for even ``n``), binary ``masks``
    (lesion support) and per-sample ``meta``: subject, slice_index, slice_position, lesion_type,
    n_lesions, lesion_centres (row, col), lesion_areas (px), lesion_compactness, window_row and
    window_col (the image's corner in its frame), split (by subject, 60/20/20; a split left empty
    by too few subjects is an error). ``workers`` processes generate in parallel; the bytes never
    depend on it.

    Other parameters (``params``): ``field_of_view`` ("crop", default: a ``size`` px window of the
    270 px slice with lesions at their drawn size; "scale": the whole slice resampled to ``size``,
    lesions with it), ``lesion_scale`` (default 1 for "crop", ``2 * size / 270`` for "scale"),
    ``lesions_per_image`` ((3, 5)), ``placement`` ("brain" or "white_matter"),
    ``split_fractions`` ((0.6, 0.2, 0.2)), ``backgrounds`` (a folder of NIfTI volumes instead of
    the MNI152 template), ``demographics``, ``fov_mm`` (189), ``max_black_fraction`` (0.55),
    ``slices_per_subject`` (41), ``deformation`` (dict of :class:`Deformation` fields), ``bank``
    (dict of :class:`LesionBankSpec` fields).
    """
    n = check_count(n)
    spec = make_spec(seed=seed, size=size, w=w, **params)
    check_splits(spec, n)
    return generate_dataset(spec, n, workers)


def generate_lesion_free(n: int, seed: int = 0, label: str = "slice_position",
                         size: int = DEFAULT_SIZE, workers: int = 1,
                         **params) -> GroundTruthDataset:
    """The same slices without lesions, for within-domain pre-training (document 000, 2.2).

    ``label="slice_position"``: y = 0 "inferior" / 1 "superior" half of the volume's kept slices;
    ``label="sex"``: the subject's sex from ``demographics`` (needs ``backgrounds=DIR``), y = 0
    female / 1 male. Masks are all zeros. Other parameters as for :func:`generate`.
    """
    n = check_count(n)
    if label not in ("slice_position", "sex"):
        raise ValueError(f"label must be 'slice_position' or 'sex', got {label!r}")
    spec = make_spec(seed=seed, size=size, lesion_free=True, label=label, **params)
    check_splits(spec, n)
    return generate_dataset(spec, n, workers)


def write(n: int, out: str | Path, seed: int = 0, workers: int = 1, shard_size: int = 256,
          lesion_free: bool = False, **params) -> Path:
    """Generate to the on-disk format in ``out`` (resumable); read back with
    ``salbench.data.load``."""
    n = check_count(n)
    spec = make_spec(seed=seed, lesion_free=lesion_free, **params)
    check_splits(spec, n)
    return write_dataset(spec, n, out, workers, shard_size)
