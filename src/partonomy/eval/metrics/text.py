"""Text metrics: the chosen answer (argmin of the scores, with the tie rule) and part P/R/F1.

Per sample: :func:`text_outcome` (part question) and :func:`object_outcome` (object question of
part_to_whole / whole_to_part) give a :class:`TextOutcome`. Reducers: :data:`ACCURACY`,
:data:`PART_PRECISION`, :data:`PART_RECALL`, :data:`PART_F1` and :data:`OBJECT_ACCURACY`.
Precision and recall are micro-averaged: summed true positives over summed predicted / true parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from partonomy.eval.metrics.base import Metric
from partonomy.io.qa_pairs import CORRECT


@dataclass(frozen=True)
class TextOutcome:
    """What one answered (or, under ``strict``, unanswered) question contributes to text metrics.

    Attributes:
        chosen: index of the chosen choice, or None when the question was not answered.
        correct: whether the chosen choice is the correct one (False when unanswered).
        tied: whether several choices shared the minimal score.
        true_positives: parts of the chosen choice that are correct parts (normalised sets).
        n_predicted: distinct parts of the chosen choice (0 when unanswered).
        n_truth: distinct correct parts. Object outcomes leave the three part counts at 0.
    """

    chosen: int | None
    correct: bool
    tied: bool = False
    true_positives: int = 0
    n_predicted: int = 0
    n_truth: int = 0


def normalise_part(name: str) -> str:
    """The form in which part names are compared (``PART_NORMALISATION``): stripped, lower-cased."""
    return name.strip().lower()


def choose(scores: Sequence[float], answer_types: Sequence[str]) -> tuple[int, bool]:
    """The chosen choice: argmin of ``scores`` (lower = better), ties broken by
    :data:`~partonomy.eval.metrics.conventions.TIE_RULE`.

    Args:
        scores: one finite score per choice.
        answer_types: ``'correct'`` / ``'incorrect'`` per choice, same length.

    Returns:
        ``(index, tied)``: the chosen index, and whether two or more choices share the minimum
        (exact equality). When tied, the index is the lowest-index incorrect choice among the
        tied ones.
    """
    best = min(scores)
    tied_idx = [k for k, s in enumerate(scores) if s == best]
    if len(tied_idx) == 1:
        return tied_idx[0], False
    incorrect = [k for k in tied_idx if answer_types[k] != CORRECT]
    # With exactly one correct choice a tie always holds an incorrect one; the fallback is for
    # malformed in-memory records only.
    return (incorrect[0] if incorrect else tied_idx[0]), True


def text_outcome(
    scores: Sequence[float], answer_types: Sequence[str], answer_parts: Sequence[Sequence[str]]
) -> TextOutcome:
    """Score one part question: the chosen choice and its parts against the correct parts."""
    chosen, tied = choose(scores, answer_types)
    truth = {normalise_part(p) for p in answer_parts[answer_types.index(CORRECT)]}
    predicted = {normalise_part(p) for p in answer_parts[chosen]}
    return TextOutcome(
        chosen=chosen,
        correct=answer_types[chosen] == CORRECT,
        tied=tied,
        true_positives=len(predicted & truth),
        n_predicted=len(predicted),
        n_truth=len(truth),
    )


def unanswered_outcome(
    answer_types: Sequence[str], answer_parts: Sequence[Sequence[str]]
) -> TextOutcome:
    """A part question without scores under ``strict``: wrong, and none of its parts recalled."""
    truth = {normalise_part(p) for p in answer_parts[answer_types.index(CORRECT)]}
    return TextOutcome(chosen=None, correct=False, n_truth=len(truth))


def object_outcome(scores: Sequence[float] | None, answer_types: Sequence[str]) -> TextOutcome:
    """Score one object question; ``scores=None`` (unanswered, ``strict``) counts as wrong."""
    if scores is None:
        return TextOutcome(chosen=None, correct=False)
    chosen, tied = choose(scores, answer_types)
    return TextOutcome(chosen=chosen, correct=answer_types[chosen] == CORRECT, tied=tied)


# --- reducers ----------------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def reduce_accuracy(outcomes: Sequence[TextOutcome]) -> float | None:
    """Fraction of outcomes that are correct; None for an empty group."""
    return _ratio(sum(o.correct for o in outcomes), len(outcomes))


def reduce_part_precision(outcomes: Sequence[TextOutcome]) -> float | None:
    """Σ true positives / Σ predicted parts; None when nothing was predicted."""
    return _ratio(sum(o.true_positives for o in outcomes), sum(o.n_predicted for o in outcomes))


def reduce_part_recall(outcomes: Sequence[TextOutcome]) -> float | None:
    """Σ true positives / Σ correct parts; None when the group has no correct parts."""
    return _ratio(sum(o.true_positives for o in outcomes), sum(o.n_truth for o in outcomes))


def reduce_part_f1(outcomes: Sequence[TextOutcome]) -> float | None:
    """Harmonic mean of micro precision and recall; 0 when both are 0, None if either is None."""
    p, r = reduce_part_precision(outcomes), reduce_part_recall(outcomes)
    if p is None or r is None:
        return None
    return 2 * p * r / (p + r) if p + r else 0.0


ACCURACY = Metric("accuracy", "text", reduce_accuracy, description="multiple-choice accuracy")
PART_PRECISION = Metric(
    "part_precision", "text", reduce_part_precision, description="micro part precision"
)
PART_RECALL = Metric("part_recall", "text", reduce_part_recall, description="micro part recall")
PART_F1 = Metric("part_f1", "text", reduce_part_f1, description="F1 of micro part P and R")
OBJECT_ACCURACY = Metric(
    "object_accuracy", "object", reduce_accuracy, description="object-question accuracy"
)
