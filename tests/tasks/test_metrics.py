"""Task metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from partonomy.tasks.metrics import (
    MaskStats,
    PopeOutcome,
    exact_match,
    mask_stats,
    original_vqa_eval,
    pope_reads_yes,
    reduce_masks,
    reduce_pope,
    soft_vqa_accuracy,
)

TEN = ["dakota"] * 6 + ["dakota digital"] * 3 + ["clos culombu"]


def test_soft_accuracy_leave_one_out() -> None:
    # 'dakota' x6: every 9-subset has >= 5 matches -> 1.0
    assert soft_vqa_accuracy("Dakota", TEN) == 1.0
    # 'dakota digital' x3: leaving out one of the 3 -> 2/3 (3 subsets); else 3/3=1 (7 subsets)
    assert soft_vqa_accuracy("dakota digital", TEN) == pytest.approx((3 * 2 / 3 + 7) / 10)
    # 'clos culombu' x1: leaving it out -> 0; else 1/3 (9 subsets)
    assert soft_vqa_accuracy("clos culombu", TEN) == pytest.approx(9 * (1 / 3) / 10)
    assert soft_vqa_accuracy("nothing", TEN) == 0.0


def test_soft_accuracy_normalises_numbers_and_articles() -> None:
    answers = ["2"] * 10
    assert soft_vqa_accuracy("two", answers) == 1.0
    assert soft_vqa_accuracy("the 2", answers) == 1.0


def test_exact_match_after_normalisation() -> None:
    assert exact_match("Umbrella.", "umbrella") == 1.0
    assert exact_match("an umbrella", "umbrella") == 1.0
    assert exact_match("umbrellas", "umbrella") == 0.0


@pytest.mark.parametrize(
    ("answer", "yes"),
    [
        ("Yes, there is a dog.", True),
        ("No, there is no dog.", False),
        ("There is not a dog in the image.", False),
        ("Yes. But no cat.", True),  # only the first sentence counts
        ("No", False),
        ("no, it is absent", False),  # the comma is dropped before splitting
        ("NO", True),  # case-sensitive words: No, no, not
        ("I don't know", True),  # "don't" is not "not"
        ("", True),  # an empty answer reads yes
    ],
)
def test_pope_first_sentence_rule(answer: str, yes: bool) -> None:
    assert pope_reads_yes(answer) is yes


def test_pope_reduction() -> None:
    # said/label: yes/yes, yes/no, no/yes, no/no, yes/yes
    outcomes = [PopeOutcome(s, label) for s, label in [(1, 1), (1, 0), (0, 1), (0, 0), (1, 1)]]
    m = reduce_pope(outcomes)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == pytest.approx(3 / 5)
    assert m["n_questions"] == 5


def test_pope_reduction_without_yes_predictions() -> None:
    m = reduce_pope([PopeOutcome(False, False), PopeOutcome(False, True)])
    assert m["precision"] is None and m["recall"] == 0.0 and m["f1"] is None
    assert m["accuracy"] == 0.5 and m["yes_ratio"] == 0.0


def test_mask_stats_excludes_ignore_pixels() -> None:
    target = np.array([[1, 1, 0, 255], [0, 0, 0, 255]], dtype=np.uint8)
    pred = np.array([[1, 0, 1, 1], [0, 0, 0, 1]], dtype=bool)
    s = mask_stats(pred, target)
    assert (s.intersection, s.union) == (1, 3)  # the two 255 pixels count nowhere


def test_giou_is_a_mean_and_ciou_a_ratio_of_sums() -> None:
    stats = [MaskStats(1, 2), MaskStats(90, 100), MaskStats(0, 0)]
    m = reduce_masks(stats)
    assert m["giou"] == pytest.approx((0.5 + 0.9 + 1.0) / 3)  # empty vs empty counts 1
    assert m["ciou"] == pytest.approx(91 / 102)


def test_empty_prediction_on_a_target_scores_zero() -> None:
    target = np.zeros((3, 3), dtype=np.uint8)
    target[1, 1] = 1
    assert mask_stats(np.zeros((3, 3), bool), target).iou == 0.0
    assert reduce_masks([]) == {"giou": None, "ciou": None}


def test_original_rule_on_pope_labels() -> None:
    # the label's characters are the "human answers", so only the substring fallback scores
    assert original_vqa_eval("Yes", "yes") == 1.0
    assert original_vqa_eval("I do not know", "no") == 1.0  # "no" in "not", "know"
    assert original_vqa_eval("No, there is none", "yes") == 0.0
    # where the two rules disagree: the official rule reads "I don't know" as yes (wrong for a
    # "no" label); the original finds "no" inside "know"
    assert pope_reads_yes("I don't know") is True
    assert original_vqa_eval("I don't know", "no") == 1.0


def test_original_rule_on_gqa_answer_pairs() -> None:
    # [answer, fullAnswer]: an exact short answer scores 1/6, a long one containing it 1.0
    truth = ["umbrella", "The man is holding an umbrella."]
    assert original_vqa_eval("umbrella", truth) == pytest.approx(1 / 6)
    assert original_vqa_eval("He holds an umbrella", truth) == 1.0
    assert exact_match("He holds an umbrella", truth[0]) == 0.0
