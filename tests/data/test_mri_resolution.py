"""MRI lesions keep the document's size and shape at every image size a study preset uses
(document 000, section 2.1: a lesion's class is its shape, compactness 4 pi A / p^2; lesions are
the bank's 70 px components, padded and smoothed)."""

import numpy as np
import pytest
from skimage.measure import label, regionprops

from salbench.data import mri_lesions
from salbench.data.mri_lesions import LesionBankSpec, lesion_bank

PRESET_SIZES = (64, 128, 224, 270)  # the MRI sizes of src/salbench/studies/*/config.py
N, SLICES = 16, 4
COMPONENT_AREA = LesionBankSpec().lesion_area  # 70 px before padding and smoothing
HALO = 1.7  # smoothing (sigma 0.75 px, cut 0.2) grows a 70 px component to at most ~115 px


def components(binary: np.ndarray) -> list[tuple[int, float]]:
    """(area, Crofton compactness 4 pi A / p^2) of every 8-connected component."""
    regions = regionprops(label(np.pad(binary, 1), connectivity=2))
    return [(int(r.area), float(4 * np.pi * r.area / r.perimeter_crofton ** 2)) for r in regions]


def lesion_shapes(data) -> dict[int, list[tuple[int, float]]]:
    """Per class, (area, compactness) of every lesion of the masks."""
    shapes: dict[int, list[tuple[int, float]]] = {0: [], 1: []}
    for i in range(len(data)):
        shapes[int(data.y[i])] += components(data.masks[i].numpy() > 0)
    return shapes


def roc_auc(positive: list[float], negative: list[float]) -> float:
    """P(a positive scores above a negative), ties counting one half (Mann-Whitney)."""
    p, q = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((p > q).mean() + 0.5 * (p == q).mean())


def document_sized(shapes) -> bool:
    """Every lesion covers a 70 px component and at most its smoothing halo."""
    areas = [a for rows in shapes.values() for a, _ in rows]
    return min(areas) >= COMPONENT_AREA and max(areas) <= HALO * COMPONENT_AREA


def shape_auc(shapes) -> float:
    return roc_auc([c for _, c in shapes[0]], [c for _, c in shapes[1]])


@pytest.mark.parametrize("size", PRESET_SIZES)
def test_cropped_lesions_keep_the_document_size_and_shape(size):
    data = mri_lesions.generate(N, seed=4, size=size, slices_per_subject=SLICES)
    shapes = lesion_shapes(data)
    assert sum(len(v) for v in shapes.values()) == data.meta.n_lesions.sum()
    assert document_sized(shapes)
    assert shape_auc(shapes) >= 0.9
    # the masks hold the bank's own lesions, not resampled: same areas and compactness
    bank = lesion_bank(LesionBankSpec())
    for i, row in data.meta.iterrows():
        drawn = sorted(components(bank[row.lesion_type][j].patch > 0)[0] for j in row.lesion_ids)
        found = sorted(components(data.masks[i].numpy() > 0))
        np.testing.assert_allclose(found, drawn, rtol=1e-9)


def test_scaled_lesions_shrink_at_64_px():
    """The control: at 64 px the scale mode shrinks lesions to ~20 px, far from the document's.
    Their masks still separate by compactness (measured AUC 1.0): the shape survives, the size
    does not."""
    data = mri_lesions.generate(N, seed=4, size=64, slices_per_subject=SLICES,
                                field_of_view="scale")
    shapes = lesion_shapes(data)
    assert not document_sized(shapes)
    assert max(a for rows in shapes.values() for a, _ in rows) < COMPONENT_AREA / 2


def test_shape_auc_can_fail():
    """Shuffled classes do not separate: the 0.9 gate is not met by chance."""
    data = mri_lesions.generate(N, seed=4, size=128, slices_per_subject=SLICES)
    shapes = lesion_shapes(data)
    pooled = shapes[0] + shapes[1]
    order = np.random.default_rng(0).permutation(len(pooled))
    half = len(pooled) // 2
    shuffled = {0: [pooled[j] for j in order[:half]], 1: [pooled[j] for j in order[half:]]}
    assert shape_auc(shuffled) < 0.9


def test_a_crop_is_a_window_of_the_document_slice():
    small = mri_lesions.make_spec(seed=4, size=64, slices_per_subject=SLICES).backgrounds
    whole = mri_lesions.make_spec(seed=4, size=270, slices_per_subject=SLICES).backgrounds
    for i in range(8):
        position, k = small.locate(i)
        crop = small.render(position, k, np.random.default_rng([4, 6002, i]))
        full = whole.render(position, k, np.random.default_rng([4, 6002, i]))
        row, col = crop.window
        assert 0 <= row <= 270 - 64 and 0 <= col <= 270 - 64 and full.window == (0, 0)
        np.testing.assert_array_equal(crop.brain, full.brain[row:row + 64, col:col + 64])
        assert crop.brain.mean() > 0.5 and crop.slice_index == full.slice_index


def test_at_270_px_the_crop_is_the_whole_slice():
    crop = mri_lesions.generate(4, seed=4, size=270, slices_per_subject=1)
    scaled = mri_lesions.generate(4, seed=4, size=270, slices_per_subject=1, field_of_view="scale",
                                  lesion_scale=1.0)
    assert (crop.x == scaled.x).all() and (crop.masks == scaled.masks).all()
