"""Study ``pretraining`` (document 000): the grid's rows, fine-tuning direction, model selection,
the correctly-classified intersection, null-model theory and the report section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from salbench.config import ConfigError
from salbench.models.checkpoints import load as load_checkpoint
from salbench.results import ResultStore, read_results
from salbench.runtime import set_quiet
from salbench.studies import pretraining as P
from salbench.studies.base import run_study
from salbench.studies.common import checkpoint_path

METHODS = ("[{name: saliency, absolute: true}, {name: input_x_gradient, absolute: true}, "
           "{name: lrp_epsilon, params: {epsilon: 1.0e-9}, absolute: true, label: lrp}, "
           "{name: deeplift, params: {baseline: zero}, absolute: true}]")
SHRUNK = ["data.n=96", "corpus.n=48", "natural_n=48", "degrees=[1conv,all]", "seeds=[0]",
          "pretrain.epochs=1", "finetune.epochs=1", "n_explain=3", f"methods={METHODS}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, P.PretrainingConfig]:
    set_quiet(True)
    cfg = P.STUDY.config("tiny", SHRUNK)
    out = tmp_path_factory.mktemp("pretraining") / "run"
    summaries = run_study(P.STUDY, cfg, out, device="cpu")
    failed = {name: s.failed for name, s in summaries.items() if s.failed}
    assert not failed, failed
    return out, cfg


def test_every_selected_model_method_and_baseline_has_scores(run):
    out, cfg = run
    rows = read_results(out)
    precision = rows[rows.metric == P.METRIC]
    chosen, _ = P.explain_plan(out, cfg)
    methods = {m.key for m in cfg.methods}
    assert set(chosen.model_id) == set(P.finetune_grid(cfg).model_id)  # one seed: all selected
    for model_id in chosen.model_id:
        part = precision[precision.model_id == model_id]
        assert set(part.method) == methods
        assert (part.groupby("method").size() == cfg.n_explain).all()
    null = precision[precision.model_id == P.RANDOM_MODEL_ID]
    assert set(null.method) == methods | {"sobel", "laplace"}
    assert precision.value.between(0, 1).all()
    # every explain job scored the same test images (section 4.2: one common sample set)
    assert precision.groupby("model_id").sample_id.apply(frozenset).nunique() == 1


def test_fine_tuning_degree_trains_blocks_from_the_output_side(run):
    """1conv keeps blocks 1-4 of the pre-trained model and changes block 5 (NOTES.md)."""
    out, cfg = run
    lr = f"{cfg.learning_rates[0]:g}"
    pre, _ = load_checkpoint(checkpoint_path(out, P.pretrain_id("within-domain")))
    one, _ = load_checkpoint(checkpoint_path(out, f"ft-within-domain-1conv-s0-lr{lr}"))
    everything, _ = load_checkpoint(checkpoint_path(out, f"ft-within-domain-all-s0-lr{lr}"))
    pre_w, one_w, all_w = (dict(m.named_parameters()) for m in (pre, one, everything))
    first, last = "features.0.weight", "features.28.weight"  # block 1 and block 5 convolutions
    assert torch.equal(one_w[first], pre_w[first])
    assert torch.equal(one_w["features.21.weight"], pre_w["features.21.weight"])  # block 4
    assert not torch.equal(one_w[last], pre_w[last])
    assert not torch.equal(all_w[first], pre_w[first])


def test_null_model_deeplift_lrp_and_input_x_gradient_agree(run):
    """On the untrained model (zero biases, ReLU, max-pooling) DeepLIFT with a zero baseline,
    LRP-0 and input×gradient give the same map, hence the same top-n precision."""
    out, _ = run
    rows = read_results(out)
    null = rows[(rows.model_id == P.RANDOM_MODEL_ID) & (rows.metric == P.METRIC)]
    wide = null.pivot_table(index="sample_id", columns="method", values="value")
    assert np.allclose(wide["deeplift"], wide["input_x_gradient"], atol=1e-6)
    assert np.allclose(wide["lrp"], wide["input_x_gradient"], atol=1e-6)


def test_selection_best_and_accuracy_matched_hand_case():
    cfg = P.PretrainingConfig.parse({"best_k": 2, "matched_k": 1, "matched_target": 0.9})
    table = pd.DataFrame({"model_id": list("abcdef"), "corpus": ["within-domain"] * 3
                          + ["out-of-domain"] * 3, "degree": "all",
                          "accuracy": [0.95, 0.88, 0.70, 0.99, 0.91, 0.60]})
    chosen = P.selections(table, cfg)
    best = chosen[chosen.selection == "best"]
    matched = chosen[chosen.selection == "matched"]
    assert sorted(best.model_id) == ["a", "b", "d", "e"]
    assert sorted(matched.model_id) == ["b", "e"]  # |0.88-0.9| < |0.95-0.9|; 0.91 closest


def test_correct_intersection_and_fallback(tmp_path):
    store = ResultStore(tmp_path)
    rows = [{"study": P.NAME, "run": "r", "dataset": "d", "model_id": m, "method": "model",
             "metric": "correct",
             "sample_id": s, "value": v, "params": {}, "meta": {}}
            for m, values in (("a", (1, 1, 0)), ("b", (1, 0, 1))) for s, v in zip("xyz", values)]
    store.write_rows("job", pd.DataFrame(rows))
    assert P.correct_intersection(tmp_path, ["a", "b"]) == {"x"}
    assert P.correct_intersection(tmp_path, ["a"]) == {"x", "y"}


def test_report_section_has_figures_3_4_8_10_and_table_1(run):
    out, cfg = run
    section = P.report_section(out)
    names = {f.name for f in section.figures}
    assert {"pretraining-fig3", "pretraining-fig8"} <= names
    for method in cfg.methods:
        assert f"pretraining-fig4-{method.key}" in names
        assert f"pretraining-fig10-{method.key}" in names
    tables = {t.name: t.data for t in section.tables}
    table1 = tables["pretraining-table1"]
    assert len(table1) == len(cfg.corpora) * len(cfg.degrees)
    accuracy = read_results(out).query("metric == 'accuracy' and method == 'model'")
    for row in table1.itertuples():
        model_id = f"ft-{row.corpus}-{row.degree}-s0-lr{cfg.learning_rates[0]:g}"
        expected = accuracy.loc[accuracy.model_id == model_id, "value"].item()
        assert row._5 == pytest.approx(expected)  # "mean accuracy" of the one matched model
    assert list(tables["pretraining-fig8"].index) == list(cfg.corpora)


def test_rerun_skips_every_job_and_keeps_the_rows(run):
    out, cfg = run
    before = read_results(out).drop(columns="run")
    summaries = run_study(P.STUDY, cfg, out, device="cpu")
    assert all(not s.done and not s.failed for s in summaries.values())
    after = read_results(out).drop(columns="run")
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))


def test_config_rejects_unknown_degree_and_empty_seeds():
    with pytest.raises(ConfigError, match="degrees"):
        P.STUDY.config("tiny", ["degrees=[5conv]"])
    with pytest.raises(ConfigError, match="seeds"):
        P.STUDY.config("tiny", ["seeds=[]"])


@pytest.mark.slow
def test_tiny_preset_runs_end_to_end(tmp_path):
    set_quiet(True)
    cfg = P.STUDY.config("tiny")
    summaries = run_study(P.STUDY, cfg, tmp_path / "run", device="cpu")
    assert not any(s.failed for s in summaries.values())
    section = P.report_section(tmp_path / "run")
    assert any(f.name == "pretraining-fig3" for f in section.figures)


def test_paper_preset_is_the_documents_grid():
    """Section 3: 2 corpora × 5 degrees × 15 seeds at table 1's learning rates; section 2.4's
    eight methods with zero baselines and absolute maps; appendix D's 2500 test images."""
    cfg = P.STUDY.config("paper")
    grid = P.finetune_grid(cfg)
    assert len(grid) == 2 * 5 * 15
    lrs = grid.groupby(["corpus", "degree"]).lr.unique().map(list).to_dict()
    assert lrs[("within-domain", "1conv")] == [0.038]
    assert lrs[("out-of-domain", "all")] == [0.004]
    assert [m.key for m in cfg.methods] == [
        "integrated_gradients", "gradient_shap", "lrp", "deeplift", "saliency", "deconvolution",
        "guided_backprop", "input_x_gradient"]
    assert all(m.absolute for m in cfg.methods)
    assert cfg.model.width == 1.0 and cfg.data.size == 270 and cfg.n_explain == 2500
    stages = P.stages(cfg)
    assert [s.name for s in stages] == ["data", "pretrain", "finetune", "explain"]
    assert len(stages[2].expand(Path("unused"))) == 150
    for preset in ("tiny", "small"):
        P.STUDY.config(preset)  # every preset validates
