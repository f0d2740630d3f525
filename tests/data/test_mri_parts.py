"""MRI-lesion building blocks against slow literal versions: placement, splits, bank, scaling."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from salbench.data import mri_lesions
from salbench.data.dataset import SPLITS, split_of_position
from salbench.data.mri_lesions import LesionBankSpec, build_lesion_bank, lesion_bank, valid_corners


@settings(max_examples=60, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 9), st.integers(1, 9))),
       st.integers(1, 4), st.integers(1, 4))
def test_valid_corners_match_a_literal_box_check(allowed, h, w):
    expected = np.zeros_like(allowed)
    for r in range(allowed.shape[0] - h + 1):
        for c in range(allowed.shape[1] - w + 1):
            expected[r, c] = allowed[r:r + h, c:c + w].all()
    np.testing.assert_array_equal(valid_corners(allowed, h, w), expected)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=3, max_size=3), st.integers(1, 60))
def test_every_prefix_of_units_is_split_as_evenly_as_possible(weights, k):
    fractions = tuple(np.array(weights) / sum(weights))
    counts = np.bincount([SPLITS.index(split_of_position(p, fractions)) for p in range(k)],
                         minlength=3)
    assert np.all(np.abs(counts - np.array(fractions) * k) < 1 + 1e-9)


def test_bank_is_seeded_cached_and_follows_the_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("SALBENCH_CACHE", str(tmp_path))
    spec = LesionBankSpec(seed=7, per_type=4)
    built = build_lesion_bank(spec)
    cached = lesion_bank(spec)  # builds again and writes the cache file
    assert (tmp_path / f"lesion-bank-{spec.key()}.pkl").is_file()
    lesion_bank.cache_clear()
    reread = lesion_bank(spec)  # read back from the file
    for bank in (cached, reread):
        for name in ("regular", "irregular"):
            assert [les.patch.tobytes() for les in bank[name]] == \
                   [les.patch.tobytes() for les in built[name]]
    for les in built["regular"] + built["irregular"]:
        assert les.shape.sum() == 70
        assert les.patch.max() == 1 and les.patch[les.patch > 0].min() >= 0.2
        assert les.patch.shape == tuple(s + 4 for s in les.shape.shape)  # 2 px padding
    lesion_bank.cache_clear()


def test_lesions_scale_with_the_image_in_scale_mode():
    areas = {}
    for size in (128, 256):
        data = mri_lesions.generate(8, seed=2, size=size, slices_per_subject=2,
                                    field_of_view="scale")
        areas[size] = np.mean([a for row in data.meta.lesion_areas for a in row])
    assert areas[256] / areas[128] == pytest.approx(4, rel=0.15)


def test_pseudo_subjects_differ_and_keep_their_anatomy():
    planes = mri_lesions.make_spec(size=48, lesion_free=True).backgrounds.kept() + 72  # MNI z=0
    kept = len(planes)
    # the whole slice (a crop window can lie wholly inside the brain and hide its outline)
    source = mri_lesions.make_spec(size=48, lesion_free=True, slices_per_subject=kept,
                                   field_of_view="scale").backgrounds
    rng = np.random.default_rng
    np.testing.assert_array_equal(source.render(0, 1, rng(0)).image,
                                  source.render(0, 1, rng(0)).image)
    brains = {}
    for position in (0, 1):
        for k in range(kept):
            bg = source.render(position, k, rng(k))
            brains[position, bg.slice_index] = bg.brain
    assert len(brains) == 2 * kept  # every subject shows every kept slice once
    assert {z for _, z in brains} == {round(z) for z in planes}
    middle = round(planes[kept // 2])  # one template slice, two subjects: different outlines
    assert (brains[0, middle] != brains[1, middle]).mean() > 0.01


def test_the_mni152_volume_is_nilearn_s_template_mask_and_tissue_map():
    """Read from nilearn's packaged files without importing nilearn, equal to what its loaders
    give: the T1 and white-matter map divided by their max, the brain mask the T1 above 0.2."""
    from nilearn import datasets

    from salbench.data.backgrounds import mni_volume

    volume = mni_volume()
    template = datasets.load_mni152_template(resolution=1)
    np.testing.assert_array_equal(volume.t1, template.get_fdata().astype(np.float32))
    np.testing.assert_array_equal(volume.affine, template.affine)
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata()
    np.testing.assert_array_equal(volume.brain, (mask > 0.5).astype(np.float32))
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata()
    np.testing.assert_array_equal(volume.wm, wm.astype(np.float32))
    assert volume.brain.dtype == volume.t1.dtype == volume.wm.dtype == np.float32
