"""The interface of a question type: turn one image into a question draft, or decline.

A question type decides the question sentence, the ground-truth parts and what the distractor
sampler may use; :mod:`partonomy.qa.generate` then makes the wrong answers, the object question
(for the part-whole types) and the record. Each type is one object registered under its name
in :data:`partonomy.registries.QUESTION_TYPES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from partonomy.qa.concepts import ConceptIndex, ImageContext
from partonomy.qa.templates import GENERIC_SUBJECT


@dataclass(frozen=True)
class QuestionDraft:
    """A part question before its distractors are made.

    Attributes:
        question: the question sentence.
        answer_prefix: the answer sentence up to the colon; an answer is
            ``templates.part_answer(answer_prefix, parts)``.
        correct_parts: the ground-truth parts, sorted, non-empty; the image's own names (mask keys).
        related_parts: parts the distractor sampler favours (the object's and the compared
            concepts' parts), sorted; parts never seen in the dataset are dropped later.
        no_add_keys: canonical keys whose parts a distractor may not add (for intersection and
            difference types: the ground truth's keys, so a synonym cannot sneak back in).
        concepts: the concepts the question compares with, in question order (may be empty).
    """

    question: str
    answer_prefix: str
    correct_parts: tuple[str, ...]
    related_parts: tuple[str, ...]
    no_add_keys: frozenset[str] = frozenset()
    concepts: tuple[str, ...] = ()


class QuestionGenerator(Protocol):
    """One question type.

    Attributes:
        name: the ``question_type`` it writes (a name of :data:`partonomy.io.qa_pairs.QUESTION_TYPES`).
        asks_object: whether the record chains the object question (part_to_whole, whole_to_part).
    """

    name: str
    asks_object: bool

    def draft(
        self, image: ImageContext, concepts: ConceptIndex, rng: np.random.Generator
    ) -> QuestionDraft | None:
        """The part question for ``image``, or None when the image does not allow this type
        (no concept to compare with, or an empty answer). Draws from ``rng`` only as needed."""
        ...


def subject(image: ImageContext, with_label: bool) -> str:
    """What the question calls the object: its label, or the generic word "object"."""
    return image.label if with_label else GENERIC_SUBJECT


def related(*groups: tuple[str, ...]) -> tuple[str, ...]:
    """Sorted union of part-name groups."""
    return tuple(sorted({p for group in groups for p in group}))


def one_concept_draft(
    image: ImageContext,
    concepts: ConceptIndex,
    rng: np.random.Generator,
    candidates: np.ndarray,
    *,
    inside: bool,
    with_label: bool,
    question: Callable[[str, str], str],
    prefix: Callable[[str, str], str],
) -> QuestionDraft | None:
    """The draft of a question comparing the image with one concept ``C`` (intersection and
    exclusion types).

    ``C`` is drawn uniformly from ``candidates`` (columns of ``concepts.objects``); the answer is
    the image's parts ``C`` has (``inside``) or does not have; distractors may not add them back.
    ``question`` / ``prefix`` are the type's templates, called with ``(subject, C)``.
    Returns None when there is no candidate.
    """
    if len(candidates) == 0:
        return None
    concept = concepts.objects[int(candidates[rng.integers(len(candidates))])]
    correct = image.parts_where(concepts.object_keys[concept], inside=inside)
    who = subject(image, with_label)
    return QuestionDraft(
        question=question(who, concept),
        answer_prefix=prefix(who, concept),
        correct_parts=correct,
        related_parts=related(image.object_parts, concepts.object_parts[concept]),
        no_add_keys=frozenset(image.keys[p] for p in correct),
        concepts=(concept,),
    )
