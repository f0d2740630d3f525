"""Post-processing helpers, null baselines and LRP building blocks on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from explain_helpers import conv_flatten_fc, tiny
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from salbench.explain import (
    CompositeSpec,
    absolute,
    clamp,
    explain,
    log_display,
    normalise_max_abs,
    normalise_min_max,
    reduce_channels,
)
from salbench.explain.lrp import linear_layers, name_map, stabiliser, tutorial_ranges

A = torch.tensor([[[[1.0, -2.0]], [[-3.0, 0.5]], [[2.0, 2.0]]]])  # [1, 3, 1, 2]


def test_channel_reductions_by_hand():
    assert reduce_channels(A, "sum").tolist() == [[[0.0, 0.5]]]
    assert reduce_channels(A, "abs-sum").tolist() == [[[6.0, 4.5]]]
    assert reduce_channels(A, "max-abs").tolist() == [[[3.0, 2.0]]]
    torch.testing.assert_close(reduce_channels(A, "l2"),
                               torch.tensor([[[math.sqrt(14.0), math.sqrt(8.25)]]]))
    with pytest.raises(ValueError, match="how must be one of"):
        reduce_channels(A, "mean")
    with pytest.raises(ValueError, match="4 dimensions"):
        reduce_channels(A[0], "sum")


def test_normalisations_and_clamp_by_hand():
    torch.testing.assert_close(normalise_max_abs(A), A / 3.0)
    assert normalise_max_abs(torch.zeros(2, 1, 2, 2)).abs().sum() == 0
    torch.testing.assert_close(normalise_min_max(A), (A + 3.0) / 5.0)
    assert clamp(A, -0.1, 0.1).abs().max() == pytest.approx(0.1)
    assert absolute(A).min() >= 0


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, (3, 2, 4, 4),
              elements=st.floats(-1e3, 1e3, width=32, allow_subnormal=False)))
def test_max_abs_normalisation_range_and_sign(values):
    a = torch.from_numpy(values)
    out = normalise_max_abs(a)
    assert out.abs().max() <= 1.0 + 1e-6
    assert torch.equal(torch.sign(out), torch.sign(a))


def test_log_display_transform_by_hand():
    """Document 000, 2.4: −log(1 − s(1 − 1/b))/log b with b = 0.5 is log(1 + s)/log 2."""
    s = torch.tensor([0.0, 0.25, 0.5, 1.0])
    torch.testing.assert_close(log_display(s), torch.log1p(s) / math.log(2.0))
    assert log_display(s)[-1] == pytest.approx(1.0)


def test_sobel_and_laplace_of_a_step_edge():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:] = 1.0
    sobel = explain(conv_flatten_fc(), x.expand(1, 3, 8, 8).contiguous().repeat(1, 1, 2, 2), 0,
                    "sobel")
    assert sobel.shape == (1, 3, 16, 16)
    edge = explain(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)), x, 0, "sobel")
    # Non-zero only on the two columns beside the step, constant along it.
    assert edge[0, 0, :, [3, 4]].min() > 0
    assert edge[0, 0, :, [0, 1, 6, 7]].abs().max() == 0
    lap = explain(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)), x, 0, "laplace")
    assert lap[0, 0, 2, 3] == -lap[0, 0, 2, 4] != 0   # opposite signs across the step
    assert not torch.allclose(lap.abs(), edge)         # its own filter, not Sobel's


def test_random_maps_are_seeded_and_uniform():
    model = conv_flatten_fc()
    x = torch.rand(2, 3, 16, 16)
    a = explain(model, x, 0, "random", seed=3)
    assert torch.equal(a, explain(model, x, 0, "random", seed=3))
    assert not torch.equal(a, explain(model, x, 0, "random", seed=4))
    assert float(a.min()) >= 0 and float(a.max()) < 1


def test_random_model_is_a_reinitialised_copy_and_keeps_global_rng():
    model = tiny("vgg16")
    x = torch.rand(2, 3, 32, 32)
    state = torch.random.get_rng_state()
    a = explain(model, x, 1, "random_model", base="saliency")
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(a, explain(model, x, 1, "random_model", base="saliency"))
    assert not torch.allclose(a, explain(model, x, 1, "saliency"))


def test_seeded_methods_draw_the_first_samples_noise_alike_in_any_batch():
    """What the report's gallery relies on (docs/report.md): it explains a study's first samples
    again in a smaller batch than the scoring. DeepLIFT-SHAP's default baselines span the batch's
    value range instead, so its maps depend on the other samples."""
    model = tiny("resnet18")
    x = torch.rand(8, 3, 32, 32)
    for method, params in (("smoothgrad", {"nt_samples": 4}), ("gradient_shap", {}),
                           ("random", {}), ("saliency", {})):
        scored = explain(model, x, 1, method, **params)[:2]  # float rounding may differ
        torch.testing.assert_close(explain(model, x[:2], 1, method, **params), scored, rtol=1e-5,
                                   atol=1e-6 * float(scored.abs().max()), msg=method)
    brighter = torch.cat([x[:2], 3 * x[2:]])
    first = explain(model, x, 1, "deeplift_shap")[:2]
    assert not torch.allclose(first, explain(model, brighter, 1, "deeplift_shap")[:2],
                              rtol=0, atol=0.1 * float(first.abs().max()))


def test_stabilisers_by_hand():
    """Document 002, section 2.1.5, the three denominators."""
    z = torch.tensor([[2.0, 0.0, -2.0]])
    torch.testing.assert_close(stabiliser("vanilla", 0.5)(z), torch.tensor([[2.5, 0.5, -1.5]]))
    torch.testing.assert_close(stabiliser("zennit", 0.5)(z), torch.tensor([[2.5, 0.5, -2.5]]))
    rms = math.sqrt(8.0 / 3.0)
    torch.testing.assert_close(stabiliser("tutorial", 0.5)(z),
                               z + 0.5 * rms + 1e-9)


def test_tutorial_ranges_cover_vgg16_like_table_2_4():
    model = tiny("vgg16")
    layers = [name for name, _ in linear_layers(model)]
    mapping = name_map(model, tutorial_ranges(), "zennit", torch.rand(1, 3, 32, 32))
    names = [set(n) for n, _ in mapping]
    assert names[0] == {"features.0"}
    assert names[1] == {f"features.{i}" for i in (2, 5, 7, 10, 12, 14)}       # modules 1-16
    assert names[2] == {f"features.{i}" for i in (17, 19, 21, 24, 26, 28)}    # modules 17-30
    assert names[3] == {"classifier.0", "classifier.3", "classifier.6"}      # 31-n
    assert sum(len(n) for n in names) == len(layers)


def test_composite_spec_validates_config():
    spec = CompositeSpec.parse({"ranges": [{"first": 0, "rule": "epsilon",
                                            "params": {"epsilon": 0.1}}],
                                "stabiliser": "tutorial"})
    assert spec.ranges[0].last is None
    from salbench.config import ConfigError
    with pytest.raises(ConfigError, match="rule"):
        CompositeSpec.parse({"ranges": [{"first": 0, "rule": "nope"}]})
    model = conv_flatten_fc()
    with pytest.raises(ValueError, match="overlap"):
        explain(model, torch.rand(1, 3, 16, 16), 0, "lrp_composite", composite={
            "ranges": [{"first": 0, "last": 1, "rule": "lrp0"}, {"first": 1, "rule": "flat"}]})
