"""MRI lesions (document 000, section 2.1): properties of generated samples, checked against the
document's rules with independent measurements."""

import numpy as np
import pytest
import torch
from skimage.measure import label, regionprops

from salbench.data import mri_lesions
from salbench.data.mri_lesions import CLASSES, LesionBankSpec, lesion_bank, make_spec

SIZE, N, SEED = 96, 24, 3
PARAMS = {"size": SIZE, "slices_per_subject": 4}


@pytest.fixture(scope="module")
def data():
    return mri_lesions.generate(N, seed=SEED, **PARAMS)


@pytest.fixture(scope="module")
def spec():
    return make_spec(seed=SEED, **PARAMS)


def background(spec, i):
    """The sample's background slice, rendered again with the sample's own random stream."""
    position, k = spec.backgrounds.locate(i)
    return spec.backgrounds.render(position, k, np.random.default_rng([SEED, 6002, i]))


def crofton_compactness(binary):
    (region,) = regionprops(label(np.pad(binary, 1)))
    return 4 * np.pi * region.area / region.perimeter_crofton**2


def test_shapes_dtypes_and_classes(data):
    assert data.x.shape == (N, 1, SIZE, SIZE) and data.x.dtype == torch.float32
    assert data.y.dtype == torch.int64 and data.masks.shape == (N, SIZE, SIZE)
    assert data.classes == ["regular", "irregular"]
    assert int(data.y.sum()) == N // 2  # balanced: one of each class in every pair of samples
    assert set(torch.unique(data.masks).tolist()) == {0.0, 1.0}


def test_lesion_count_and_type(data):
    for i in range(N):
        row = data.meta.iloc[i]
        assert 3 <= row.n_lesions <= 5
        assert row.lesion_type == CLASSES[int(data.y[i])]
        assert len(row.lesion_compactness) == row.n_lesions == len(set(row.lesion_ids))
        components = label(data.masks[i].numpy() > 0, connectivity=2)
        assert components.max() == row.n_lesions  # separate, non-touching lesions


def test_bank_compactness_measured_independently():
    bank = lesion_bank(LesionBankSpec())
    for lesion in bank["regular"]:
        assert lesion.shape.sum() == 70 and crofton_compactness(lesion.shape) > 0.8
    for lesion in bank["irregular"]:
        assert lesion.shape.sum() == 70 and crofton_compactness(lesion.shape) < 0.4
    # each lesion drawn into an image is a bank lesion of its class
    for name in CLASSES:
        assert len({les.patch.tobytes() for les in bank[name]}) == len(bank[name])


def test_lesion_classes_stay_separable_in_the_masks(data):
    compact = {0: [], 1: []}
    for i in range(N):
        regions = regionprops(label(np.pad(data.masks[i].numpy() > 0, 1), connectivity=2))
        compact[int(data.y[i])] += [4 * np.pi * r.area / r.perimeter_crofton**2 for r in regions]
    assert min(compact[0]) > max(compact[1])


def test_lesions_inside_brain_and_masks_cover_exactly_the_change(data, spec):
    for i in range(N):
        bg = background(spec, i)
        x, mask = data.x[i, 0].numpy(), data.masks[i].numpy() > 0
        for region in regionprops(label(mask, connectivity=2)):
            r0, c0, r1, c1 = region.bbox
            assert bg.brain[r0:r1, c0:c1].all()  # the lesion's box lies inside the brain
        np.testing.assert_array_equal(x > bg.image, mask)  # the image changed exactly on the mask
        np.testing.assert_array_equal(x[~mask], bg.image[~mask])
        assert bg.image.max() <= 0.7 + 1e-6 and bg.image.min() >= 0 and x.max() <= 1
        assert (bg.image[~bg.brain] == 0).all()


def test_screen_blend_peaks_at_w(spec):
    w = 0.35
    data = mri_lesions.generate(6, seed=SEED, w=w, split_fractions=(1, 0, 0), **PARAMS)
    for i in range(6):
        bg = background(spec, i)
        x, mask = data.x[i, 0].numpy().astype(np.float64), data.masks[i].numpy() > 0
        layer = 1 - (1 - x) / (1 - bg.image)  # invert x = 1 - (1 - B)(1 - L)
        assert layer[mask].min() > 0 and layer[mask].max() <= w + 1e-5
        for region in regionprops(label(mask, connectivity=2)):
            peak = layer[tuple(region.coords.T)].max()
            assert peak == pytest.approx(w, abs=1e-5)


def test_subject_disjoint_splits(data):
    subjects = {s: set(data.meta.subject[data.meta.split == s]) for s in ("train", "val", "test")}
    assert all(subjects.values())
    assert not (subjects["train"] & subjects["val"] or subjects["train"] & subjects["test"]
                or subjects["val"] & subjects["test"])
    assert len(data.split("train")) + len(data.split("val")) + len(data.split("test")) == N


def test_same_bytes_for_any_worker_count_and_alone(data, spec):
    parallel = mri_lesions.generate(N, seed=SEED, workers=2, **PARAMS)
    assert torch.equal(parallel.x, data.x) and torch.equal(parallel.masks, data.masks)
    assert torch.equal(parallel.y, data.y)
    assert parallel.meta.astype(str).equals(data.meta.astype(str))
    alone = spec.make(17, 18)
    assert np.array_equal(alone.x[0], data.x[17].numpy())
    assert np.array_equal(alone.masks[0], data.masks[17].numpy())


def test_white_matter_placement():
    data = mri_lesions.generate(6, seed=1, placement="white_matter", size=128,
                                slices_per_subject=3, split_fractions=(1, 0, 0))
    spec = make_spec(seed=1, placement="white_matter", size=128, slices_per_subject=3)
    for i in range(6):
        if data.meta.placement_fallback[i]:
            continue
        position, k = spec.backgrounds.locate(i)
        bg = spec.backgrounds.render(position, k, np.random.default_rng([1, 6002, i]))
        assert bg.white_matter[data.masks[i].numpy() > 0].all()


def test_lesion_free_variant_is_the_same_background(data):
    free = mri_lesions.generate_lesion_free(N, seed=SEED, **PARAMS)
    assert free.classes == ["inferior", "superior"]
    assert float(free.masks.abs().sum()) == 0
    outside = data.masks == 0
    assert torch.equal(free.x[:, 0][outside], data.x[:, 0][outside])
    expected = (free.meta.slice_position >= 0.5).astype(int).to_numpy()
    np.testing.assert_array_equal(free.y.numpy(), expected)


@pytest.mark.parametrize("kwargs, words", [
    ({"w": 0}, "w must be in (0, 1]"),
    ({"w": 1.5}, "w must be in (0, 1]"),
    ({"size": 24, "field_of_view": "scale"}, "too small for the lesions"),
    ({"size": 24, "lesion_scale": 0.3}, "too small for the lesions"),
    ({"size": 40}, "too large"),
    ({"size": 96, "lesion_scale": 3.0}, "too large"),
    ({"field_of_view": "zoom"}, "field_of_view must be 'crop'"),
    ({"placement": "cortex"}, "placement"),
    ({"label": "sex"}, "demographics"),
    ({"slices_per_subject": 500}, "slices_per_subject"),
])
def test_bad_input_is_rejected_before_work(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("]", r"\]")):
        if "label" in kwargs:
            mri_lesions.generate_lesion_free(2, **kwargs)
        else:
            mri_lesions.generate(2, **{"size": 96, **kwargs})
