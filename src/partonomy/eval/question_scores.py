"""Per-question scores of a run, for looking at it question by question (the HTML report).

:func:`partonomy.eval.scoring.score` reduces questions to per-type rates; this module keeps each
question's own numbers, computed with the same per-sample functions and conventions
(:func:`~partonomy.eval.metrics.text.text_outcome`,
:func:`~partonomy.eval.metrics.matching.question_masks`), so that the mean of the per-question
gIoUs of a group equals its ``macro_giou``. The per-part IoUs of :attr:`QuestionScore.part_ious`
pair masks by part name (as ``paired`` matching does) whatever the run's matching, since they are
shown next to a part's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from partonomy.eval.metrics.inputs import MaskInputs
from partonomy.eval.metrics.masks import pair_stats
from partonomy.eval.metrics.matching import question_masks
from partonomy.eval.metrics.text import text_outcome
from partonomy.io.predictions import Prediction
from partonomy.io.qa_pairs import QAPair


@dataclass(frozen=True)
class QuestionScore:
    """One question's own scores.

    Attributes:
        question_id, question_type: the record's.
        n_parts: distinct parts named by the correct answer.
        chosen: index of the chosen choice (None: the run has no text scores, or this
            question has no prediction).
        correct: whether ``chosen`` is the correct choice (None: the run has no text scores;
            False for an unanswered question under the ``strict`` policy).
        giou: mean IoU of the question's scored (prediction, part) pairs under the run's
            matching and missing policies (None: the run has no masks, or no pair was scored).
        pair_ious: the IoU of each scored pair.
        part_ious: per correct part, in answer order: ``(part, IoU)`` with the prediction of
            that name, IoU None when the model gave no mask for it (masks runs only).
    """

    question_id: str
    question_type: str
    n_parts: int
    chosen: int | None
    correct: bool | None
    giou: float | None
    pair_ious: tuple[float, ...]
    part_ious: tuple[tuple[str, float | None], ...]


def question_scores(
    records: Sequence[QAPair],
    predictions: Mapping[str, Prediction],
    *,
    matching: str = "paired",
    missing: str = "strict",
) -> list[QuestionScore]:
    """Each record's :class:`QuestionScore`, in record order.

    As in the scorer, text is scored when any prediction has ``choice_scores`` and masks when
    any has ``masks``; predicted masks of the wrong size are resized to the ground truth's
    (the scorer warns or refuses; here the question is only being looked at).

    Args:
        records: the QA pairs the run was evaluated on.
        predictions: ``question_id`` -> prediction (a question may have none).
        matching, missing: the run's policies (``results.json`` ``config``).
    """
    has_text = any(p.choice_scores is not None for p in predictions.values())
    has_masks = any(p.masks is not None for p in predictions.values())
    prepare = MaskInputs(resize_mismatched=True, name_check=False)
    out = []
    for index, qa in enumerate(records):
        pred = predictions.get(qa.question_id)
        chosen: int | None = None
        correct: bool | None = None
        if has_text:
            if pred is not None and pred.choice_scores is not None:
                outcome = text_outcome(pred.choice_scores, qa.answer_types, qa.answer_parts)
                chosen, correct = outcome.chosen, outcome.correct
            elif missing == "strict":
                correct = False
        giou: float | None = None
        pair_ious: tuple[float, ...] = ()
        part_ious: tuple[tuple[str, float | None], ...] = ()
        if has_masks:
            preds, truth = prepare(index, qa, pred.masks if pred else None)
            stats = question_masks(preds, truth, matching=matching, missing=missing)  # type: ignore[arg-type]
            pair_ious = tuple(s.iou for s in stats.pairs)
            giou = float(np.mean(pair_ious)) if pair_ious else None
            part_ious = tuple(
                (part, None if part not in preds else pair_stats(preds[part], union).iou)
                for part, union in truth
            )
        out.append(
            QuestionScore(
                question_id=qa.question_id,
                question_type=qa.question_type,
                n_parts=len(dict.fromkeys(qa.correct_parts)),
                chosen=chosen,
                correct=correct,
                giou=giou,
                pair_ious=pair_ious,
                part_ious=part_ious,
            )
        )
    return out
