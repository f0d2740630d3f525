"""Meta-evaluation (``salbench meta``): on a hand-built model whose logit is driven by exactly the
masked pixels, the ground-truth mask beats the random map on the ground-truth metrics (trusted);
permutation-invariant map statistics cannot tell the mask from its shuffled copy (weak, for that
kind); lower-is-better scores are oriented; the agreement matrix is Spearman's ρ; the linear
reference's contribution map is exact (Captum's integrated gradients as the oracle), each
metric's good map on it is exact for that metric's own fill, and region perturbation and deletion
trust it; the command prints the table, writes its files and an HTML page with the
same table, and refuses bad arguments in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
import torch
from torch import nn
from typer.testing import CliRunner

from salbench.cli import app
from salbench.metrics import get_metric, score
from salbench.metrics.perturbation import BlurFill
from salbench.studies.meta import run_meta
from salbench.studies.meta.analysis import (
    agreement,
    discrimination,
    resilience,
    stability,
    trust_table,
)
from salbench.studies.meta.maps import (
    GOOD,
    INDEPENDENT,
    INVARIANT,
    KINDS,
    contributions,
    exact_map,
    fit_linear,
    make_maps,
    replacement,
    shuffled,
)

SIZE, N = 32, 13  # the last sample has no mask: skipped and counted
GROUND_TRUTH = ("top_k_precision", "relevance_mass_accuracy", "auroc")


def square_model() -> nn.Module:
    """Class c's logit = 50 × mean over pixels of ReLU(x_c − 0.5): only the bright square of
    channel c (0.9, on a background under 0.3) drives it, so the mask is truly what matters."""
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2)[:, :, None, None])
        model[0].bias.fill_(-0.5)
        model[4].weight.copy_(torch.eye(2) * 50)
        model[4].bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("meta")
    rng = np.random.default_rng(0)
    x = rng.random((N, 2, SIZE, SIZE)).astype(np.float32) * 0.3
    y = np.arange(N) % 2
    m = np.zeros((N, SIZE, SIZE), np.float32)
    for i in range(N - 1):
        r, c = rng.integers(0, SIZE - 10, 2)
        h, w = rng.integers(6, 10, 2)
        x[i, y[i], r:r + h, c:c + w] = 0.9
        m[i, r:r + h, c:c + w] = 1
    np.savez(root / "data.npz", x=x, y=y, masks=m)
    np.savez(root / "nomasks.npz", x=x, y=y)
    np.savez(root / "emptymasks.npz", x=x, y=y, masks=np.zeros_like(m))
    torch.save(square_model(), root / "model.pt")
    return root


@pytest.fixture(scope="module")
def result(user):
    return run_meta(user / "model.pt", user / "data.npz", seeds=2, n_samples=N, device="cpu")


def row(result, score: str) -> dict:
    table = result.trust.set_index("score")
    return table.loc[score].to_dict()


def test_the_ground_truth_beats_the_random_map_on_ground_truth_metrics(result):
    assert result.settings["n_samples"] == N - 1
    assert result.settings["skipped_samples_without_mask"] == 1
    for name in GROUND_TRUTH:
        r = row(result, name)
        assert r["effect:uniform_random"] > 0.8 and r["low:uniform_random"] > 0, (name, r)
        assert r["verdict"] == "trust", (name, r)
    # and a MoRF perturbation curve on this model agrees (lower AUC is better)
    flipping = row(result, "region_perturbation.auc [patch=4]")
    assert flipping["direction"] == "lower" and flipping["low:uniform_random"] > 0


def test_permutation_invariant_statistics_are_flagged_for_the_shuffled_mask(result):
    disc = discrimination(result.scores).set_index(["score", "kind"])
    for name in ("sparseness", "complexity"):
        r = row(result, name)
        assert r["effect:shuffled"] == 0 and r["low:shuffled"] <= 0 <= r["high:shuffled"]
        assert not disc.loc[(name, "shuffled"), "separated"]
        assert r["low:uniform_random"] > 0  # they do tell a sparse mask from dense noise
        assert r["verdict"] == "weak" and "shuffled" in r["reason"]
    # a map that is always finite cannot tell anything apart: flagged
    assert row(result, "finite")["verdict"] == "flagged"


def test_a_lower_is_better_metric_ranks_the_ground_truth_first(result):
    scores = result.scores[result.scores["score"] == "complexity"]
    assert set(scores["direction"]) == {"lower"}
    good = scores[scores["kind"] == GOOD]["value"].mean()
    noise = scores[scores["kind"] == "uniform_random"]["value"].mean()
    assert good < noise and row(result, "complexity")["effect:uniform_random"] == 1.0


def frame(good, other, direction, kind="uniform_random", seeds=(0,)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for i, (g, o) in enumerate(zip(good, other)):
            for k, v in ((GOOD, g), (kind, o), ("scaled", g), ("jitter", g)):
                rows.append({"metric": "m", "output": "m", "score": "m", "direction": direction,
                             "kind": k, "seed": seed, "sample_id": str(i), "value": v})
    return pd.DataFrame(rows)


def test_direction_decides_the_sign_of_the_effect_on_a_hand_made_frame():
    good, other = [0.1, 0.2, 0.3, 0.4, 0.5], [0.9, 0.8, 0.7, 0.6, 0.55]
    lower = discrimination(frame(good, other, "lower")).iloc[0]
    assert lower["effect"] == 1.0 and lower["share"] == 1.0 and lower["separated"]
    higher = trust_table(frame(good, other, "higher")).iloc[0]
    assert higher["effect:uniform_random"] == -1.0 and higher["verdict"] == "flagged"
    assert "ranks the random map above" in higher["reason"]
    ties = discrimination(frame(good, good, "higher")).iloc[0]
    assert ties["effect"] == 0 and ties["share"] == 0.5 and not ties["separated"]


def test_resilience_and_stability_on_a_hand_made_frame():
    scores = frame([1.0] * 4, [0.0] * 4, "higher", seeds=(0, 1))
    scaled = scores["kind"] == "scaled"
    scores.loc[scaled, "value"] = 0.75  # a change that should not matter moves it by gap / 4
    r = resilience(scores).iloc[0]
    assert r["gap"] == 1.0 and r["change"] == 0.25 and r["resilience"] == 0.75
    # seed 1: the degraded map wins on every sample -> per-seed effects +1 and -1
    flip = (scores["seed"] == 1) & (scores["kind"] == "uniform_random")
    scores.loc[flip, "value"] = 2.0
    s = stability(scores).iloc[0]
    assert s["n_seeds"] == 2 and s["seed_sd"] == pytest.approx(np.std([1, -1], ddof=1))


def test_the_agreement_matrix_is_spearmans_rho_over_the_maps(result):
    rho = agreement(result.scores)
    assert list(rho.index) == list(rho.columns)
    values = rho.to_numpy()
    finite = np.isfinite(values)
    np.testing.assert_allclose(values[finite], values.T[finite])
    assert (np.diag(values) == 1).all()
    wide = result.scores.pivot_table(index=["kind", "seed", "sample_id"], columns="score",
                                     values="value")
    lower = set(result.scores.loc[result.scores["direction"] == "lower", "score"])
    checked = 0
    for a, b in [("top_k_precision", "complexity"), ("auroc", "region_perturbation.auc "
                                                     "[patch=4]"), ("sparseness", "iou")]:
        sa = -wide[a] if a in lower else wide[a]
        sb = -wide[b] if b in lower else wide[b]
        pair = pd.concat([sa, sb], axis=1).dropna()
        expected = sps.spearmanr(pair.iloc[:, 0], pair.iloc[:, 1]).statistic
        assert rho.loc[a, b] == pytest.approx(expected) == pytest.approx(rho.loc[b, a])
        checked += 1
    assert checked == 3


def test_maps_are_seeded_and_shuffling_keeps_the_values():
    model = square_model()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 2, 8, 8, generator=g)
    m = (torch.rand(3, 8, 8, generator=g) > 0.7).float()
    y = torch.tensor([0, 1, 0])
    one, again = make_maps(model, x, y, m, 0), make_maps(model, x, y, m, 0)
    other = make_maps(model, x, y, m, 1)
    assert set(one) == set(KINDS)
    for kind in KINDS:
        assert one[kind].shape == (3, 2, 8, 8)
        torch.testing.assert_close(one[kind], again[kind])
    for kind in ("noise_1", "shuffled", "uniform_random", "jitter"):
        assert not torch.equal(one[kind], other[kind]), kind
    torch.testing.assert_close(one[GOOD][:, 0], m)
    mixed = shuffled(one[GOOD], 3)
    torch.testing.assert_close(mixed.flatten(1).sort(1).values, one[GOOD].flatten(1).sort(1).values)
    assert not torch.equal(mixed, one[GOOD])
    noise = one["noise_1"] - one[GOOD]
    ratio = noise[:, 0].flatten(1).std(1) / one[GOOD].flatten(1).std(1)
    assert ((ratio > 0.6) & (ratio < 1.4)).all()
    assert set(INVARIANT) <= set(one)


def test_the_linear_references_contributions_are_exact_and_integrated_gradients():
    """W_y ⊙ (x − b) sums to f_y(x) − f_y(b·1) (theory) and equals Captum's integrated gradients
    from the constant baseline b (the oracle; exact for a linear model); the fit is
    deterministic and learns the two-class square data."""
    from captum.attr import IntegratedGradients

    x, y = square_data()
    model, again = fit_linear(x, y, 2), fit_linear(x, y, 2)
    assert torch.equal(model[1].weight, again[1].weight)
    assert (model(x).argmax(1) == y).all()
    a = contributions(model, x, y)
    with torch.no_grad():
        logits, at_baseline = model(x), model(torch.full_like(x, 0.5))
    expected = logits.gather(1, y[:, None])[:, 0] - at_baseline.gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(a.flatten(1).sum(1), expected, rtol=1e-5, atol=1e-5)
    ig = IntegratedGradients(model).attribute(x, baselines=0.5, target=y, n_steps=8)
    torch.testing.assert_close(a, ig.float(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="Flatten"):
        contributions(square_model(), x, y)


def square_data(n: int = 12, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(n, 2, size, size, generator=g) * 0.3
    y = torch.arange(n) % 2
    for i in range(n):
        x[i, y[i], 2:5, 3:6] = 0.9
    return x, y


def test_each_metrics_exact_map_on_the_linear_model_is_exact_for_that_metric():
    """The replacement image of each removal metric is its own fill (deletion 0, selectivity the
    image minimum, IROF the channel mean, insertion its blurred start, AOPC's uniform noise by
    its mean); W_y ⊙ (x − r) sums to f_y(x) − f_y(r), what removing every pixel takes (theory);
    infidelity's W_y scores infidelity 0 and conservation's map conserves f_y(x) exactly
    (salbench's metrics); fills that depend on the removed set have no static replacement."""
    x, y = square_data()
    model = fit_linear(x, y, 2)

    def fill_of(name: str, **params) -> torch.Tensor:
        return replacement(name, get_metric(name).resolve(params))(x, None)

    torch.testing.assert_close(fill_of("deletion"), torch.zeros_like(x))
    torch.testing.assert_close(fill_of("selectivity"),
                               x.amin((1, 2, 3), keepdim=True).expand_as(x))
    torch.testing.assert_close(fill_of("irof"), x.mean((2, 3), keepdim=True).expand_as(x))
    torch.testing.assert_close(fill_of("insertion"), BlurFill(5.0, 11)(x, None))
    torch.testing.assert_close(fill_of("aopc", input_range=[0.0, 1.0]), torch.full_like(x, 0.5))
    assert replacement("road", get_metric("road").resolve({})) is None
    assert replacement("region_perturbation",
                       get_metric("region_perturbation").resolve({"fill": "inpaint-telea"})) is None
    with torch.no_grad():
        logit = model(x).gather(1, y[:, None])[:, 0]
        for name in ("deletion", "selectivity", "irof", "insertion", "region_perturbation"):
            params = get_metric(name).resolve({})
            a, how = exact_map(model, x, y, name, params)
            removed = model(replacement(name, params)(x, None)).gather(1, y[:, None])[:, 0]
            torch.testing.assert_close(a.flatten(1).sum(1), logit - removed,
                                       rtol=1e-5, atol=1e-5, msg=name)
            assert how.startswith("W_y ⊙ (x − r)"), how
    a, _ = exact_map(model, x, y, "infidelity", {})
    infidelity = score("infidelity", model=model, x=x, y=y, a=a, n_samples=10)
    assert infidelity.values["infidelity"].abs().max() < 1e-8
    a, _ = exact_map(model, x, y, "conservation", {})
    conservation = score("conservation", model=model, x=x, y=y, a=a)
    assert conservation.values["conservation_error"].max() < 1e-5


def test_the_linear_reference_judges_the_metrics_that_read_the_model(user, tmp_path):
    """On the linear reference the MoRF curve ranks the exact contributions above the random
    map (lower AUC), and so does deletion with its own good map (its black fill, not gray); a
    ground-truth metric is not judged there (its good map is the mask's); the tables and a
    second page section naming each metric's good map are written."""
    result = run_meta(user / "model.pt", user / "data.npz", seeds=2, n_samples=N,
                      metrics=["top_k_precision", "region_perturbation", "deletion"],
                      linear=True, out=tmp_path / "lin", device="cpu")
    linear = result.linear
    assert linear.settings["reference"] == "linear" and result.settings["reference"] == "mask"
    assert linear.settings["linear_train_accuracy"] == 1.0
    assert sorted(linear.trust["metric"]) == ["deletion", "region_perturbation"]
    assert "top_k_precision" in linear.skipped
    assert linear.settings["good_maps"] == {
        "region_perturbation": "W_y ⊙ (x − r), r = ConstantFill(value=0.5)",
        "deletion": "W_y ⊙ (x − r), r = ConstantFill(value=0.0)"}
    table = linear.trust.set_index("score")
    for name in ("region_perturbation.auc [patch=4]", "deletion [steps=log:16]"):
        assert table.loc[name, "effect:uniform_random"] > 0.8, name
        assert table.loc[name, "low:uniform_random"] > 0, name
        assert table.loc[name, "verdict"] == "trust", table.loc[name, "reason"]
    saved = pd.read_parquet(tmp_path / "lin" / "linear" / "trust.parquet")
    assert list(saved["score"]) == list(linear.trust["score"])
    page = (tmp_path / "lin" / "report" / "index.html").read_text()
    assert "On a linear reference model" in page and "r = ConstantFill(value=0.0)" in page
    shown = pd.read_csv(tmp_path / "lin" / "report" / "tables" / "trust-linear.csv")
    assert np.allclose(shown["δ random map"], linear.trust["effect:uniform_random"])
    assert json.loads((tmp_path / "lin" / "meta.json").read_text())["linear"]["trust"]
    # The two metrics scored different good maps: they agree or not on the maps both scored.
    both = linear.scores[linear.scores["kind"].isin(INDEPENDENT)]
    pd.testing.assert_frame_equal(linear.agreement, agreement(both))


def test_a_model_under_its_accuracy_gate_leaves_the_model_metrics_not_testable(user, tmp_path):
    """The square model with its class scores swapped misclassifies every sample: region
    perturbation (it reads the model) is not testable, top-k precision (it reads the mask) keeps
    its verdict, and the page says the model is under its gate; the same run with the gate at 0
    judges region perturbation."""
    swapped = square_model()
    with torch.no_grad():
        swapped[4].weight.copy_(swapped[4].weight.flip(0))
    torch.save(swapped, tmp_path / "swapped.pt")
    metrics = ["top_k_precision", "region_perturbation"]
    result = run_meta(tmp_path / "swapped.pt", user / "data.npz", seeds=1, n_samples=6,
                      metrics=metrics, out=tmp_path / "gated", device="cpu")
    assert result.settings["model_accuracy"] == 0.0 and result.settings["accuracy_gate"] == 0.8
    verdicts = result.trust.set_index("metric")["verdict"]
    assert verdicts["region_perturbation"] == "not testable"
    assert verdicts["top_k_precision"] == "trust"
    assert "under its accuracy gate" in (tmp_path / "gated" / "report" / "index.html").read_text()
    ungated = run_meta(tmp_path / "swapped.pt", user / "data.npz", seeds=1, n_samples=6,
                       metrics=metrics, accuracy_gate=0.0, device="cpu")
    assert ungated.trust.set_index("metric")["verdict"]["region_perturbation"] != "not testable"


def invoke(*args) -> object:
    return CliRunner().invoke(app, ["meta", *[str(a) for a in args]])


def test_the_command_prints_the_table_and_writes_its_files(user, tmp_path):
    out = tmp_path / "meta"
    done = invoke("--model", user / "model.pt", "--data", user / "data.npz", "--metrics",
                  "top_k_precision,sparseness,region_perturbation", "--seeds", 2,
                  "--n-samples", 6, "--out", out, "--device", "cpu")
    assert done.exit_code == 0, done.output
    assert "Which metrics to trust" in done.output and "Agreement" in done.output
    assert "region_perturbation.auc [patch=4]" in done.output  # not eaten as markup
    for name in ("scores.parquet", "trust.parquet", "discrimination.parquet",
                 "agreement.parquet", "meta.json"):
        assert (out / name).is_file(), name
    trust = pd.read_parquet(out / "trust.parquet").set_index("score")
    assert trust.loc["top_k_precision", "verdict"] == "trust"
    assert trust.loc["sparseness", "verdict"] == "weak"
    saved = json.loads((out / "meta.json").read_text())
    assert saved["n_samples"] == 6 and saved["seeds"] == [0, 1]
    assert len(saved["agreement"]["scores"]) == 3
    # the HTML page shows the same trust table: its CSV holds the verdicts and the effects
    page = (out / "report" / "index.html").read_text()
    shown = pd.read_csv(out / "report" / "tables" / "trust.csv").set_index("metric / output")
    assert shown.loc["sparseness", "verdict"] == "weak" and "sparseness" in page
    assert np.allclose(shown.loc[trust.index, "δ random map"],
                       trust["effect:uniform_random"])
    assert np.allclose(shown.loc[trust.index, "ms / map"], 1000 * trust["seconds_per_map"])
    assert "Spearman" in page and (out / "report" / "figures" / "agreement.svg").is_file()
    as_json = invoke("--model", user / "model.pt", "--data", user / "data.npz", "--metrics",
                     "iou", "--seeds", 1, "--n-samples", 4, "--out", tmp_path / "j", "--json",
                     "--device", "cpu")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["trust"][0]["score"] == "iou"


@pytest.mark.parametrize("args, expected", [
    (("--seeds", 0), "--seeds"),
    (("--n-samples", 0), "--n-samples"),
    (("--metrics", "nosuch"), "--metrics: unknown metric 'nosuch'"),
    (("--metrics", "max_sensitivity"), "--metrics: 'max_sensitivity' cannot score a given map"),
    (("--normalize", "zscore"), "--normalize"),
    (("--linear", "--metrics", "top_k_precision"), "--linear: none of --metrics reads the model"),
    (("--accuracy-gate", 1.5), "--accuracy-gate must be a number in [0, 1], got 1.5"),
])
def test_bad_arguments_are_one_line_errors_before_any_work(user, tmp_path, args, expected):
    out = tmp_path / "bad"
    done = invoke("--model", user / "model.pt", "--data", user / "data.npz", "--out", out,
                  "--device", "cpu", *args)
    assert done.exit_code == 2
    assert expected in done.output and len(done.output.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_inputs_name_the_argument(user, tmp_path):
    for args, expected in [(("--data", user / "nomasks.npz"), "--masks"),
                           (("--data", user / "emptymasks.npz"), "--masks"),  # all empty
                           (("--data", user / "missing"), "--data"),
                           (("--model", user / "missing.pt"), "--model")]:
        given = {"--model": user / "model.pt", "--data": user / "data.npz"}
        given[args[0]] = args[1]
        done = invoke(*[v for kv in given.items() for v in kv], "--out", tmp_path / "x",
                      "--device", "cpu")
        assert done.exit_code == 2 and expected in done.output, done.output
        assert len(done.output.strip().splitlines()) == 1


def test_a_library_call_leaves_the_callers_random_state_as_it_was(user):
    import random

    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = (random.random(), np.random.random(), torch.rand(1))
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    run_meta(user / "model.pt", user / "data.npz", seeds=1, n_samples=2, device="cpu",
             metrics=["top_k_precision"])
    assert (random.random(), np.random.random()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
