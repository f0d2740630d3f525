"""fit: the documents' regimes, determinism, divergence handling, regression and augmentation."""

import math

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from salbench.models import build, freeze_for_degree
from salbench.models.training import (
    AugmentConfig,
    LossRecallStopping,
    RegularEvaluationStopping,
    TrainConfig,
    TrainingDivergedError,
    _Batches,
    _loss_function,
    _probe,
    _validate,
    augment_batch,
    fit,
    predict,
    preset,
)


def _tiny(arch="resnet18", classes=2, seed=0, size=32):
    torch.manual_seed(seed)
    return build(arch, classes, in_channels=1, input_size=size, width=0.125)


def blobs(n=96, size=32, seed=0):
    """Two classes: class 1 carries a bright square at a fixed place; tensors (x, y)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g) * 0.3
    y = torch.arange(n) % 2
    x[y == 1, :, size // 4: size // 2, size // 4: size // 2] += 0.7
    return x, y


def _split(n=96, seed=0):
    x, y = blobs(n, seed=seed)
    cut = int(0.75 * n)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


ADAM = {"optimizer": "adam", "lr": 3e-3, "scheduler": "none", "batch_size": 16}


def test_same_seed_same_weights_on_cpu():
    train, val = _split()
    cfg = TrainConfig(epochs=2, augment={"hflip": True, "rotation_degrees": 10}, **ADAM)
    a, b = _tiny(), _tiny()
    fit(a, train, val, cfg)
    fit(b, train, val, cfg)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    c = _tiny()
    fit(c, train, val, cfg.model_copy(update={"seed": 1}))
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_learns_an_easy_task_and_reports_scores():
    train, val = _split(128)
    model = _tiny()
    result = fit(model, train, val, TrainConfig(epochs=6, **ADAM))
    assert result.val_scores["accuracy"] >= 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    outputs, targets = predict(model, val, device="cpu")
    assert (outputs.argmax(1) == targets).double().mean() == pytest.approx(
        result.val_scores["accuracy"])
    assert result.images_seen == 6 * len(train[0]) and result.images_per_second > 0
    assert not model.training


def test_loss_recall_early_stopping_restores_the_best_epoch():
    train, val = _split()
    val = (val[0], 1 - val[1])  # flipped labels: validation gets worse as training succeeds
    model = _tiny()
    cfg = TrainConfig(epochs=12, early_stopping="loss_recall", patience=2, **ADAM)
    result = fit(model, train, val, cfg)
    # Replaying the recorded sequence through the rule stops at the same epoch.
    stopper = LossRecallStopping(2)
    stops = [stopper.update(h["val_loss"], h["monitored_recall"]) for h in result.history]
    assert result.stop_reason == "patience"
    assert stops.index(True) == len(result.history) - 1 < 11
    # The returned weights are those of the best (last improving) epoch.
    batches = _Batches(val, 256, torch.device("cpu"))
    loss_fn = _loss_function(cfg, train[1], 2, torch.device("cpu"))
    now = _validate(model, batches, loss_fn, cfg, torch.device("cpu"))
    best = result.history[result.best_epoch - 1]
    assert result.best_epoch < len(result.history)
    assert now["val_loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_regular_evaluation_mode_follows_the_counter():
    x, y = blobs(160)
    train, val = (x[:96], y[:96]), (x[96:], y[96:])
    cfg = TrainConfig(epochs=4, early_stopping="regular_evaluation", eval_every=2,
                      target_accuracy=0.9, early_stop_limit=6, refresh_fraction=0.5,
                      val_shards=4, **ADAM)
    result = fit(_tiny(), train, val, cfg)
    assert all(h["step"] % 2 == 0 for h in result.history)
    replay = RegularEvaluationStopping(0.9, 6, 0.5)
    for h in result.history:
        decision = replay.update(h["val_accuracy"], lambda h=h: h.get("full_val_accuracy", 0.0))
        assert math.isclose(replay.n_early, h["n_early"]) or decision == "target_accuracy"
    if result.stop_reason == "target_accuracy":
        assert result.history[-1]["full_val_accuracy"] >= 0.9
        assert result.val_scores["accuracy"] >= 0.9


def test_nan_loss_raises_and_keeps_last_good_weights():
    class Bomb(nn.Module):
        """A tiny classifier whose output turns NaN after `after` training calls."""

        def __init__(self, after):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 2))
            self.after, self.calls = after, 0

        def forward(self, x):
            if self.training:
                self.calls += 1
            out = self.net(x)
            return out * float("nan") if self.training and self.calls > self.after else out

    train, _ = _split()
    cfg = TrainConfig(epochs=3, batch_size=24, scheduler="none")  # 3 steps per epoch
    torch.manual_seed(0)
    reference = Bomb(after=10**9)
    fit(reference, train, None, cfg.model_copy(update={"epochs": 1}))
    torch.manual_seed(0)
    bomb = Bomb(after=4)  # a training call in epoch 2 (the first "call" is the shape probe in eval)
    with pytest.raises(TrainingDivergedError, match="epoch 2") as info:
        fit(bomb, train, None, cfg)
    assert info.value.result.stop_reason == "diverged"
    for p, q in zip(bomb.parameters(), reference.parameters()):
        assert torch.equal(p, q)


class Viewing(nn.Module):
    """Flattens with ``view``, which fails on a channels-last activation."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 32 * 32, 2)

    def forward(self, x):
        h = self.conv(x).relu()
        return self.fc(h.view(h.shape[0], -1))


def test_channels_last_is_used_only_where_the_model_takes_it():
    """The probe behind channels-last training (on CUDA): a model that takes it is left in that
    layout with its output count; a ``view`` flatten is caught and its model left contiguous."""
    batches = _Batches((torch.rand(8, 3, 32, 32), torch.arange(8) % 2), 4, torch.device("cpu"))
    resnet = build("resnet18", 2, in_channels=3, input_size=32, width=0.125)
    assert _probe(resnet, batches, True) == (2, True)
    assert resnet.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not resnet.conv1.weight.is_contiguous()
    viewing = Viewing()
    assert _probe(viewing, batches, True) == (2, False)
    assert viewing.conv.weight.is_contiguous()
    assert _probe(Viewing(), batches, False) == (2, False)


def test_cpu_training_stays_contiguous():
    """On the CPU the batches reach the model contiguous and the weights stay so (channels-last
    there made weights depend on the thread count; module docstring)."""
    train, _ = _split()
    x3 = (torch.cat([train[0]] * 3, 1), train[1])  # 3 channels: the layouts differ in memory
    seen = []
    model = build("resnet18", 2, in_channels=3, input_size=32, width=0.125)
    model.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous()) if m.training else None)
    fit(model, x3, None, TrainConfig(epochs=1, **ADAM))
    assert seen and all(seen)
    assert all(p.is_contiguous() for p in model.state_dict().values())


def test_regression_targets_with_mse_for_gad_support_models():
    train, val = _split()
    teacher = _tiny().eval()
    with torch.no_grad():  # GAD: pre-softmax outputs moved apart by alpha (document 004, 4.1)
        targets = teacher(train[0]) + torch.tensor([-2.0, 2.0])
        val_targets = teacher(val[0]) + torch.tensor([-2.0, 2.0])
    student = _tiny()
    student.load_state_dict(teacher.state_dict())  # support models start from the original
    before = nn.functional.mse_loss(predict(student, (val[0], val_targets), device="cpu")[0],
                                    val_targets).item()
    result = fit(student, (train[0], targets), (val[0], val_targets),
                 preset("gad-support", lr=3e-3, epochs=4, batch_size=16))
    after = nn.functional.mse_loss(predict(student, (val[0], val_targets), device="cpu")[0],
                                   val_targets).item()
    assert result.val_scores["mse"] == pytest.approx(after, rel=1e-5)
    assert after < before
    with pytest.raises(ValueError, match="float regression targets"):
        fit(_tiny(), train, val, preset("gad-support"))


def test_balanced_class_weights_match_sklearn():
    y = torch.tensor([0, 0, 0, 0, 1, 1, 2, 0, 1])
    loss = _loss_function(TrainConfig(class_weights="balanced"), y, 3, torch.device("cpu"))
    ref = compute_class_weight("balanced", classes=np.arange(3), y=y.numpy())
    np.testing.assert_allclose(loss.weight.numpy(), ref, rtol=1e-6)
    with pytest.raises(ValueError, match="class_weights"):
        _loss_function(TrainConfig(class_weights=[1.0, 2.0]), y, 3, torch.device("cpu"))


def test_augmentation_flips_and_rotations():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 2, 16, 16)
    out = augment_batch(x, AugmentConfig(hflip=True), g)
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert (same | flipped).all() and 10 < flipped.sum() < 54
    # A centred disk is unchanged by any rotation, up to interpolation at its rim.
    yy, xx = torch.meshgrid(torch.arange(32) - 15.5, torch.arange(32) - 15.5, indexing="ij")
    disk = ((yy ** 2 + xx ** 2) < 8 ** 2).float().expand(8, 1, 32, 32)
    rotated = augment_batch(disk, AugmentConfig(rotation_degrees=180), g)
    assert (rotated - disk).abs().mean() < 0.02
    # A square is not: rotations happen and differ per sample.
    square = torch.zeros(8, 1, 32, 32)
    square[:, :, 8:24, 8:24] = 1
    rotated = augment_batch(square, AugmentConfig(rotation_degrees=45), g)
    per_sample = (rotated - square).abs().flatten(1).mean(1)
    assert per_sample.max() > 0.02 and per_sample.std() > 0


def test_frozen_blocks_and_their_batch_norm_statistics_stay_fixed():
    train, val = _split()
    model = freeze_for_degree(_tiny(), "1conv")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, train, val, TrainConfig(epochs=1, **ADAM))
    for k, v in model.state_dict().items():
        if k.startswith(("layer4.", "fc.")):
            continue
        assert torch.equal(v, before[k]), k
    assert not torch.equal(model.fc.weight, before["fc.weight"])


def test_dataset_items_with_masks_are_accepted():
    import pandas as pd

    from salbench.data import GroundTruthDataset

    x, y = blobs(32)
    meta = pd.DataFrame({"sample_id": range(32), "split": ["train"] * 32})
    data = GroundTruthDataset(x, y, torch.zeros(32, 32, 32), meta, ["a", "b"])
    wrapped = torch.utils.data.Subset(data, range(32))  # a generic Dataset: the DataLoader path
    a, b = _tiny(), _tiny()
    cfg = TrainConfig(epochs=1, **ADAM)
    fit(a, data, None, cfg)
    fit(b, wrapped, None, cfg)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_bad_config_and_inputs():
    from salbench.config import ConfigError

    with pytest.raises(ConfigError, match="lr"):
        TrainConfig.parse({"lr": -1})
    with pytest.raises(ConfigError, match="regular_evaluation"):
        TrainConfig.parse({"loss": "mse", "early_stopping": "regular_evaluation"})
    with pytest.raises(ValueError, match="preset"):
        preset("imagenet")
    with pytest.raises(ValueError, match="needs validation data"):
        fit(_tiny(), _split()[0], None, TrainConfig(early_stopping="loss_recall"))
    with pytest.raises(TypeError, match="Dataset"):
        fit(_tiny(), np.zeros((4, 1, 8, 8)), None, TrainConfig())
    model = _tiny()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        fit(model, _split()[0], None, TrainConfig())


def test_presets_hold_the_documents_values():
    mri = preset("mri")
    assert (mri.optimizer, mri.lr, mri.momentum, mri.step_size, mri.gamma, mri.batch_size) == (
        "sgd", 0.02, 0.5, 5, 0.9, 32)
    resnet = preset("cells-regular", "resnet34")
    assert (resnet.lr, resnet.batch_size, resnet.early_stop_limit, resnet.refresh_fraction,
            resnet.weight_decay, resnet.target_accuracy) == (1e-3, 4, 24, 0.4, 1e-5, 0.96)
    vgg = preset("cells-regular", "vgg16")
    assert (vgg.lr, vgg.batch_size, vgg.early_stop_limit, vgg.refresh_fraction) == (
        1e-4, 16, 48, 0.3)
    assert preset("gad-support").lr == 4e-5 and preset("gad-support").epochs == 10
