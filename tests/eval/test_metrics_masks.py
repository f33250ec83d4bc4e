"""Mask metrics and matching on hand-computed 4x4 / 8x8 masks (every value worked out by hand)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from partonomy.eval.metrics import conventions
from partonomy.eval.metrics.masks import (
    CIOU,
    MACRO_GIOU,
    MICRO_GIOU,
    MaskPairStats,
    QuestionMasks,
    iou_matrix,
    pair_stats,
)
from partonomy.eval.metrics.matching import MATCHERS, question_masks
from partonomy.io import masks as mask_io
from partonomy.registries import METRICS


def span(start: int, stop: int, size: int = 8) -> dict:
    """An RLE of a ``size x size`` mask whose row-major pixels ``start..stop-1`` are set."""
    flat = np.zeros(size * size, dtype=bool)
    flat[start:stop] = True
    return mask_io.encode(flat.reshape(size, size))


def box(r0: int, r1: int, c0: int, c1: int, size: int = 4) -> dict:
    dense = np.zeros((size, size), dtype=bool)
    dense[r0:r1, c0:c1] = True
    return mask_io.encode(dense)


def close(value: float | None, expected: Fraction | float) -> bool:
    return value is not None and abs(value - float(expected)) < 1e-12


# --- per-pair statistics ---------------------------------------------------------------------


def test_pair_stats_4x4():
    # truth: top-left 2x2 (4 px); prediction: rows 1-2, cols 1-2 (4 px); they share pixel (1, 1).
    stats = pair_stats(box(1, 3, 1, 3), box(0, 2, 0, 2))
    assert (stats.intersection, stats.union) == (1, 7)
    assert close(stats.iou, Fraction(1, 7))


def test_empty_conventions():
    empty = mask_io.empty(4, 4)
    assert conventions.EMPTY_UNION_IOU == 1.0
    both_empty = pair_stats(empty, empty)
    assert (both_empty.intersection, both_empty.union, both_empty.iou) == (0, 0, 1.0)
    empty_pred = pair_stats(empty, box(0, 2, 0, 2))
    assert (empty_pred.union, empty_pred.iou) == (4, 0.0)
    empty_truth = pair_stats(box(0, 1, 0, 1), empty)
    assert (empty_truth.union, empty_truth.iou) == (1, 0.0)
    assert MaskPairStats(0, 0, missing=True).iou == 1.0


def test_iou_matrix_recovers_exact_intersections():
    rng = np.random.default_rng(0)
    preds = [rng.random((8, 8)) > 0.5 for _ in range(3)] + [np.zeros((8, 8), bool)]
    truths = [rng.random((8, 8)) > 0.4 for _ in range(2)] + [np.zeros((8, 8), bool)]
    iou, inter, union = iou_matrix(
        [mask_io.encode(m) for m in preds], [mask_io.encode(m) for m in truths]
    )
    for i, p in enumerate(preds):
        for j, t in enumerate(truths):
            assert inter[i, j] == np.logical_and(p, t).sum()
            assert union[i, j] == np.logical_or(p, t).sum()
    assert iou[3, 2] == 1.0  # both empty: the empty-union convention, not pycocotools' 0


# --- reducers ----------------------------------------------------------------------------------


def test_giou_differs_from_ciou():
    # part a: truth rows 0-1 (16 px), prediction row 0 (8 px): I = 8, U = 16, IoU 1/2.
    # part b: truth pixel 63, prediction pixel 62: I = 0, U = 2, IoU 0.
    q = QuestionMasks((pair_stats(span(0, 8), span(0, 16)), pair_stats(span(62, 63), span(63, 64))))
    assert close(MICRO_GIOU([q]), Fraction(1, 4))  # (1/2 + 0) / 2
    assert close(CIOU([q]), Fraction(8, 18))  # (8 + 0) / (16 + 2)


def test_micro_vs_macro():
    q1 = QuestionMasks((MaskPairStats(8, 16), MaskPairStats(0, 4)))  # IoUs 1/2, 0
    q2 = QuestionMasks((MaskPairStats(5, 5),))  # IoU 1
    q3 = QuestionMasks(())  # nothing scored: ignored by every reducer
    assert close(MICRO_GIOU([q1, q2, q3]), Fraction(1, 2))  # (1/2 + 0 + 1) / 3
    assert close(MACRO_GIOU([q1, q2, q3]), Fraction(5, 8))  # (1/4 + 1) / 2
    assert close(CIOU([q1, q2, q3]), Fraction(13, 25))


def test_reducers_null_and_empty_union():
    assert MICRO_GIOU([]) is None and MACRO_GIOU([]) is None and CIOU([]) is None
    assert MICRO_GIOU([QuestionMasks(())]) is None
    assert CIOU([QuestionMasks((MaskPairStats(0, 0),))]) == conventions.EMPTY_UNION_IOU


def test_metrics_registered():
    for name in ("micro_giou", "macro_giou", "ciou"):
        metric = METRICS.get(name)
        assert metric.name == name and metric.sample_kind == "masks"


# --- matching strategies -----------------------------------------------------------------------
# Truth (8x8, row-major pixel spans): a = [0, 16), b = [0, 4). Predictions: p0 = [0, 12) named
# "a", p1 = [0, 24) named "c" (no such part). IoU (rows p0, p1; columns a, b):
#     p0: a 12/16 = 3/4, b 4/12 = 1/3;   p1: a 16/24 = 2/3, b 4/24 = 1/6.

TRUTH = [("a", span(0, 16)), ("b", span(0, 4))]
PREDICTED = {"a": span(0, 12), "c": span(0, 24)}


@pytest.mark.parametrize(
    ("matching", "micro", "ciou", "n_missing"),
    [
        # by name: a <- p0 (3/4); b has no prediction (strict: empty, IoU 0, union 4).
        ("paired", Fraction(3, 8), Fraction(12, 20), 1),
        # best pair first: p0-a (3/4), then p1-b (1/6).
        ("greedy", Fraction(11, 24), Fraction(12 + 4, 16 + 24), 0),
        # max summed IoU: p0-b (1/3) + p1-a (2/3) = 1 > 3/4 + 1/6.
        ("hungarian", Fraction(1, 2), Fraction(4 + 16, 12 + 24), 0),
        # one pair: [0, 24) against [0, 16): 16 / 24.
        ("union", Fraction(2, 3), Fraction(2, 3), 0),
    ],
)
def test_matching_strategies_differ(matching, micro, ciou, n_missing):
    q = question_masks(PREDICTED, TRUTH, matching=matching, missing="strict")
    assert q.n_missing == n_missing
    assert len(q.pairs) == (1 if matching == "union" else 2)
    assert close(MICRO_GIOU([q]), micro)
    assert close(CIOU([q]), ciou)


def test_matcher_names_are_the_conventions():
    assert tuple(MATCHERS) == conventions.MATCHINGS


def test_strict_vs_lenient_missing_mask():
    # part a: I = 8, U = 16 (IoU 1/2); part b (4 px) has no prediction.
    truth = [("a", span(0, 16)), ("b", span(60, 64))]
    predicted = {"a": span(0, 8)}
    strict = question_masks(predicted, truth, matching="paired", missing="strict")
    lenient = question_masks(predicted, truth, matching="paired", missing="lenient")
    assert (len(strict.pairs), strict.n_missing) == (2, 1)
    assert (len(lenient.pairs), lenient.n_missing) == (1, 1)
    assert close(MICRO_GIOU([strict]), Fraction(1, 4))
    assert close(CIOU([strict]), Fraction(8, 20))  # the missing truth's 4 px count in the union
    assert close(MICRO_GIOU([lenient]), Fraction(1, 2))
    assert close(CIOU([lenient]), Fraction(1, 2))


@pytest.mark.parametrize("matching", ["greedy", "hungarian"])
def test_fewer_predictions_than_parts_by_iou(matching):
    # one prediction [0, 4) for parts a = [0, 16) (IoU 1/4) and b = [0, 4) (IoU 1): b is matched,
    # a is missing.
    q = question_masks({"x": span(0, 4)}, TRUTH, matching=matching, missing="strict")
    assert q.n_missing == 1
    assert [p.iou for p in q.pairs] == [0.0, 1.0]
    assert question_masks({"x": span(0, 4)}, TRUTH, matching=matching, missing="lenient").pairs == (
        MaskPairStats(4, 4),
    )


def test_extra_predictions_are_ignored_by_iou_matching():
    predicted = {"p": span(0, 16), "q": span(0, 4), "r": span(40, 64)}
    for matching in ("greedy", "hungarian"):
        q = question_masks(predicted, TRUTH, matching=matching, missing="strict")
        assert [p.iou for p in q.pairs] == [1.0, 1.0] and q.n_missing == 0


def test_no_prediction_at_all():
    for matching in conventions.MATCHINGS:
        q = question_masks(None, TRUTH, matching=matching, missing="strict")
        expected = 1 if matching == "union" else 2
        assert q.n_missing == expected and len(q.pairs) == expected
        assert all(p.iou == 0.0 for p in q.pairs)
        assert question_masks({}, TRUTH, matching=matching, missing="lenient").pairs == ()


def test_empty_truth_and_empty_prediction_match_perfectly():
    empty = mask_io.empty(8, 8)
    q = question_masks({"a": empty}, [("a", empty)], matching="paired", missing="strict")
    assert q.pairs[0].iou == 1.0
    # a missing prediction for an empty truth is an empty prediction: IoU 1 under strict.
    q = question_masks({}, [("a", empty)], matching="paired", missing="strict")
    assert (q.pairs[0].iou, q.n_missing) == (1.0, 1)
