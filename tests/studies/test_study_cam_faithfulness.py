"""The cam-faithfulness study (document 003): table 1's propositions measured on real models,
the job grid's rows, the metrics' properties and the report section."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from salbench.models import build, make_explainable, to_conv_flatten_fc, to_gap_fc
from salbench.results import read_results
from salbench.runtime import set_quiet
from salbench.studies import cam_faithfulness as cf
from salbench.studies.base import run_study

TOL = 1e-5  # float64 sums of float32 maps: an identity holds
NONZERO = 1e-4  # an identity fails (10 × the study's default tolerance)


def _model(arch: str, form: str, bias_std: float = 0.1, size: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(arch, num_classes=4, input_size=size, width=0.0625)
    if form == "conv_flatten_fc":
        model = to_conv_flatten_fc(model)
    elif form == "gap_fc":
        model = to_gap_fc(model)
    model = make_explainable(model)
    cf.randomise_biases(model, bias_std, seed=1)
    return model.eval()


def _errors(arch: str, form: str, bias_std: float = 0.1) -> dict:
    model = _model(arch, form, bias_std)
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    layers = cf.cam_layers(model)
    errors = cf.faithfulness_errors(model, x, layers, cam=form == "gap_fc")
    return {k: v for k, v in errors.items() if k[0] != "feature_size"}


# ---------------------------------------------------------------- table 1 on untrained models

@pytest.mark.parametrize("arch", ["vgg19", "resnet34", "resnet50"])
def test_flatten_head_only_hirescam_sums_to_the_class_score(arch):
    """Proposition 4 / eq. 20: on Conv–Flatten–FC at the last layer Σ HiResCAM = s − b; Grad-CAM
    neither sums to it nor equals HiResCAM."""
    e = _errors(arch, "conv_flatten_fc")
    assert e["HiResCAM", "last", "contribution_error"].max() < TOL
    assert e["Grad-CAM", "last", "contribution_error"].min() > NONZERO
    assert e["Grad-CAM", "last", "distance_to_hirescam"].min() > NONZERO
    assert e["HiResCAM", "earlier", "contribution_error"].min() > NONZERO


@pytest.mark.parametrize("arch", ["vgg19", "resnet34", "resnet50"])
def test_gap_head_gradcam_equals_hirescam_equals_cam(arch):
    """Propositions 1–3: on Conv–GAP–FC at the last layer Grad-CAM = HiResCAM = CAM/(D1 D2) and
    all sum to s − b; one block earlier they differ and none does."""
    e = _errors(arch, "gap_fc")
    for key in [("Grad-CAM", "last", "distance_to_hirescam"),
                ("Grad-CAM", "last", "contribution_error"),
                ("HiResCAM", "last", "contribution_error"),
                ("CAM", "last", "distance_to_hirescam"), ("CAM", "last", "contribution_error")]:
        assert e[key].max() < TOL, key
    assert e["Grad-CAM", "earlier", "distance_to_hirescam"].min() > NONZERO
    assert e["HiResCAM", "earlier", "contribution_error"].min() > NONZERO


def test_resnet_last_conv2d_is_not_the_faithful_layer():
    """Inside a ResNet's last block the residual sum (and ResNet-34's ReLU) follows the last
    Conv2d, so no map there sums to s − b: 'last conv layer' must mean the block output."""
    for arch in ("resnet34", "resnet50"):
        for form in ("conv_flatten_fc", "gap_fc"):
            e = _errors(arch, form)
            assert e["HiResCAM", "last_conv2d", "contribution_error"].min() > NONZERO, (arch, form)
    # ResNet-50 GAP: no ReLU after conv3 + identity, so the gradient is still spatially constant
    # and Grad-CAM equals HiResCAM there although neither contributes.
    e = _errors("resnet50", "gap_fc")
    assert e["Grad-CAM", "last_conv2d", "distance_to_hirescam"].max() < TOL


def test_dense_head_none_contributes_unless_bias_free():
    """Table 1's Dense row; with zero biases a ReLU network is positively homogeneous and
    gradient ⊙ activation sums to the logit at any layer (Euler), which is why the Dense row
    models get random biases."""
    e = _errors("vgg19", "torchvision", bias_std=0.1)
    for method in ("Grad-CAM", "HiResCAM"):
        assert e[method, "last", "contribution_error"].min() > NONZERO
    e = _errors("vgg19", "torchvision", bias_std=0.0)
    assert e["HiResCAM", "last", "contribution_error"].max() < TOL
    assert e["HiResCAM", "earlier", "contribution_error"].max() < TOL


def test_error_measures_against_hand_computed_cases():
    raw = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]])
    assert cf.contribution_error(raw, torch.tensor([2.5])).item() == 0.0
    # |2.5 - 0.5| / (6.5 + 0.5)
    assert math.isclose(cf.contribution_error(raw, torch.tensor([0.5])).item(), 2 / 7, rel_tol=1e-6)
    other = raw.clone()
    other[0, 0, 0, 0] = 2.0
    assert math.isclose(cf.relative_l1(raw, other).item(), 1 / 14, rel_tol=1e-6)
    assert cf.relative_l1(raw, raw).item() == 0.0


def test_layer_names_and_scaling():
    assert cf.layer_name("vgg19", "conv_flatten_fc", "last") == "features.34"
    assert cf.layer_name("vgg19", "conv_flatten_fc", "earlier") == "features.25"
    assert cf.layer_name("vgg19", "gap_fc", "last_conv2d") == "features.34"
    assert cf.layer_name("resnet34", "gap_fc", "last") == "layer4"
    assert cf.layer_name("resnet34", "conv_flatten_fc", "last_conv2d") == "layer4.2.conv2"
    assert [cf.heatmap_label(r) for r in (56, 28, 21, 16)] == ["4x4", "8x8", "11x11", "14x14"]
    assert [cf.scaled_region(r, 224) for r in (56, 28, 21, 16)] == [56, 28, 21, 16]
    assert [cf.scaled_region(r, 64) for r in (56, 28, 21, 16)] == [16, 8, 6, 5]
    assert cf.applied_radius(0.5, (0.0, 1.0)) == 0.25
    assert cf.applied_radius(0.5, (-1.0, 1.0)) == 0.5


def test_bad_config_is_refused_before_work():
    from salbench.config import ConfigError

    with pytest.raises(ConfigError, match="input_range"):
        cf.stages(cf.STUDY.config("tiny", ["input_range=[1, 0]"]))
    with pytest.raises(ConfigError, match="sensitivity"):
        cf.stages(cf.STUDY.config("tiny", ["sensitivity=[[0, 3]]"]))


# ---------------------------------------------------------------- a shrunken tiny run

SHRUNK = [
    "archs=[resnet34]", "data.n=192", "data.params.shard_size=4", "train.epochs=1",
    "n_samples=2", "n_haas=8", "sensitivity=[[0.05, 1], [0.5, 1]]", "aopc_regions=[56, 28]",
    "table1.n_samples=2", "gallery=1",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    set_quiet(True)
    run_dir = tmp_path_factory.mktemp("cam")
    config = cf.STUDY.config("tiny", SHRUNK)
    summaries = run_study(cf.STUDY, config, run_dir, device="cpu")
    assert all(not s.failed for s in summaries.values()), summaries
    results = read_results(run_dir)
    return run_dir, config, results[results.study == cf.NAME]


def test_rows_for_every_model_method_metric(run):
    _, config, results = run
    scored = results[results.method.isin(["Grad-CAM", "HiResCAM"])
                     & ~results.metric.str.startswith("table1/")
                     & ~results.sample_id.str.startswith("point:")]
    models = {"resnet34-flatten", "resnet34-gap"}
    assert set(scored.model_id) == models
    metrics = {"aopc/4x4", "aopc/8x8", "max_sensitivity/r0.05", "max_sensitivity/r0.5",
               "haas/correct_x", "haas/correct_ha"}
    for mid in models:
        for method in ("Grad-CAM", "HiResCAM"):
            part = scored[(scored.model_id == mid) & (scored.method == method)]
            assert set(part.metric) == metrics, (mid, method)
            assert (part[part.metric.str.startswith("haas/")].groupby("metric").size()
                    == config.n_haas).all()
    aopc = scored[scored.metric.str.startswith("aopc/")].value
    assert ((aopc >= -1) & (aopc <= 1)).all()
    sens = scored[scored.metric.str.startswith("max_sensitivity/")].value
    # maps min-max scaled to [0, 1]: distances are at most the Frobenius norm of a 64×64 all-ones map
    assert ((sens >= 0) & (sens <= 64)).all()
    haas = scored[scored.metric.str.startswith("haas/")].value
    assert set(haas.unique()) <= {0.0, 1.0}
    model_rows = results[(results.method == "model") & (results.sample_id == "all")]
    assert {"balanced_accuracy", "mean_auc"} <= set(model_rows.metric)


def test_gap_models_score_gradcam_and_hirescam_alike(run):
    """Grad-CAM = HiResCAM on the GAP head at the last layer (proposition 2 = 3), so every metric
    gives both methods the same value (same noise seeds)."""
    _, _, results = run
    rows = results[(results.model_id == "resnet34-gap")
                   & results.method.isin(["Grad-CAM", "HiResCAM"])
                   & ~results.metric.str.startswith("table1/")]
    wide = rows.pivot_table(index=["metric", "sample_id"], columns="method", values="value")
    assert len(wide) > 0
    np.testing.assert_allclose(wide["Grad-CAM"], wide["HiResCAM"], atol=1e-4)


def test_measured_table_1_agrees_with_the_document(run):
    _, config, results = run
    table = cf.table_1(results, config.table1.tolerance)
    checked = table[table.agrees != "—"]
    assert len(checked) == 6  # flatten, gap, dense × last, earlier
    assert (checked.agrees == "yes").all(), checked[["model", "layer", "measured"]]


def test_report_section_has_every_table_and_figure(run):
    run_dir, _, _ = run
    section = cf.report_section(run_dir)
    names = {t.name for t in section.tables} | {f.name for f in section.figures}
    expected = {f"cam-table{k}" for k in (1, 3, 4, 5, 6, 7, 10)}
    expected |= {f"cam-fig{k}" for k in (14, 15, 16, 17, 18)}
    assert expected <= names
    summary = next(t.data for t in section.tables if t.name == "cam-table10")
    assert summary["balanced accuracy"].between(0, 1).all()
    assert "HiResCAM has the lower mean max-sensitivity" in section.text


def test_rerun_skips_every_job(run):
    run_dir, config, results = run
    summaries = run_study(cf.STUDY, config, run_dir, device="cpu")
    assert all(len(s.done) == 0 and not s.failed for s in summaries.values())
    again = read_results(run_dir)
    assert len(again[again.study == cf.NAME]) == len(results)


@pytest.mark.slow
def test_full_tiny_preset(tmp_path):
    set_quiet(True)
    config = cf.STUDY.config("tiny")
    summaries = run_study(cf.STUDY, config, tmp_path, device="cpu")
    assert all(not s.failed for s in summaries.values()), summaries
    results = read_results(tmp_path)
    table = cf.table_1(results[results.study == cf.NAME], config.table1.tolerance)
    assert (table[table.agrees != "—"].agrees == "yes").all()
    assert len(cf.report_section(tmp_path).figures) >= 5


def test_folder_data_is_read_into_the_run(tmp_path):
    """A user's CRC/HAM10000-style folder (root/<class>/<image>) becomes the run's dataset."""
    import cv2

    from salbench.runtime import JobContext
    from salbench.studies.common import data_job, load_dataset

    rng = np.random.default_rng(0)
    for name in ("ADI", "TUM"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(10):
            cv2.imwrite(str(tmp_path / "images" / name / f"{i}.png"),
                        rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    config = cf.STUDY.config("tiny", [f"folder={{root: {tmp_path / 'images'}, size: 32}}"])
    spec = cf.data_spec(config)
    run_dir = tmp_path / "run"
    data_job({"data": spec.model_dump(), "seed": 0},
             JobContext(run_dir=run_dir, device="cpu", seed=0, key="k"))
    dataset = load_dataset(run_dir, spec)
    assert dataset.classes == ["ADI", "TUM"]
    assert tuple(dataset.x.shape) == (20, 3, 32, 32)
    assert float(dataset.x.min()) >= 0 and float(dataset.x.max()) <= 1
    assert spec.kind == "folder" and cf.stages(config)[0].jobs[0].fn.endswith("common:data_job")


def test_train_jobs_use_per_arch_settings_and_skip_normal_classes(run):
    """Table 3 trains each model with its own settings; early stopping monitors every class but
    the 'normal' one (NoCell, like the Covid-19 data's Normal class)."""
    run_dir, _, _ = run
    config = cf.STUDY.config("tiny", SHRUNK + ["archs=[resnet34, vgg19]",
                                               "train_per_arch={vgg19: {lr: 0.0001}}"])
    jobs = cf.stages(config)[1].expand(run_dir)
    lrs = {job.config["model_id"]: job.config["train"]["lr"] for job in jobs}
    assert lrs == {"resnet34-flatten": 3e-3, "resnet34-gap": 3e-3, "vgg19-flatten": 1e-4,
                   "vgg19-gap": 1e-4}
    assert all(job.config["train"]["monitored_classes"] == list(range(9)) for job in jobs)
