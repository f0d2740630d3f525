"""Study ``gad`` (document 004): rows for every model × method × output, RC ≤ 1 (GAD adds no
important pixel), RS against its definition, tables 1-2 and figures 5-6."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from salbench.config import ConfigError
from salbench.explain import explain
from salbench.metrics import hull_mask
from salbench.results import read_results
from salbench.runtime import set_quiet
from salbench.studies import gad as G
from salbench.studies.base import run_study
from salbench.studies.common import load_dataset, load_model

SHRUNK = ["data.n=64", "train.epochs=1", "alphas=[0,8]", "support.epochs=1", "n_per_class=2",
          "gallery=1", "methods=[{name: saliency, label: S}, {name: guided_backprop, label: GB}]"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, G.GADConfig]:
    set_quiet(True)
    cfg = G.STUDY.config("tiny", SHRUNK)
    out = tmp_path_factory.mktemp("gad") / "run"
    summaries = run_study(G.STUDY, cfg, out, device="cpu")
    failed = {name: s.failed for name, s in summaries.items() if s.failed}
    assert not failed, failed
    return out, cfg


def test_rows_for_every_model_method_output_and_metric(run):
    out, cfg = run
    rows = read_results(out)
    rows = rows[rows.metric.isin(G.METRICS)]
    roles = rows.params.map(lambda p: json.loads(p).get("role"))
    n_images = 2 * cfg.n_per_class
    for spec in cfg.models:
        for method in cfg.methods:
            for role in (1, 2):
                part = rows[(rows.model_id == G.model_id(spec)) & (rows.method == method.key)
                            & (roles == role)]
                assert (part.metric == "complexity_ratio").sum() == n_images
                assert (part.metric == "occlusion_sensitivity_gad").sum() <= n_images
    assert (rows.value >= 0).all()


def test_gad_never_enlarges_the_important_region(run):
    """Section 4: GAD keeps only features important in the original map, so on one-channel
    images its hull lies inside the original's: RC <= 1 for every image, method and output."""
    out, _ = run
    rows = read_results(out)
    rc = rows[rows.metric == "complexity_ratio"].value
    assert len(rc) and (rc <= 1 + 1e-12).all()


def test_occlusion_sensitivity_matches_its_definition(run):
    """RS(I, M_GAD, a) of one image recomputed literally from eq. 2 with the stored supports."""
    out, cfg = run
    spec, method = cfg.models[1], cfg.methods[0]
    model = load_model(out, G.model_id(spec), "cpu")
    dataset = load_dataset(out, cfg.data)
    samples = G._pair_samples(dataset, cfg.classes, cfg.n_per_class)
    train = dataset.split("train")
    from salbench.explain import fit_gad

    support = fit_gad(model, (train.x, train.y), cfg.classes, alphas=cfg.alphas,
                      config=G.support_training(model, cfg),
                      cache_dir=G.support_dir(out, G.model_id(spec)))
    x, a = samples.x[:1], cfg.classes[0]
    gad = explain(model, x, torch.tensor([a]), "gad", support=support, base=method.name,
                  importance=cfg.importance, threshold=cfg.threshold)
    m = hull_mask(gad, keep=cfg.keep)[0]
    with torch.no_grad():
        before = model(x)[0, a].item()
        after = model(x * (1 - m))[0, a].item()
    expected = abs(before - after) / m.sum().item()
    rows = read_results(out)
    sid = samples.meta["sample_id"].astype(str).iloc[0]
    stored = rows[(rows.model_id == G.model_id(spec)) & (rows.method == method.key)
                  & (rows.metric == "occlusion_sensitivity_gad") & (rows.sample_id == sid)
                  & (rows.params.map(lambda p: json.loads(p).get("role")) == 1)]
    assert stored.value.item() == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_supports_are_cached_one_per_alpha(run):
    out, cfg = run
    for spec in cfg.models:
        files = list(G.support_dir(out, G.model_id(spec)).glob("*.safetensors"))
        assert len(files) == len(cfg.alphas)


def test_tables_1_and_2_and_figures_5_and_6(run):
    out, cfg = run
    section = G.report_section(out)
    tables = {t.name: t.data for t in section.tables}
    table1, table2 = tables["gad-table1"], tables["gad-table2"]
    keys = [m.key for m in cfg.methods]
    assert list(table1.columns) == keys and list(table2.columns) == keys
    for spec in cfg.models:
        model = G.model_id(spec)
        for role in (1, 2):
            total = table1.loc[(model, f"Orig.{role}")] + table1.loc[(model, f"GAD {role} (ours)")]
            assert (total == 2 * cfg.n_per_class).all()
        assert np.isfinite(table2.loc[(model, "GAD 1 (ours)")].to_numpy(float)).all()
    names = {f.name for f in section.figures}
    for spec in cfg.models:
        assert {f"gad-fig5-{G.model_id(spec)}", f"gad-fig6-{G.model_id(spec)}"} <= names


def test_config_rejects_a_pair_of_one_class():
    with pytest.raises(ConfigError, match="classes"):
        G.STUDY.config("tiny", ["classes=[1,1]"])


@pytest.mark.slow
def test_tiny_preset_runs_end_to_end(tmp_path):
    set_quiet(True)
    summaries = run_study(G.STUDY, G.STUDY.config("tiny"), tmp_path / "run", device="cpu")
    assert not any(s.failed for s in summaries.values())
    assert G.report_section(tmp_path / "run").tables


def test_config_rejects_an_unknown_training_key_before_running():
    with pytest.raises(ConfigError, match="support"):
        G.STUDY.config("tiny", ["support.epoch=3"])


def test_runs_on_a_user_image_folder(tmp_path):
    """Document 004 used cats-vs-dogs photographs: the same study on an ImageFolder layout."""
    import cv2

    set_quiet(True)
    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(20):
            img = (rng.random((40, 40, 3)) * 80).astype(np.uint8)
            cv2.circle(img, (20, 20), 8 + 6 * c, (255, 255, 255), -1)
            cv2.imwrite(str(tmp_path / "photos" / name / f"{i}.png"), img)
    root = tmp_path / "photos"
    cfg = G.STUDY.config("tiny", [
        f"data={{kind: folder, n: 1, size: 64, params: {{root: '{root}'}}}}", "train.epochs=1",
        "alphas=[0,8]", "support.epochs=1", "n_per_class=2", "gallery=1",
        "methods=[{name: saliency, label: S}]", "models=[{arch: resnet18, width: 0.125}]"])
    summaries = run_study(G.STUDY, cfg, tmp_path / "run", device="cpu")
    assert not any(s.failed for s in summaries.values())
    table1 = G.report_section(tmp_path / "run").tables[0].data
    model = G.model_id(cfg.models[0])
    for role in (1, 2):
        assert table1.loc[(model, f"Orig.{role}"), "S"] + \
            table1.loc[(model, f"GAD {role} (ours)"), "S"] == 4


def test_paper_preset_is_the_documents_setting():
    """Section 6: VGG16 and ResNet18, α = 0, 2, 4, 6, 8, supports by Adam lr 4e-5 for 10 epochs,
    512 images (256 per class), hulls of the most important half of the pixels."""
    cfg = G.STUDY.config("paper")
    assert [m.arch for m in cfg.models] == ["vgg16", "resnet18"]
    assert all(m.width == 1.0 for m in cfg.models)
    assert cfg.alphas == [0, 2, 4, 6, 8] and cfg.n_per_class == 256 and cfg.keep == 0.5
    support = G.support_training(torch.nn.Linear(1, 1), cfg)
    assert (support.optimizer, support.lr, support.epochs, support.loss) == ("adam", 4e-5, 10,
                                                                            "mse")
    assert [m.key for m in cfg.methods] == ["S", "D", "GxI", "GB", "IG"]
    for preset in ("tiny", "small"):
        G.STUDY.config(preset)
