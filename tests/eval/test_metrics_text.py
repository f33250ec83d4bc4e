"""Text metrics by hand: the tie rule, accuracy, micro part precision / recall / F1."""

from __future__ import annotations

import pytest

from partonomy.eval.metrics.text import (
    ACCURACY,
    OBJECT_ACCURACY,
    PART_F1,
    PART_PRECISION,
    PART_RECALL,
    TextOutcome,
    choose,
    object_outcome,
    text_outcome,
    unanswered_outcome,
)
from partonomy.registries import METRICS

C, X = "correct", "incorrect"  # X: a wrong choice


def test_argmin_without_tie():
    assert choose([0.5, 0.2, 0.9, 0.3, 0.4], [C, X, X, X, X]) == (1, False)
    assert choose([0.1, 0.2, 0.9, 0.3, 0.4], [C, X, X, X, X]) == (0, False)


def test_tie_between_correct_and_incorrect_goes_to_incorrect():
    # the correct choice (index 0) ties with choice 3: the original picked 0 (correct).
    assert choose([1.0, 2.0, 3.0, 1.0, 5.0], [C, X, X, X, X]) == (3, True)
    # the correct choice is not first: lowest-index incorrect among the tied is chosen.
    assert choose([4.0, 1.0, 1.0, 1.0, 5.0], [X, X, C, X, X]) == (1, True)
    assert choose([4.0, 2.0, 1.0, 1.0, 1.0], [X, X, C, X, X]) == (3, True)


def test_tie_among_incorrect_only():
    # the correct choice scores worse; choices 2 and 4 tie at the minimum: the lower index.
    assert choose([3.0, 2.0, 1.0, 2.5, 1.0], [C, X, X, X, X]) == (2, True)


def test_text_outcome_parts_normalised():
    parts = [["Wing ", "tail"], ["wing"], ["tail", "door", "wing"], ["engine"], ["wing", "WING"]]
    out = text_outcome([0.3, 0.2, 0.1, 0.4, 0.5], [C, X, X, X, X], parts)
    assert out == TextOutcome(chosen=2, correct=False, tied=False, true_positives=2,
                              n_predicted=3, n_truth=2)  # fmt: skip
    # duplicates after normalisation count once
    out = text_outcome([0.3, 0.2, 0.1, 0.4, 0.0], [C, X, X, X, X], parts)
    assert (out.true_positives, out.n_predicted, out.n_truth) == (1, 1, 2)


def test_micro_precision_recall_f1_by_hand():
    # Q1: truth {wing, tail, engine}, chosen {wing, tail, door}: TP 2, 3 predicted, 3 true.
    # Q2: truth {wheel}, chosen {wheel, seat}: TP 1, 2 predicted, 1 true.
    # Q3: unanswered (strict): truth {a, b}: TP 0, 0 predicted, 2 true.
    types = [C, X, X, X, X]
    q1 = text_outcome(
        [0.9, 0.1, 0.5, 0.5, 0.5],
        types,
        [["wing", "tail", "engine"], ["wing", "tail", "door"], ["x"], ["y"], ["z"]],
    )
    q2 = text_outcome(
        [0.9, 0.8, 0.1, 0.5, 0.5], types, [["wheel"], ["a"], ["wheel", "seat"], ["b"], ["c"]]
    )
    q3 = unanswered_outcome(types, [["a", "b"], ["a"], ["b"], ["c"], ["d"]])
    assert PART_PRECISION([q1, q2]) == pytest.approx(3 / 5)
    assert PART_RECALL([q1, q2]) == pytest.approx(3 / 4)
    assert PART_F1([q1, q2]) == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert PART_PRECISION([q1, q2, q3]) == pytest.approx(3 / 5)  # nothing predicted for q3
    assert PART_RECALL([q1, q2, q3]) == pytest.approx(3 / 6)
    assert ACCURACY([q1, q2, q3]) == 0.0


def test_accuracy_and_nulls():
    right = text_outcome([0.1, 1, 1, 1, 1], [C, X, X, X, X], [["a"]] * 5)
    wrong = text_outcome([1, 0.1, 1, 1, 1], [C, X, X, X, X], [["a"], ["b"], ["c"], ["d"], ["e"]])
    assert ACCURACY([right, wrong, wrong, right]) == 0.5
    assert ACCURACY([]) is None and PART_PRECISION([]) is None and PART_F1([]) is None
    zero = TextOutcome(chosen=1, correct=False, true_positives=0, n_predicted=2, n_truth=1)
    assert PART_F1([zero]) == 0.0


def test_object_accuracy():
    outcomes = [
        object_outcome([0.1, 0.5, 0.5, 0.5, 0.5], [C, X, X, X, X]),  # right
        object_outcome([0.5, 0.1, 0.5, 0.5, 0.5], [C, X, X, X, X]),  # wrong
        object_outcome([0.5, 0.5, 0.1, 0.5, 0.5], [X, X, C, X, X]),  # right
        object_outcome([0.1, 0.1, 0.5, 0.5, 0.5], [C, X, X, X, X]),  # tie -> wrong
        object_outcome(None, [C, X, X, X, X]),  # unanswered (strict) -> wrong
    ]
    assert [o.correct for o in outcomes] == [True, False, True, False, False]
    assert outcomes[3].tied and outcomes[4].chosen is None
    assert OBJECT_ACCURACY(outcomes) == pytest.approx(2 / 5)


def test_text_metrics_registered():
    for name in ("accuracy", "part_precision", "part_recall", "part_f1"):
        assert METRICS.get(name).sample_kind == "text"
    assert METRICS.get("object_accuracy").sample_kind == "object"
