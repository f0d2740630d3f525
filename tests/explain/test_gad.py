"""GAD (document 004, section 4): hand-checked targets, masks and a literal re-implementation."""

from __future__ import annotations

import torch
from explain_helpers import conv_flatten_fc

from salbench.explain import GADSupport, explain, fit_gad
from salbench.explain.gad import distanced_targets, importance_mask, support_config


def test_distanced_targets_lower_the_other_class_by_alpha():
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    labels = torch.tensor([0, 2, 1])
    out = distanced_targets(logits, labels, (0, 2), 4.0)
    expected = torch.tensor([[1.0, 2.0, -1.0],   # class 0: output of class 2 lowered
                             [0.0, 5.0, 6.0],    # class 2: output of class 0 lowered
                             [7.0, 8.0, 9.0]])   # other class: unchanged
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(logits[0], torch.tensor([1.0, 2.0, 3.0]))  # input untouched


def test_importance_mask_top_fraction_and_of_max():
    a = torch.tensor([[[[0.1, -0.9], [0.5, -0.2]]]])
    top = importance_mask(a, "top_fraction", 0.5)
    assert top.tolist() == [[[[False, True], [True, False]]]]
    of_max = importance_mask(a, "of_max", 0.25)  # |a| >= 0.225
    assert of_max.tolist() == [[[[False, True], [True, False]]]]
    assert importance_mask(a, "of_max", 0.2).sum() == 3  # |a| >= 0.18


def literal_gad(model, supports, x, y, fraction):
    """Document 004, 4.3 written per sample: keep features important in every map."""
    maps = [explain(m, x, y, "saliency") for m in [model, *supports]]
    out = torch.zeros_like(maps[0])
    for i in range(x.shape[0]):
        keep = torch.ones_like(maps[0][i], dtype=torch.bool)
        for m in maps:
            values = m[i].abs().flatten()
            k = round(fraction * values.numel())
            cut = values.sort(descending=True).values[k - 1]
            keep &= m[i].abs() >= cut
        out[i] = maps[0][i] * keep
    return out


def test_gad_equals_literal_definition_and_keeps_a_subset_of_the_original():
    torch.manual_seed(0)
    model = conv_flatten_fc(classes=3)
    others = [conv_flatten_fc(classes=3) for _ in range(2)]
    support = GADSupport((0, 1), (0.0, 2.0), others)
    x = torch.rand(3, 3, 16, 16)
    y = torch.tensor([0, 1, 0])
    ours = explain(model, x, y, "gad", support=support, base="saliency", threshold=0.3)
    torch.testing.assert_close(ours, literal_gad(model, others, x, y, 0.3))
    original = explain(model, x, y, "saliency")
    kept = ours != 0
    torch.testing.assert_close(ours[kept], original[kept])
    assert kept.sum() <= importance_mask(original, "top_fraction", 0.3).sum()


def test_fit_gad_trains_supports_towards_distanced_outputs_and_caches(tmp_path):
    torch.manual_seed(1)
    model = conv_flatten_fc(classes=3)
    x = torch.rand(24, 3, 16, 16)
    y = torch.tensor([0, 1, 2] * 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = support_config(model, epochs=3, lr=1e-3, batch_size=8)
    support = fit_gad(model, (x, y), (0, 1), alphas=(0.0, 8.0), config=config, cache_dir=tmp_path)
    for key, value in model.state_dict().items():  # the original is untouched
        assert torch.equal(value, before[key])
    assert len(support.models) == 2 and len(list(tmp_path.iterdir())) == 2
    pair = y != 2
    with torch.no_grad():
        model.eval()
        original = model(x[pair])
        far = support.models[1](x[pair])
    target = distanced_targets(original, y[pair], (0, 1), 8.0)
    # The α = 8 support moved towards its targets (away from the original outputs).
    assert ((far - target) ** 2).mean() < ((original - target) ** 2).mean()
    # A second call loads the same checkpoints instead of training.
    again = fit_gad(model, (x, y), (0, 1), alphas=(0.0, 8.0), config=config, cache_dir=tmp_path)
    for a, b in zip(support.models, again.models):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)
