"""Scores agree with scikit-learn; top-k and accuracy-matched selection pick the right rows."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from salbench.models.selection import (
    accuracy_matched,
    classification_scores,
    roc_auc,
    select_top_k,
)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5), st.integers(0, 10_000), st.booleans())
def test_scores_match_sklearn(k, seed, ties):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(k + 2, 40))
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    logits = rng.normal(size=(n, k))
    if ties:
        logits = np.round(logits)  # tied scores exercise the AUC's average ranks
    ours = classification_scores(torch.tensor(logits), torch.tensor(y))
    pred = logits.argmax(1)
    probs = torch.softmax(torch.tensor(logits), 1).numpy()
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert ours["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    for ours_key, avg_fn in [("precision_weighted", skm.precision_score),
                             ("recall_weighted", skm.recall_score), ("f1_weighted", skm.f1_score)]:
        ref = avg_fn(y, pred, average="weighted", zero_division=0, labels=list(range(k)))
        assert ours[ours_key] == pytest.approx(ref)
    if k == 2:
        ref_auc = skm.roc_auc_score(y, probs[:, 1])
    else:
        ref_auc = skm.roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert ours["mean_auc"] == pytest.approx(ref_auc)


def test_roc_auc_hand_case():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4, 0.8>0.1, 0.4=0.4 -> 0.5, 0.4>0.1)
    score = torch.tensor([0.8, 0.4, 0.4, 0.1])
    assert roc_auc(score, torch.tensor([True, True, False, False])) == pytest.approx(3.5 / 4)
    assert np.isnan(roc_auc(score, torch.ones(4, dtype=torch.bool)))


def test_score_errors():
    with pytest.raises(ValueError, match="scores"):
        classification_scores(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="y must"):
        classification_scores(torch.zeros(3, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="kind"):
        classification_scores(torch.zeros(3, 2), torch.tensor([0, 1, 1]), kind="odds")


def test_top_k_and_accuracy_matched():
    table = pd.DataFrame({"seed": range(6), "accuracy": [0.95, 0.89, 0.91, 0.70, 0.90, 0.95]})
    assert select_top_k(table, 3)["seed"].tolist() == [0, 5, 2]
    assert select_top_k(table, 2, higher_is_better=False)["seed"].tolist() == [3, 1]
    # closest to 0.90: 0.90 (d=0), then 0.89 and 0.91 (d=0.01, row order), then 0.95
    assert accuracy_matched(table, 3, 0.90)["seed"].tolist() == [4, 1, 2]
    with pytest.raises(ValueError, match="metric"):
        select_top_k(table, 1, metric="auc")
    with pytest.raises(ValueError, match="k must"):
        accuracy_matched(table, 0, 0.9)
