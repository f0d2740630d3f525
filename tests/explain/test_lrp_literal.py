"""LRP against a slow literal implementation of document 002's rules (table 2.2, section 2.1.5)."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from salbench.explain import explain


def literal_stabilise(kind: str, z: np.ndarray, eps: float) -> np.ndarray:
    """The three denominators of section 2.1.5, for one sample's vector z."""
    if kind == "vanilla":
        return z + eps
    if kind == "zennit":
        eps = eps if eps > 0 else 1e-6
        return z + ((z == 0) + np.sign(z)) * eps
    return z + eps * math.sqrt(float(np.mean(z ** 2))) + 1e-9


def literal_lrp(w0, b0, w1, b1, x, target, epsilon, gamma, kind):
    """Layer 0: LRP-ε, layer 1: LRP-γ (Zennit's generalised γ: w + γw⁺ for neurons with positive
    output, w + γw⁻ otherwise; inputs are ReLU outputs, so non-negative). Loops over neurons."""
    z0 = w0 @ x + b0
    a = np.maximum(z0, 0)
    z1 = w1 @ a + b1
    r1 = np.zeros_like(z1)
    r1[target] = z1[target]
    # layer 1, gamma rule
    rho_w = np.empty_like(w1)
    rho_b = np.empty_like(b1)
    for k in range(len(z1)):
        part = np.maximum if z1[k] > 0 else np.minimum
        rho_w[k] = w1[k] + gamma * part(w1[k], 0)
        rho_b[k] = b1[k] + gamma * part(b1[k], 0)
    denom = literal_stabilise(kind, rho_w @ a + rho_b, 0.0)
    r_a = np.zeros_like(a)
    for j in range(len(a)):
        for k in range(len(z1)):
            r_a[j] += a[j] * rho_w[k, j] / denom[k] * r1[k]
    # relevance passes the ReLU unchanged; layer 0, epsilon rule
    denom0 = literal_stabilise(kind, z0, epsilon)
    r_x = np.zeros_like(x)
    for i in range(len(x)):
        for j in range(len(z0)):
            r_x[i] += x[i] * w0[j, i] / denom0[j] * r_a[j]
    return r_x


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), epsilon=st.sampled_from([1e-4, 0.01, 0.25, 1.0]),
       gamma=st.sampled_from([0.0, 0.1, 0.25, 1.0]),
       kind=st.sampled_from(["vanilla", "zennit", "tutorial"]))
def test_lrp_rules_and_stabilisers_equal_the_literal_definition(seed, epsilon, gamma, kind):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x = torch.randn(2, 6, dtype=torch.float64)
    y = torch.tensor([seed % 3, (seed + 1) % 3])
    composite = {"ranges": [{"first": 0, "last": 0, "rule": "epsilon",
                             "params": {"epsilon": epsilon}},
                            {"first": 1, "rule": "gamma", "params": {"gamma": gamma}}],
                 "stabiliser": kind}
    # explain() wants images; a Flatten in front keeps the layers and their indices.
    image_model = nn.Sequential(nn.Flatten(), *model)
    ours = explain(image_model, x.view(2, 1, 2, 3), y, "lrp_composite", composite=composite)
    w0, b0 = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    w1, b1 = model[2].weight.detach().numpy(), model[2].bias.detach().numpy()
    for i in range(2):
        expected = literal_lrp(w0, b0, w1, b1, x[i].numpy(), int(y[i]), epsilon, gamma, kind)
        np.testing.assert_allclose(ours[i].flatten().numpy(), expected, rtol=1e-7, atol=1e-10)
