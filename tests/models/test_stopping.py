"""Early-stopping rules stop where the documents say, on synthetic validation sequences."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from salbench.models.training import LossRecallStopping, RegularEvaluationStopping


def _loss_recall_literal(losses, recalls, patience):
    """Document 003, 4.2 read literally: epoch t improves iff its loss is below every earlier loss
    or its recall above every earlier recall; stop at the first epoch ending `patience` epochs
    in a row without improvement. Returns the 1-based stop epoch or None."""
    streak = 0
    for t in range(len(losses)):
        better = (all(losses[t] < earlier for earlier in losses[:t])
                  or all(recalls[t] > r for r in recalls[:t]))
        streak = 0 if better else streak + 1
        if streak >= patience:
            return t + 1
    return None


def _run(stopper_losses, recalls, patience):
    stopper = LossRecallStopping(patience)
    for t, (loss, r) in enumerate(zip(stopper_losses, recalls), start=1):
        if stopper.update(loss, r):
            return t
    return None


def test_loss_recall_hand_case():
    # loss stalls from epoch 3, recall improves at epoch 4 (reset), then nothing for 2 epochs.
    losses = [1.0, 0.8, 0.85, 0.9, 0.81, 0.95, 0.99]
    recalls = [0.5, 0.6, 0.6, 0.7, 0.65, 0.7, 0.7]
    assert _run(losses, recalls, patience=2) == 6
    assert _run(losses, recalls, patience=3) == 7
    assert _run(losses, recalls, patience=4) is None


def test_loss_only_when_recall_is_none():
    stopper = LossRecallStopping(2)
    assert [stopper.update(v) for v in [1.0, 1.1, 0.9, 0.95, 0.92]] == [
        False, False, False, False, True]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=25),
       st.integers(1, 5))
def test_loss_recall_matches_literal_definition(pairs, patience):
    losses = [loss / 6 for loss, _ in pairs]
    recalls = [r / 6 for _, r in pairs]
    assert _run(losses, recalls, patience) == _loss_recall_literal(losses, recalls, patience)


def test_regular_evaluation_counter_hand_case():
    # r_f = 0.5, n_l = 3: improvements halve n_early, stalls add one.
    stopper = RegularEvaluationStopping(0.96, limit=3, refresh_fraction=0.5)
    accs = [0.5, 0.4, 0.4, 0.6, 0.3, 0.6, 0.7, 0.1, 0.1, 0.1]
    expected_n = [0, 1, 2, 1, 2, 3]
    decisions = []
    for a, n in zip(accs, expected_n):
        decisions.append(stopper.update(a, lambda: 0.0))
        assert math.isclose(stopper.n_early, n)
    assert decisions == ["continue"] * 5 + ["early_stop_limit"]


def test_regular_evaluation_target_needs_full_confirmation():
    stopper = RegularEvaluationStopping(0.96, limit=10, refresh_fraction=0.3)
    calls = []
    # exactly the target does not "exceed" it: no confirmation asked
    assert stopper.update(0.96, lambda: calls.append(1) or 1.0) == "continue"
    assert calls == []
    # exceeds, but the full validation set says 0.90: continue, counted as an improvement
    stopper.n_early = 2.0
    assert stopper.update(0.97, lambda: 0.90) == "continue"
    assert math.isclose(stopper.n_early, 0.6) and stopper.confirmed_accuracy == 0.90
    # exceeds and confirmed
    assert stopper.update(0.98, lambda: 0.965) == "target_accuracy"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10), min_size=1, max_size=40), st.integers(1, 6),
       st.sampled_from([0.0, 0.3, 0.4, 0.5]))
def test_regular_evaluation_matches_literal_counter(accs, limit, rf):
    accs = [a / 10 * 0.95 for a in accs]  # never reach the target
    stopper = RegularEvaluationStopping(0.96, limit, rf)
    n, best, stop_at = 0.0, -1.0, None
    for t, a in enumerate(accs, start=1):
        n = n * rf if a > best else n + 1
        best = max(best, a)
        decision = stopper.update(a, lambda: 0.0)
        if n >= limit:
            stop_at = t
            assert decision == "early_stop_limit"
            break
        assert decision == "continue"
    assert stop_at is None or stop_at <= len(accs)
