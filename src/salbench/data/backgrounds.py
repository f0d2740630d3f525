"""MRI backgrounds: axial T1 slices from nilearn's MNI152 template or from a folder of NIfTI
volumes.

Document 000, section 2.1: axial T1 slices with less than 55 % black pixels, made square (zero
padding along one axis, cropping along the other), 270 x 270 pixels, intensities in [0, 0.7]. The
document's HCP slices are 260 x 311 voxels of 0.7 mm, so the 270 x 270 square covers a field of
view of 189 mm (``fov_mm``), centred on the brain; this pads and crops exactly as the document does
for HCP data and fits any other voxel size. An image of ``size`` pixels is made in one of two
ways (``field_of_view``):

- ``"crop"``: the document's pixels (``fov_mm / 270`` mm, 0.7 mm by default) on a frame of
  ``max(size, 270)`` pixels, of which the image is a ``size`` x ``size`` window where the brain is
  (:func:`brain_window`); at 270 px the window is the whole slice.
- ``"scale"``: the whole field of view sampled at ``size`` pixels (``fov_mm / size`` mm).

Embedded default (no download): the MNI152 T1 template, brain mask and white-matter map that
nilearn ships, turned into distinct *pseudo-subjects*: each subject has its own seeded random 3-D
affine (rotation, per-axis scale, translation), 2-D elastic deformation and multiplicative bias
field; each slice gets its own Gaussian noise. ``NiftiBackgrounds`` reads brain-extracted 3-D
volumes (IXI, HCP) from a folder instead, one subject per file, without augmentation.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

DOCUMENT_PIXELS = 270  # document 000, section 2.1: 270 x 270 slices
HCP_FOV_MM = DOCUMENT_PIXELS * 0.7  # document 000, section 2.1: 270 px of the 0.7 mm HCP slices
FIELDS_OF_VIEW = ("crop", "scale")
WINDOW_BRAIN_SHARE = 0.9  # salbench: a crop window holds >= 90 % of the most brain a window holds
MAX_BLACK_FRACTION = 0.55  # document 000, section 2.1
MAX_INTENSITY = 0.7  # document 000, section 2.1: B_ij in [0, 0.7]
SLICES_PER_SUBJECT = 41  # document 000, datasheet: 24 924 slices from 601 training subjects


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D T1 volume (float32, max 1), its brain mask, optional white-matter map, voxel->mm
    affine, and the world coordinates of the brain's bounding-box centre."""

    t1: np.ndarray
    brain: np.ndarray
    wm: np.ndarray | None
    affine: np.ndarray

    @functools.cached_property
    def centre(self) -> np.ndarray:
        return brain_center(self)


@dataclass
class Background:
    """One background slice: ``image`` float32 ``[S, S]`` in [0, 0.7], ``brain`` and
    ``white_matter`` boolean masks, and where it came from."""

    image: np.ndarray
    brain: np.ndarray
    white_matter: np.ndarray | None
    subject: str
    slice_index: int  # the axial voxel plane of the (undeformed) volume
    position: float  # 0 = lowest kept slice of the volume, 1 = highest
    window: tuple[int, int]  # top-left pixel (row, col) of the image in its frame


MNI152_T1 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"  # nilearn's MNI152_FILE_PATH
MNI152_WM = "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"  # ... and WM_MNI152_FILE_PATH
MNI152_BRAIN_THRESHOLD = 0.2  # nilearn's load_mni152_brain_mask: the max-scaled T1 above 0.2


def nilearn_data_file(name: str) -> Path:
    """A data file nilearn ships (``nilearn/datasets/data/``), found without importing nilearn:
    ``nilearn.datasets`` imports scikit-learn and the rest of nilearn (1.5 s), for two files."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the MNI152 backgrounds need nilearn's packaged template: "
                          "pip install nilearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"nilearn at {path.parents[2]} does not ship {name}; salbench "
                                "reads the MNI152 template nilearn >= 0.10 packages")
    return path


@functools.lru_cache(maxsize=1)
def mni_volume() -> Volume:
    """nilearn's packaged MNI152 T1 template (1 mm), brain mask and white-matter map (no
    download), as ``nilearn.datasets.load_mni152_template``, ``load_mni152_brain_mask`` and
    ``load_mni152_wm_template`` give them (each divided by its max; the mask is the T1 above
    :data:`MNI152_BRAIN_THRESHOLD`), read in float32 with nibabel."""
    t1_image = nib.load(nilearn_data_file(MNI152_T1))
    t1 = t1_image.get_fdata(dtype=np.float32)
    t1 /= t1.max()
    wm = nib.load(nilearn_data_file(MNI152_WM)).get_fdata(dtype=np.float32)
    wm /= wm.max()
    brain = (t1 > MNI152_BRAIN_THRESHOLD).astype(np.float32)
    return Volume(t1, brain, wm, t1_image.affine.astype(np.float64))


def brain_center(volume: Volume) -> np.ndarray:
    """World coordinates (mm) of the centre of the brain mask's bounding box."""
    brain = volume.brain > 0.5
    bounds = []
    for axis in range(3):
        present = np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != axis)))
        bounds.append((present[0] + present[-1]) / 2)
    return (volume.affine @ np.array([*bounds, 1.0]))[:3]


def plane_points(size: int, fov_mm: float, centre: np.ndarray, z_mm: float) -> np.ndarray:
    """World coordinates ``[3, S, S]`` of the pixel centres of an axial plane (anterior at the
    top)."""
    offsets = (np.arange(size) - (size - 1) / 2) * (fov_mm / size)
    points = np.empty((3, size, size))
    points[0] = centre[0] + offsets[None, :]
    points[1] = centre[1] - offsets[:, None]
    points[2] = z_mm
    return points


def apply_affine(matrix: np.ndarray, offset: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``matrix @ p + offset`` for every point of ``points [3, ...]``, as 9 multiply-adds (a BLAS
    call for a 3 x 3 product only costs thread start-up)."""
    out = np.empty_like(points, dtype=np.float64)
    for i in range(3):
        out[i] = matrix[i, 0] * points[0] + matrix[i, 1] * points[1] + matrix[i, 2] * points[2]
        out[i] += offset[i]
    return out


def to_voxels(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Voxel coordinates ``[3, N]`` of world ``points [3, ...]`` under ``affine`` (voxel -> mm)."""
    inverse = np.linalg.inv(affine)
    return apply_affine(inverse[:3, :3], inverse[:3, 3], points).reshape(3, -1)


def sample_volume(array: np.ndarray, voxels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Trilinear samples of ``array`` at ``voxels [3, N]`` (0 outside), reshaped to ``shape``."""
    values = ndimage.map_coordinates(array, voxels, order=1, mode="constant", cval=0.0,
                                     prefilter=False)
    return values.reshape(shape).astype(np.float32, copy=False)


def frame_of(size: int, fov_mm: float, field_of_view: str) -> tuple[int, float]:
    """Side (px) and extent (mm) of the square frame a ``size`` px image is cut from.

    ``"scale"``: the image is the frame, ``fov_mm`` at ``size`` px. ``"crop"``: ``max(size, 270)``
    px of ``fov_mm / 270`` mm (the document's pixels), so the frame is the document's slice or,
    above 270 px, that slice padded.
    """
    if field_of_view == "scale":
        return size, fov_mm
    frame = max(size, DOCUMENT_PIXELS)
    return frame, fov_mm * frame / DOCUMENT_PIXELS


def box_sums(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """``[S - h + 1, S' - w + 1]``: the number of ``mask`` pixels in each ``h`` x ``w`` box, indexed
    by its top-left corner (an integral image)."""
    integral = np.pad(mask.astype(np.int32), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]


def brain_window(brain: np.ndarray, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a ``size`` x ``size`` window of a frame's ``brain`` mask, drawn uniformly
    among the windows holding at least ``WINDOW_BRAIN_SHARE`` of the most brain any window holds.
    A frame of ``size`` px is its own window (nothing is drawn)."""
    if brain.shape[0] == size:
        return 0, 0
    counts = box_sums(brain, size, size)
    candidates = np.flatnonzero(counts >= WINDOW_BRAIN_SHARE * counts.max())
    row, col = divmod(int(rng.choice(candidates)), counts.shape[1])
    return row, col


def cut_window(volume: Volume, voxels: np.ndarray, frame: int, size: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """For the voxel coordinates ``[3, F * F]`` of a frame: the brain mask ``[S, S]`` of its
    :func:`brain_window`, the window's voxel coordinates ``[3, S * S]`` and its top-left corner."""
    brain = sample_volume(volume.brain, voxels, (frame, frame)) > 0.5
    r, c = brain_window(brain, size, rng)
    window = voxels.reshape(3, frame, frame)[:, r:r + size, c:c + size].reshape(3, -1)
    return brain[r:r + size, c:c + size], window, (r, c)


def voxel_plane(volume: Volume, z_mm: float) -> int:
    """Index of the axial voxel plane at world ``z_mm`` (the volume's third voxel axis)."""
    return round(float((np.linalg.inv(volume.affine) @ np.array([0, 0, z_mm, 1.0]))[2]))


def kept_slices(volume: Volume, fov_mm: float, max_black_fraction: float,
                grid: int = 64) -> np.ndarray:
    """World z (mm) of the axial voxel planes whose square field of view is less than
    ``max_black_fraction`` black (outside the brain), in increasing order."""
    centre = volume.centre
    zs = []
    for k in range(volume.brain.shape[2]):
        z = float((volume.affine @ np.array([0, 0, k, 1.0]))[2])
        voxels = to_voxels(volume.affine, plane_points(grid, fov_mm, centre, z))
        brain = sample_volume(volume.brain, voxels, (grid, grid))
        if (brain <= 0.5).mean() < max_black_fraction:
            zs.append(z)
    return np.sort(np.asarray(zs))


def smooth_field(rng: np.random.Generator, sigma: float, grid: int, size: int,
                 count: int = 1) -> np.ndarray:
    """``count`` smooth random fields ``[count, S, S]``: N(0, sigma) on a ``grid`` x ``grid``
    lattice, upsampled bicubically."""
    coarse = rng.normal(0.0, sigma, size=(count, grid, grid)).astype(np.float32)
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC) for c in coarse])


def scale_intensity(values: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Zero outside the brain, scaled so the brightest brain pixel is 0.7 (document 000, 2.1)."""
    image = np.where(brain, np.clip(values, 0.0, None), 0.0).astype(np.float32)
    peak = float(image.max())
    return image * (MAX_INTENSITY / peak) if peak > 0 else image


@dataclass(frozen=True)
class Deformation:
    """Pseudo-subject variation of the template (salbench's choice; the document used real
    subjects).

    Per subject: rotations uniform in +-``rotation_deg`` about each axis, scales uniform in
    1 +- ``scale`` per axis, translations uniform in +-``translation_mm``, an in-plane elastic
    displacement N(0, ``elastic_mm``) on a ``grid`` x ``grid`` lattice (bicubic), and a bias field
    exp(N(0, ``bias``)) on the same lattice. Per slice: Gaussian noise of standard deviation
    ``noise`` (relative to the template's maximum) inside the brain.
    """

    rotation_deg: float = 5.0
    scale: float = 0.08
    translation_mm: float = 4.0
    elastic_mm: float = 3.0
    bias: float = 0.15
    noise: float = 0.01
    grid: int = 5

    def __post_init__(self):
        for name in ("rotation_deg", "scale", "translation_mm", "elastic_mm", "bias", "noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"deformation {name} must be >= 0, got {getattr(self, name)!r}")
        if self.scale >= 1:
            raise ValueError(f"deformation scale must be < 1, got {self.scale!r}")
        if self.grid < 2:
            raise ValueError(f"deformation grid must be >= 2, got {self.grid!r}")


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class TemplateBackgrounds:
    """Pseudo-subjects made from nilearn's MNI152 template; unlimited subjects.

    Subject ``s`` contributes ``slices_per_subject`` distinct kept slices in a seeded random order;
    sample ``i`` shows subject ``i // slices_per_subject``. A subject's deformation lives on the
    frame (:func:`frame_of`), so in ``"crop"`` mode it is the same at every ``size``.
    """

    size: int
    seed: int = 0
    fov_mm: float = HCP_FOV_MM
    max_black_fraction: float = MAX_BLACK_FRACTION
    slices_per_subject: int = SLICES_PER_SUBJECT
    deformation: Deformation = field(default_factory=Deformation)
    field_of_view: str = "crop"

    def __post_init__(self):
        if not 0 < self.max_black_fraction <= 1:
            raise ValueError(f"max_black_fraction must be in (0, 1], got {self.max_black_fraction}")
        if not self.fov_mm > 0:
            raise ValueError(f"fov_mm must be > 0, got {self.fov_mm!r}")
        kept = len(self.kept())
        if not 1 <= self.slices_per_subject <= kept:
            raise ValueError(f"slices_per_subject must be in [1, {kept}] (the template slices with "
                             f"< {self.max_black_fraction:.0%} black pixels), got "
                             f"{self.slices_per_subject}")

    def kept(self) -> np.ndarray:
        return _template_kept(self.fov_mm, self.max_black_fraction)

    @property
    def n_subjects(self) -> int | None:
        return None

    @property
    def has_white_matter(self) -> bool:
        return True

    def locate(self, i: int) -> tuple[int, int]:
        return i // self.slices_per_subject, i % self.slices_per_subject

    def subject_sex(self, position: int) -> str | None:
        return None

    def render(self, position: int, k: int, rng: np.random.Generator) -> Background:
        volume, kept, d = mni_volume(), self.kept(), self.deformation
        frame, frame_mm = frame_of(self.size, self.fov_mm, self.field_of_view)
        subject_rng = np.random.default_rng([self.seed, 7001, position])
        order = subject_rng.permutation(len(kept))
        angles = subject_rng.uniform(-d.rotation_deg, d.rotation_deg, 3)
        scales = subject_rng.uniform(1 - d.scale, 1 + d.scale, 3)
        shift = subject_rng.uniform(-d.translation_mm, d.translation_mm, 3)
        elastic = smooth_field(subject_rng, d.elastic_mm, d.grid, frame, count=2)
        bias = np.exp(smooth_field(subject_rng, d.bias, d.grid, frame)[0])
        slot = int(order[k])
        centre = volume.centre
        points = plane_points(frame, frame_mm, centre, float(kept[slot]))
        points[:2] += elastic
        # the subject's anatomy is the template moved by the inverse of its affine
        matrix = rotation_matrix(angles) @ np.diag(1 / scales)
        voxels = to_voxels(volume.affine,
                           apply_affine(matrix, centre + shift - matrix @ centre, points))
        brain, voxels, (r, c) = cut_window(volume, voxels, frame, self.size, rng)
        shape = brain.shape
        t1 = sample_volume(volume.t1, voxels, shape) * bias[r:r + self.size, c:c + self.size]
        if d.noise:
            t1 += d.noise * rng.standard_normal(shape, dtype=np.float32)
        wm = sample_volume(volume.wm, voxels, shape) > 0.5
        return Background(scale_intensity(t1, brain), brain, wm & brain,
                          f"mni-{self.seed}-{position:05d}", voxel_plane(volume, kept[slot]),
                          slot / max(len(kept) - 1, 1), (r, c))


@functools.lru_cache(maxsize=8)
def _template_kept(fov_mm: float, max_black_fraction: float) -> np.ndarray:
    return kept_slices(mni_volume(), fov_mm, max_black_fraction)


# ---------------------------------------------------------------------------------------------
# NIfTI folders


NIFTI_SUFFIXES = (".nii", ".nii.gz")


def subject_name(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES[::-1]:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@functools.lru_cache(maxsize=2)
def read_volume(path: str) -> Volume:
    """A brain-extracted 3-D NIfTI volume, reoriented to RAS, scaled to max 1;
    brain = voxels > 0."""
    image = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 2:
        raise ValueError(f"{path} is not a 3-D volume (shape {data.shape})")
    data = np.nan_to_num(data, nan=0.0)
    peak = float(data.max())
    if peak <= 0:
        raise ValueError(f"{path} has no positive voxel")
    return Volume(data / peak, (data > 0).astype(np.float32), None, image.affine)


@dataclass(frozen=True)
class NiftiBackgrounds:
    """Axial slices of every readable 3-D NIfTI volume in ``folder``, one subject per file.

    Subjects are taken in a seeded random order, each with all of its kept slices (bottom to top);
    sample ``i`` beyond the last slice wraps around. ``demographics``: optional CSV with columns
    ``subject`` (file name without ``.nii``/``.nii.gz``) and ``sex``. Volumes must be
    brain-extracted (the brain mask is ``voxel > 0``, as in the document's code). Unreadable files
    are skipped and counted in ``skipped``.
    """

    folder: str
    size: int
    seed: int = 0
    fov_mm: float = HCP_FOV_MM
    max_black_fraction: float = MAX_BLACK_FRACTION
    demographics: str | None = None
    files: tuple[str, ...] = ()
    slices: tuple[tuple[float, ...], ...] = ()
    sexes: tuple[str | None, ...] = ()
    skipped: int = 0
    field_of_view: str = "crop"

    @classmethod
    def scan(cls, folder: str | Path, size: int, seed: int = 0, fov_mm: float = HCP_FOV_MM,
             max_black_fraction: float = MAX_BLACK_FRACTION,
             demographics: str | Path | None = None,
             field_of_view: str = "crop") -> NiftiBackgrounds:
        root = Path(folder)
        if not root.is_dir():
            raise ValueError(f"backgrounds={str(folder)!r} is not a folder of NIfTI volumes")
        paths = sorted(p for p in root.iterdir() if p.name.endswith(NIFTI_SUFFIXES))
        files, slices, skipped = [], [], 0
        for path in paths:
            try:
                zs = kept_slices(read_volume(str(path)), fov_mm, max_black_fraction)
            except Exception:
                skipped += 1
                continue
            if len(zs):
                files.append(str(path))
                slices.append(tuple(float(z) for z in zs))
        if not files:
            raise ValueError(f"backgrounds={str(folder)!r} holds no readable 3-D NIfTI volume with "
                             f"a slice under {max_black_fraction:.0%} black ({len(paths)} files "
                             f"tried, {skipped} unreadable)")
        order = np.random.default_rng([seed, 7002]).permutation(len(files))
        files = [files[j] for j in order]
        slices = [slices[j] for j in order]
        sexes: list[str | None] = [None] * len(files)
        if demographics is not None:
            table = pd.read_csv(demographics)
            if not {"subject", "sex"} <= set(table.columns):
                raise ValueError(f"demographics={str(demographics)!r} must have the columns "
                                 f"subject, sex; got {list(table.columns)}")
            lookup = dict(zip(table["subject"].astype(str), table["sex"].astype(str)))
            sexes = [lookup.get(subject_name(Path(f))) for f in files]
        return cls(str(root), size, seed, fov_mm, max_black_fraction,
                   None if demographics is None else str(demographics), tuple(files),
                   tuple(slices), tuple(sexes), skipped, field_of_view)

    @property
    def n_subjects(self) -> int:
        return len(self.files)

    @property
    def has_white_matter(self) -> bool:
        return False

    @functools.cached_property
    def _offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([len(s) for s in self.slices])])

    def locate(self, i: int) -> tuple[int, int]:
        j = i % int(self._offsets[-1])
        position = int(np.searchsorted(self._offsets, j, side="right") - 1)
        return position, j - int(self._offsets[position])

    def subject_sex(self, position: int) -> str | None:
        return self.sexes[position]

    def render(self, position: int, k: int, rng: np.random.Generator) -> Background:
        volume = read_volume(self.files[position])
        zs = self.slices[position]
        frame, frame_mm = frame_of(self.size, self.fov_mm, self.field_of_view)
        voxels = to_voxels(volume.affine, plane_points(frame, frame_mm, volume.centre, zs[k]))
        brain, voxels, window = cut_window(volume, voxels, frame, self.size, rng)
        t1 = sample_volume(volume.t1, voxels, brain.shape)
        return Background(scale_intensity(t1, brain), brain, None,
                          subject_name(Path(self.files[position])), voxel_plane(volume, zs[k]),
                          k / max(len(zs) - 1, 1), window)
