"""Scoring and selecting trained models.

Scores (document 003, table 4; document 000, section 3): accuracy, balanced accuracy (mean
per-class recall), support-weighted precision / recall / F1 and the mean one-vs-rest ROC AUC.
Selection: the top-k models by a metric (document 000, section 3: "the three best-performing models
... in terms of accuracy") and the accuracy-matched set (document 000, appendix G: k models whose
test accuracy is closest to a target, 90 % there).
"""

from __future__ import annotations

import pandas as pd
import torch

SCORE_NAMES = ("accuracy", "balanced_accuracy", "precision_weighted", "recall_weighted",
               "f1_weighted", "mean_auc")


def _check(scores: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
        raise ValueError(f"scores must be a tensor [N, K] of class scores, got "
                         f"{getattr(scores, 'shape', type(scores).__name__)}")
    if not isinstance(y, torch.Tensor) or y.shape != scores.shape[:1]:
        raise ValueError(f"y must be an integer tensor [{scores.shape[0]}], got "
                         f"{getattr(y, 'shape', type(y).__name__)}")
    if len(y) == 0:
        raise ValueError("scores and y are empty: nothing to score")
    if y.dtype.is_floating_point or y.min() < 0 or y.max() >= scores.shape[1]:
        raise ValueError(f"y must hold class indices in [0, {scores.shape[1]})")


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as ``j`` (int64
    ``[K, K]``)."""
    idx = y.long() * num_classes + pred.long()
    counts = torch.bincount(idx, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_recall(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Recall of each class, ``TP_k / (TP_k + FN_k)``; NaN for a class absent from ``y``."""
    cm = confusion_matrix(pred, y, num_classes).double()
    return cm.diagonal() / cm.sum(dim=1)


def roc_auc(score: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of ``score`` for the boolean labels ``positive``.

    The Mann-Whitney statistic ``P(s_pos > s_neg) + 0.5 P(s_pos = s_neg)`` with average ranks for
    ties; NaN when one label is absent.
    """
    score = score.double()
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(score)
    sorted_scores = score[order]
    ranks = torch.empty_like(score)
    ranks[order] = torch.arange(1, len(score) + 1, dtype=torch.float64)
    # average the ranks of tied scores
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True,
                                                  return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks[order] = mean_rank[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def classification_scores(scores: torch.Tensor, y: torch.Tensor,
                          kind: str = "logits") -> dict[str, float]:
    """The test metrics of document 003, table 4 from class scores ``[N, K]`` and targets ``[N]``.

    ``kind``: ``"logits"`` (softmax is applied before the AUCs) or ``"probabilities"``. The
    prediction is the arg-max. Weighted means weight each
    class by its support in ``y``; a class with no predictions has precision 0 (scikit-learn's
    ``zero_division=0``). ``mean_auc`` averages the one-vs-rest AUC over classes present in ``y``.
    """
    _check(scores, y)
    if kind not in ("logits", "probabilities"):
        raise ValueError(f"kind must be 'logits' or 'probabilities', got {kind!r}")
    scores = scores.detach().double().cpu()
    y = y.detach().long().cpu()
    k = scores.shape[1]
    pred = scores.argmax(dim=1)
    cm = confusion_matrix(pred, y, k).double()
    tp = cm.diagonal()
    support = cm.sum(dim=1)
    predicted = cm.sum(dim=0)
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-300),
                     torch.zeros_like(tp))
    weights = support / support.sum()
    present = support > 0
    probs = torch.softmax(scores, dim=1) if kind == "logits" else scores
    aucs = [roc_auc(probs[:, c], y == c) for c in range(k) if present[c] and support[c] < len(y)]
    return {
        "accuracy": float(tp.sum() / len(y)),
        "balanced_accuracy": float(recall[present].mean()),
        "precision_weighted": float((weights * precision).sum()),
        "recall_weighted": float((weights * recall).sum()),
        "f1_weighted": float((weights * f1).sum()),
        "mean_auc": float(sum(aucs) / len(aucs)) if aucs else float("nan"),
    }


def select_top_k(table: pd.DataFrame, k: int, metric: str = "accuracy",
                 higher_is_better: bool = True) -> pd.DataFrame:
    """The ``k`` rows of ``table`` best by ``metric`` (stable: earlier rows win ties)."""
    _check_table(table, k, metric)
    ordered = table.sort_values(metric, ascending=not higher_is_better, kind="stable")
    return ordered.head(k)


def accuracy_matched(table: pd.DataFrame, k: int, target: float,
                     metric: str = "accuracy") -> pd.DataFrame:
    """The ``k`` rows whose ``metric`` is closest to ``target`` (document 000, appendix G).

    Distance ``|metric - target|``, ties broken by row order. Appendix G selects five models per
    fine-tuning degree with test accuracy close to 0.90; a group that cannot reach the target
    simply gets its k closest models (the document keeps 1conv's models "unchanged").
    """
    _check_table(table, k, metric)
    distance = (table[metric] - float(target)).abs()
    return table.loc[distance.sort_values(kind="stable").index[:k]]


def _check_table(table: pd.DataFrame, k: int, metric: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the table; columns: "
                         f"{list(table.columns)}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
