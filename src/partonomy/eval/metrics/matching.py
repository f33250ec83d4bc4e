"""Pairing predicted masks with ground-truth parts: the per-sample part of the mask metrics.

The four strategies (``paired``, ``greedy``, ``hungarian``, ``union``) and what each does with a
missing prediction are defined in :data:`partonomy.eval.metrics.conventions.Matching`. Each
matcher returns the *strict* statistics of every pair (missing parts included, as empty
predictions); :func:`question_masks` then applies the missing-mask policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from partonomy.eval.metrics.conventions import Matching, MissingPolicy
from partonomy.eval.metrics.masks import (
    MaskPairStats,
    QuestionMasks,
    iou_matrix,
    missing_stats,
    pair_stats,
)
from partonomy.io import masks as mask_io
from partonomy.io.masks import Rle

Truth = Sequence[tuple[str, Rle | None]]
"""The correct answer's parts in ``answer_parts`` order, each with the union of its ground-truth
masks. ``None`` (an empty mask of unknown size) is allowed only when nothing was predicted."""

Matcher = Callable[[Mapping[str, Rle], Truth], list[MaskPairStats]]


def match_paired(predicted: Mapping[str, Rle], truth: Truth) -> list[MaskPairStats]:
    """One pair per part, the prediction keyed by the part's name (other keys are ignored)."""
    out = []
    for part, gt in truth:
        pred = predicted.get(part)
        out.append(missing_stats(gt) if pred is None else pair_stats(pred, gt))
    return out


def _assigned(
    predicted: Mapping[str, Rle],
    truth: Truth,
    assign: Callable[[np.ndarray], list[tuple[int, int]]],
) -> list[MaskPairStats]:
    """Pairs from an assignment ``iou (k, n) -> [(pred index, part index)]``; the rest missing."""
    preds = list(predicted.values())
    if not preds:
        return [missing_stats(gt) for _, gt in truth]
    gts = [gt for _, gt in truth]
    if any(gt is None for gt in gts):
        raise ValueError("a ground-truth mask of unknown size cannot be matched to predictions")
    iou, inter, union = iou_matrix(preds, gts)  # type: ignore[arg-type]
    by_part: dict[int, MaskPairStats] = {
        j: MaskPairStats(int(inter[i, j]), int(union[i, j])) for i, j in assign(iou)
    }
    return [by_part.get(j) or missing_stats(gt) for j, gt in enumerate(gts)]


def _greedy_assignment(iou: np.ndarray) -> list[tuple[int, int]]:
    k, n = iou.shape
    # Part-major flat order, stably sorted by decreasing IoU: ties go to the lower part index,
    # then the lower prediction index.
    order = np.argsort(-iou.T.ravel(), kind="stable")
    used_pred: set[int] = set()
    used_part: set[int] = set()
    pairs = []
    for flat in order.tolist():
        j, i = divmod(flat, k)
        if i in used_pred or j in used_part:
            continue
        pairs.append((i, j))
        used_pred.add(i)
        used_part.add(j)
        if len(pairs) == min(k, n):
            break
    return pairs


def _hungarian_assignment(iou: np.ndarray) -> list[tuple[int, int]]:
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return list(zip(rows.tolist(), cols.tolist()))


def match_greedy(predicted: Mapping[str, Rle], truth: Truth) -> list[MaskPairStats]:
    """Pairs taken by decreasing IoU while both sides are free (names ignored)."""
    return _assigned(predicted, truth, _greedy_assignment)


def match_hungarian(predicted: Mapping[str, Rle], truth: Truth) -> list[MaskPairStats]:
    """The assignment maximising the summed IoU (names ignored)."""
    return _assigned(predicted, truth, _hungarian_assignment)


def match_union(predicted: Mapping[str, Rle], truth: Truth) -> list[MaskPairStats]:
    """One pair: the union of all predictions against the union of all parts' truth."""
    gts = [gt for _, gt in truth if gt is not None]
    if not predicted:
        gt_union = mask_io.union(gts) if gts else None
        return [missing_stats(gt_union)]
    preds = list(predicted.values())
    pred_union = mask_io.union(preds)
    gt_union = mask_io.union(gts, size=pred_union["size"])
    return [pair_stats(pred_union, gt_union)]


MATCHERS: dict[Matching, Matcher] = {
    "paired": match_paired,
    "greedy": match_greedy,
    "hungarian": match_hungarian,
    "union": match_union,
}


def question_masks(
    predicted: Mapping[str, Rle] | None,
    truth: Truth,
    *,
    matching: Matching,
    missing: MissingPolicy,
) -> QuestionMasks:
    """Per-sample mask statistics of one question (the ``masks`` sample of mask metrics).

    Args:
        predicted: part name -> predicted RLE, all of the truth's size; None or ``{}`` when the
            question has no predicted mask (every pair is then missing).
        truth: see :data:`Truth`.
        matching: a key of :data:`MATCHERS`.
        missing: ``"strict"`` keeps missing pairs as empty predictions; ``"lenient"`` drops them.

    Returns:
        The scored pairs and the number of missing pairs.
    """
    stats = MATCHERS[matching](predicted or {}, truth)
    n_missing = sum(s.missing for s in stats)
    kept = stats if missing == "strict" else [s for s in stats if not s.missing]
    return QuestionMasks(tuple(kept), n_missing)
