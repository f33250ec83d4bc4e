"""Per-sample metrics and their reducers for the non-PARTONOMY tasks (hand-checked in tests).

Segmentation (ReasonSeg, refCOCO family), LISA's protocol:

* :func:`mask_stats` -> ``(intersection, union)`` of one predicted mask against one target, pixels
  whose target value is :data:`IGNORE_VALUE` (255) excluded from both;
* :func:`reduce_masks`: ``giou`` = mean of per-mask IoU, where a mask with an empty union (empty
  prediction on an empty target) counts :data:`EMPTY_UNION_IOU` (1.0); ``ciou`` = total
  intersection / total union (null when every union is empty).

VQA:

* :func:`soft_vqa_accuracy`: the official TextVQA/VQAv2 accuracy: mean over the 10 leave-one-out
  subsets of ``min(1, matches / 3)``, answers compared after :func:`normalize_answer`;
* :func:`exact_match` (GQA): normalised prediction == normalised answer;
* :func:`pope_reads_yes`: the official POPE rule (first sentence, commas dropped, 'no' if a word
  is ``No``/``no``/``not``, else 'yes'); :func:`reduce_pope` gives accuracy, precision, recall and
  F1 with yes as positive, the yes ratio and the count;
* :func:`original_vqa_eval`: the original PLUM/PixelLM ``validate_vqa`` rule, offered as an
  option for GQA and POPE (``docs/tasks.md`` says what it does and why it gives other numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from partonomy.tasks.normalize import normalize_answer

IGNORE_VALUE = 255
"""Target pixels with this value are excluded from intersection and union."""
EMPTY_UNION_IOU = 1.0
"""IoU of an empty prediction on an empty target (LISA's ``acc_iou[union == 0] += 1``)."""


@dataclass(frozen=True)
class MaskStats:
    """One scored mask: pixel counts (ignore pixels excluded)."""

    intersection: int
    union: int

    @property
    def iou(self) -> float:
        return EMPTY_UNION_IOU if self.union == 0 else self.intersection / self.union


def mask_stats(pred: np.ndarray, target: np.ndarray) -> MaskStats:
    """``pred``: bool ``(H, W)``; ``target``: uint8 ``(H, W)`` with 0, 1 and 255 (ignore)."""
    if pred.shape != target.shape:
        raise ValueError(f"mask shapes differ: prediction {pred.shape}, target {target.shape}")
    valid = target != IGNORE_VALUE
    p = pred.astype(bool) & valid
    t = (target == 1) & valid
    return MaskStats(int((p & t).sum()), int((p | t).sum()))


def reduce_masks(stats: Sequence[MaskStats]) -> dict[str, float | None]:
    """``{"giou", "ciou"}`` over the scored masks (null when there are none)."""
    if not stats:
        return {"giou": None, "ciou": None}
    union = sum(s.union for s in stats)
    return {
        "giou": float(np.mean([s.iou for s in stats])),
        "ciou": None if union == 0 else sum(s.intersection for s in stats) / union,
    }


def soft_vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Official soft accuracy of one prediction against the human answers (usually 10)."""
    if not answers:
        raise ValueError("soft VQA accuracy needs at least one human answer")
    pred = normalize_answer(prediction)
    gts = [normalize_answer(a) for a in answers]
    if len(gts) == 1:
        return float(pred == gts[0])
    scores = []
    for left_out in range(len(gts)):
        matches = sum(1 for k, g in enumerate(gts) if k != left_out and g == pred)
        scores.append(min(1.0, matches / 3))
    return float(np.mean(scores))


def exact_match(prediction: str, answer: str) -> float:
    """1.0 when the normalised prediction equals the normalised answer, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(answer))


def pope_reads_yes(answer: str) -> bool:
    """The official POPE rule: keep the text before the first ``.``, drop commas, split on spaces;
    'no' if any word is ``No``, ``no`` or ``not``, else 'yes' (so an empty answer reads 'yes')."""
    first = answer.split(".")[0].replace(",", "")
    return not any(w in ("No", "no", "not") for w in first.split(" "))


def original_vqa_eval(prediction: str, truth: str | Sequence[str]) -> float:
    """The original's ``validate_vqa`` score of one generated answer (PLUM and PixelLM).

    It calls TextVQA's soft accuracy with the ground truth as given: GQA passes
    ``[answer, fullAnswer]``, POPE passes the bare label string, whose *characters* become the
    "human answers". When that score is exactly 0 it falls back to 1.0 if any normalised
    ground-truth answer is a substring of the normalised prediction.
    """
    answers = [truth] if isinstance(truth, str) else list(truth)
    pred = normalize_answer(prediction)
    # iterating a bare string yields its characters: the quirk the docstring describes
    gts = [normalize_answer(a) for a in truth]
    scores = []
    for left_out in range(len(gts)):
        matches = sum(1 for k, g in enumerate(gts) if k != left_out and g == pred)
        scores.append(min(1.0, matches / 3))
    score = float(np.mean(scores)) if pred in gts else 0.0
    if score == 0.0 and any(normalize_answer(a) in pred for a in answers):
        return 1.0
    return score


@dataclass(frozen=True)
class PopeOutcome:
    """One POPE question: what the answer was read as, and the label (True = yes)."""

    said_yes: bool
    label_yes: bool


def reduce_pope(outcomes: Sequence[PopeOutcome]) -> dict[str, float | int | None]:
    """Accuracy, precision, recall, F1 (yes = positive), yes ratio and ``n_questions``."""
    n = len(outcomes)
    if n == 0:
        return dict.fromkeys(("accuracy", "precision", "recall", "f1", "yes_ratio"), None) | {
            "n_questions": 0
        }
    tp = sum(o.said_yes and o.label_yes for o in outcomes)
    fp = sum(o.said_yes and not o.label_yes for o in outcomes)
    fn = sum(not o.said_yes and o.label_yes for o in outcomes)
    tn = n - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "accuracy": (tp + tn) / n,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": (tp + fp) / n,
        "n_questions": n,
    }
