"""How well the explained model classifies: per-sample correctness and the set-level scores of
document 003, table 4 (accuracy, balanced accuracy, support-weighted precision / recall / F1,
mean one-vs-rest ROC AUC; :func:`salbench.models.selection.classification_scores`).

A model that has not learned explains nothing: the studies gate every finding on these scores.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from salbench.metrics import registry as R
from salbench.metrics._checks import check_classes, check_images, check_targets, forward_chunks
from salbench.models.selection import SCORE_NAMES, classification_scores


def class_scores(model: nn.Module, x: Tensor, y: Tensor, *,
                 memory_budget: int | None = None) -> Tensor:
    """The model's outputs ``[B, K]`` for ``x`` (in chunks bounded by ``memory_budget``),
    checked against ``y``'s class indices."""
    check_images(x)
    check_targets(y, x.shape[0])
    with torch.inference_mode():
        out = forward_chunks(model, x, memory_budget)
    check_classes(out, y)
    return out


def _classify(model: nn.Module, x: Tensor, y: Tensor, *,
              memory_budget: int | None = None) -> tuple[Tensor, Tensor]:
    return class_scores(model, x, y, memory_budget=memory_budget), y


def _result(logits: Tensor, y: Tensor) -> tuple[dict, dict, dict]:
    predicted = logits.argmax(1)
    return ({"correct": (predicted == y).double(), "predicted": predicted.double()}, {},
            classification_scores(logits, y))


R.register(
    "classification", kind="classifier", function=_classify,
    outputs=[R.Output("correct", "higher", R.UNIT, "1 if the arg-max class is y"),
             R.Output("predicted", "none", R.NON_NEGATIVE, "the arg-max class")]
    + [R.Output(name, "higher", R.UNIT, f"{name.replace('_', ' ')} over the scored samples",
                level="set") for name in SCORE_NAMES],
    adapt=lambda raw, p: _result(*raw), cost=R.forward_passes(1),
    source="document 003, table 4; document 000, section 3",
    summary="classification scores of the explained model (the accuracy gate)")
