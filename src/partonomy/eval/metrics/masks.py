"""Mask metrics: per-(question, part) sufficient statistics and the gIoU / cIoU reducers.

Everything works on COCO compressed RLE (``{"size": [h, w], "counts": str}``, see
:mod:`partonomy.io.masks`); nothing is decoded. A pair's statistics are its intersection and
union pixel counts; IoU follows from them with :data:`EMPTY_UNION_IOU` for an empty union.

Reducers over a group of questions (each a :class:`QuestionMasks`):

* micro gIoU: mean IoU over every scored (question, part) pair of the group;
* macro gIoU: mean over questions (with at least one scored pair) of the question's mean IoU;
* cIoU: Σ intersection / Σ union over every scored pair (:data:`EMPTY_UNION_IOU` if Σ union = 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# pycocotools' batched IoU (one C call per question, each RLE parsed once) has no wrapper in
# partonomy.io.masks; it accepts the str-counts RLE of this package as is.
from pycocotools import mask as mask_utils

from partonomy.eval.metrics.base import Metric
from partonomy.eval.metrics.conventions import EMPTY_UNION_IOU
from partonomy.io import masks as mask_io
from partonomy.io.masks import Rle


@dataclass(frozen=True)
class MaskPairStats:
    """Sufficient statistics of one (prediction, ground-truth part) pair.

    Attributes:
        intersection: pixels in both masks.
        union: pixels in either mask (0 when both are empty).
        missing: the part had no predicted mask; the statistics are those of an empty
            prediction (``intersection = 0``, ``union`` = the truth's area).
    """

    intersection: int
    union: int
    missing: bool = False

    @property
    def iou(self) -> float:
        """``intersection / union``, or :data:`EMPTY_UNION_IOU` when the union is empty."""
        return self.intersection / self.union if self.union else EMPTY_UNION_IOU


@dataclass(frozen=True)
class QuestionMasks:
    """One question's mask statistics: the per-sample output of mask metrics.

    Attributes:
        pairs: the scored pairs. Under ``strict`` these include the missing ones; under
            ``lenient`` missing pairs are left out.
        n_missing: number of missing pairs (counted the same in both modes).
    """

    pairs: tuple[MaskPairStats, ...]
    n_missing: int = 0


def area(rle: Rle | None) -> int:
    """Foreground pixel count; ``None`` stands for an empty mask of unknown size (0)."""
    return 0 if rle is None else mask_io.area(rle)


def pair_stats(pred: Rle, truth: Rle | None) -> MaskPairStats:
    """Statistics of one matched pair (same ``size``; the caller checks it)."""
    pred_area = mask_io.area(pred)
    if truth is None:
        return MaskPairStats(0, pred_area)
    truth_area = mask_io.area(truth)
    inter = mask_io.intersection_area(pred, truth) if pred_area and truth_area else 0
    return MaskPairStats(inter, pred_area + truth_area - inter)


def missing_stats(truth: Rle | None) -> MaskPairStats:
    """Statistics of a part without a prediction: an empty prediction against its truth."""
    return MaskPairStats(0, area(truth), missing=True)


def iou_matrix(
    preds: Sequence[Rle], truths: Sequence[Rle]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU, intersection and union of every (prediction, truth) pair, in RLE space.

    Args:
        preds: ``k`` RLEs; ``truths``: ``n`` RLEs, all of one ``size``.

    Returns:
        ``(iou, inter, union)``: float64, int64 and int64 arrays of shape ``(k, n)``. ``iou``
        applies :data:`EMPTY_UNION_IOU` to pairs of two empty masks.
    """
    k, n = len(preds), len(truths)
    if k == 0 or n == 0:
        zeros = np.zeros((k, n), dtype=np.int64)
        return np.zeros((k, n)), zeros, zeros.copy()
    a_pred = np.asarray(mask_utils.area(list(preds)), dtype=np.int64).reshape(k, 1)
    a_truth = np.asarray(mask_utils.area(list(truths)), dtype=np.int64).reshape(1, n)
    iou = np.asarray(mask_utils.iou(list(preds), list(truths), [0] * n), dtype=np.float64)
    iou = iou.reshape(k, n)
    total = a_pred + a_truth  # (k, n) = I + U
    # pycocotools returns I / U; since I + U = a_pred + a_truth, I = iou * total / (1 + iou).
    # The counts are exact integers far below 2**52, so rounding recovers I exactly.
    inter = np.rint(iou * total / (1.0 + iou)).astype(np.int64)
    iou = np.where(total == 0, EMPTY_UNION_IOU, iou)
    return iou, inter, total - inter


# --- reducers ----------------------------------------------------------------------------------


def reduce_micro_giou(questions: Sequence[QuestionMasks]) -> float | None:
    """Mean IoU over every scored pair of the group; None when no pair was scored."""
    ious = [p.iou for q in questions for p in q.pairs]
    return float(np.mean(ious)) if ious else None


def reduce_macro_giou(questions: Sequence[QuestionMasks]) -> float | None:
    """Mean over questions with a scored pair of their mean IoU; None when there is none."""
    means = [float(np.mean([p.iou for p in q.pairs])) for q in questions if q.pairs]
    return float(np.mean(means)) if means else None


def reduce_ciou(questions: Sequence[QuestionMasks]) -> float | None:
    """Σ intersection / Σ union over every scored pair; None when no pair was scored."""
    pairs = [p for q in questions for p in q.pairs]
    if not pairs:
        return None
    inter = sum(p.intersection for p in pairs)
    union = sum(p.union for p in pairs)
    return inter / union if union else EMPTY_UNION_IOU


MICRO_GIOU = Metric(
    "micro_giou", "masks", reduce_micro_giou, description="mean IoU over (question, part) pairs"
)
MACRO_GIOU = Metric(
    "macro_giou", "masks", reduce_macro_giou, description="mean over questions of mean part IoU"
)
CIOU = Metric("ciou", "masks", reduce_ciou, description="Σ intersection / Σ union")
