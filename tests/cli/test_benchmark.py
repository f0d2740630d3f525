"""`salbench benchmark` as a user runs it: a torchvision ResNet-18 saved with torch.save, as a
state dict with --arch, and as TorchScript, each on a folder of PNG images with PNG masks, to a
report whose summary names a best method, with pixel flipping (MoRF) ranked lower-is-better; the
three forms give the same numbers; bad input is one line, exit 2, and no run folder."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from typer.testing import CliRunner

import salbench
from salbench.cli import app
from salbench.results import read_results

METHODS = "saliency,integrated_gradients,gradcam,random"


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> Path:
    """8 PNG images (32 px, 2 classes) with PNG masks, and one ResNet-18 saved three ways."""
    root = tmp_path_factory.mktemp("user")
    rng = np.random.default_rng(0)
    for i in range(8):
        label = "ab"[i % 2]
        image = rng.random((32, 32, 3)) * 0.3
        mask = np.zeros((32, 32), np.uint8)
        r, c = rng.integers(2, 18, 2)
        image[r:r + 12, c:c + 12, 0 if label == "a" else 2] += 0.6
        mask[r:r + 12, c:c + 12] = 255
        for folder, array in (("images", (np.clip(image, 0, 1) * 255).astype(np.uint8)),
                              ("masks", mask)):
            (root / folder / label).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / folder / label / f"{i}.png"), array)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2).eval()
    torch.save(model, root / "model.pt")
    torch.save(model.state_dict(), root / "weights.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model), str(root / "model.ts"))
    return root


def benchmark(user: Path, model: str, out: Path, *extra: str):
    return invoke("benchmark", "--model", user / model, "--data", user / "images", "--masks",
                  user / "masks", "--methods", METHODS, "--out", out, "--device", "cpu",
                  "--quiet", *extra)


@pytest.fixture(scope="module")
def module_run(user, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("runs") / "module"
    done = benchmark(user, "model.pt", out)
    assert done.exit_code == 0, done.output
    return out, done.output


def test_a_torch_saved_resnet_gets_a_report_naming_a_best_method(module_run):
    out, output = module_run
    assert "Best supported:" in output and "report:" in output
    best = output.split("Best supported:")[1].split(",")[0].strip()
    assert best in METHODS.split(",") and best != "random"  # a null baseline is never advised
    assert (out / "report" / "index.html").is_file()
    html = (out / "report" / "index.html").read_text()
    assert "Benchmark of your model" in html and "Best supported" in html
    board = pd.read_csv(next((out / "report" / "tables").glob("leaderboard-*.csv")), index_col=0)
    flipping = [c for c in board.columns if c.startswith("pixel_flipping.auc")]
    assert flipping and all(c.endswith("↓") for c in flipping)  # MoRF AUC: lower is better
    rows = read_results(out)
    assert set(rows[rows.metric == "pixel_flipping"].direction) == {"lower"}
    assert set(rows.method) == set(METHODS.split(","))
    ranked = rows[(rows.metric == "pixel_flipping")].groupby("method").value.mean()
    rank_one = board[flipping[0]].str.endswith("#1")
    assert board.index[rank_one][0] == ranked.idxmin()  # the lowest AUC is ranked first


def test_the_state_dict_with_arch_gives_the_same_numbers(user, module_run, tmp_path):
    done = benchmark(user, "weights.pth", tmp_path / "sd", "--arch", "resnet18")
    assert done.exit_code == 0, done.output
    ours = read_results(tmp_path / "sd").drop(columns="run")
    theirs = read_results(module_run[0]).drop(columns="run")
    pd.testing.assert_frame_equal(ours, theirs)


def test_torchscript_skips_the_methods_that_need_hooks_with_a_reason(user, module_run, tmp_path):
    done = benchmark(user, "model.ts", tmp_path / "ts")
    assert done.exit_code == 0, done.output
    assert "skipped method gradcam: needs hooks" in done.output
    assert "skipped metric model_randomisation" in done.output
    rows = read_results(tmp_path / "ts")
    assert set(rows.method) == {"saliency", "integrated_gradients", "random"}
    module = read_results(module_run[0])
    key = ["method", "metric", "output", "metric_params", "sample_id"]
    both = rows.merge(module, on=key, suffixes=("", "_module"))
    assert len(both) == len(rows)  # every TorchScript row has its twin, equal
    # (the random map depends on how samples are batched, which the memory budget decides)
    same = both[both.method != "random"]
    np.testing.assert_allclose(same.value, same.value_module, rtol=1e-5, atol=1e-6)


def test_dry_run_prints_the_plan_and_writes_nothing(user, tmp_path):
    done = benchmark(user, "model.pt", tmp_path / "dry", "--dry-run")
    assert done.exit_code == 0, done.output
    assert "4 methods ×" in done.output and "estimated" in done.output
    assert "pixel_flipping" in done.output and "steps)" in done.output
    assert not (tmp_path / "dry").exists()


def test_the_python_api_returns_the_results_table(user, module_run, tmp_path):
    frame = salbench.benchmark(user / "model.pt", user / "images", masks=user / "masks",
                               methods=["saliency"], metrics=["top_k_precision"],
                               out=tmp_path / "api", device="cpu", gallery=0)
    assert set(frame.metric) == {"top_k_precision"} and len(frame) == 8
    module = read_results(module_run[0])
    expected = module[(module.method == "saliency") & (module.metric == "top_k_precision")]
    np.testing.assert_allclose(frame.sort_values("sample_id").value,
                               expected.sort_values("sample_id").value)


def _npz(tmp_path, channels=3, label=1, nan=False):
    x = np.random.default_rng(0).random((4, channels, 32, 32)).astype(np.float32)
    if nan:
        x[1, 0, 0, 0] = np.nan
    path = tmp_path / f"d{channels}{label}{nan}.npz"
    np.savez(path, x=x, y=np.array([0, 1, 0, label]))
    return path


@pytest.mark.parametrize("case, message", [
    ("grey", "fails on them"),
    ("label", "holds class 5 but the model has 2 outputs"),
    ("nan", "NaN or infinite"),
    ("truncated", "not a readable safetensors file"),
    ("foreign", "not a readable torch file"),
    ("state dict", "give its architecture with --arch"),
    ("hooks", "no method can run on this model"),
])
def test_bad_input_is_one_line_and_leaves_no_run_folder(user, tmp_path, case, message):
    model, data, extra = user / "model.pt", user / "images", ["--masks", user / "masks"]
    if case == "grey":
        data, extra = _npz(tmp_path, channels=1), []
    elif case == "label":
        data, extra = _npz(tmp_path, label=5), []
    elif case == "nan":
        data, extra = _npz(tmp_path, nan=True), []
    elif case == "truncated":
        model = tmp_path / "cut.safetensors"
        model.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    elif case == "foreign":
        model = tmp_path / "notes.pt"
        model.write_text("a text file")
    elif case == "state dict":
        model = user / "weights.pth"
    elif case == "hooks":
        model, extra = user / "model.ts", [*extra, "--methods", "gradcam,guided_backprop"]
    out = tmp_path / "run"
    done = invoke("benchmark", "--model", model, "--data", data, *extra, "--out", out,
                  "--device", "cpu", "--quiet")
    assert done.exit_code == 2, done.output
    assert message in done.output and len(done.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("accuracy,says", [
    (0.0, "far below chance (0.50): the classes of the data are probably in another order"),
    (0.55, "close to chance (0.50)"), (0.95, "classifies these 20 images with accuracy 0.95")])
def test_the_summary_says_what_the_accuracy_means(accuracy, says):
    """A model far below chance has its classes swapped (alphabetical folders against the
    model's order): the summary says so instead of calling it chance."""
    from salbench.studies.benchmark.analysis import recommendation

    lines = recommendation(pd.DataFrame(), pd.DataFrame(), accuracy, 0.5, 20)
    assert says in lines[0] and lines[-1] == "No method could be scored."
