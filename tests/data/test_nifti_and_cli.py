"""NIfTI-folder backgrounds (split by subject, sex labels) and the `salbench data` commands."""

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from salbench.cli.data import app
from salbench.data import load, mri_lesions


def ellipsoid_volume(seed, shape=(48, 56, 40)):
    grid = np.indices(shape).astype(np.float32)
    centre = (np.array(shape) - 1) / 2
    radii = np.array([20, 25, 18]) * (1 + 0.05 * seed)
    inside = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) < 1
    rng = np.random.default_rng(seed)
    return (inside * (0.5 + 0.5 * rng.random(shape))).astype(np.float32)


@pytest.fixture
def nifti_folder(tmp_path):
    folder = tmp_path / "ixi"
    folder.mkdir()
    for k in range(5):
        nib.save(nib.Nifti1Image(ellipsoid_volume(k), np.eye(4)), folder / f"sub{k}.nii.gz")
    (folder / "broken.nii").write_bytes(b"nope")
    (tmp_path / "demo.csv").write_text(
        "subject,sex\n" + "\n".join(f"sub{k},{'MF'[k % 2]}" for k in range(5)))
    return folder


def test_nifti_backgrounds_sex_labels_and_subject_splits(nifti_folder):
    demo = nifti_folder.parent / "demo.csv"
    data = mri_lesions.generate_lesion_free(90, label="sex", size=64, backgrounds=nifti_folder,
                                            demographics=demo, fov_mm=55.0)
    assert data.classes == ["female", "male"]
    sex = {f"sub{k}": "MF"[k % 2] for k in range(5)}
    expected = [int(sex[s] == "M") for s in data.meta.subject]
    assert data.y.tolist() == expected
    groups = data.meta.groupby("subject").split.nunique()
    assert (groups == 1).all() and data.meta.subject.nunique() == 5
    assert data.params["backgrounds"]["subjects"] == 5
    lesions = mri_lesions.generate(6, size=64, backgrounds=nifti_folder, fov_mm=55.0,
                                   split_fractions=(1, 0, 0))
    assert (lesions.masks.sum((1, 2)) > 0).all()


def test_nifti_errors(tmp_path, nifti_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.nii").write_bytes(b"zz")
    with pytest.raises(ValueError, match="no readable 3-D NIfTI volume"):
        mri_lesions.generate(2, size=64, backgrounds=empty)
    with pytest.raises(ValueError, match="white_matter"):
        mri_lesions.generate(2, size=64, backgrounds=nifti_folder, fov_mm=55.0,
                             placement="white_matter")


def test_cli_generates_previews_and_reports_bad_input(tmp_path):
    runner = CliRunner()
    for command in ("mri-lesions", "cells", "preview"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example: salbench data" in result.output
    out = tmp_path / "mri"
    result = runner.invoke(app, ["mri-lesions", "--n", "4", "--out", str(out), "--size", "64",
                                 "--slices-per-subject", "1", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert len(load(out)) == 4
    result = runner.invoke(app, ["preview", str(out), "--count", "4"])
    assert result.exit_code == 0 and (out / "preview.png").stat().st_size > 1000
    result = runner.invoke(app, ["mri-lesions", "--n", "4", "--out", str(tmp_path / "bad"),
                                 "--w", "2"])
    assert result.exit_code == 2 and "w must be in (0, 1]" in result.output
