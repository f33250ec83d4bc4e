"""The model protocol every model in this project implements (the paper's evaluation protocol).

The harness hands a model a batch of :class:`EvalItem` (image + question + choices, and the
correct answer for teacher forcing) and gets back one :class:`ModelAnswer` per item, in order.

* Text: a score per answer choice, **lower = better** (mean token cross-entropy in the paper).
* Masks: teacher-forced on the correct answer, one mask per part it names, keyed by part name.
* Part-whole types chain two questions; the second is conditioned on the ground-truth first answer
  (as the original does): see :meth:`EvalItem.part_history` and :meth:`EvalItem.object_history`.

A free-form model additionally implements :class:`FreeFormModel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from partonomy.io.qa_pairs import QAPair

Turn = tuple[str, str]
"""One earlier (question, answer) exchange of the same conversation."""


@dataclass(frozen=True)
class EvalItem:
    """One question as a model sees it.

    Attributes:
        qa: the full record. Models may use ``qa.correct_index`` and ``qa.correct_parts`` only for
            teacher-forced masks; only reference models (``oracle``) may read ground-truth masks.
        image: ``(H, W, 3)`` uint8 RGB at the original resolution; masks must come back at ``(H, W)``.
    """

    qa: QAPair
    image: np.ndarray

    @property
    def question_id(self) -> str:
        return self.qa.question_id

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the image."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def part_history(self) -> list[Turn]:
        """Turns before the part question: for whole_to_part, the object question and its correct answer."""
        qa = self.qa
        if qa.question_type == "whole_to_part" and qa.object_question is not None:
            assert qa.object_answer_choices is not None and qa.object_correct_index is not None
            return [(qa.object_question, qa.object_answer_choices[qa.object_correct_index])]
        return []

    def object_history(self) -> list[Turn]:
        """Turns before the object question: for part_to_whole, the part question and its correct answer."""
        qa = self.qa
        if qa.question_type == "part_to_whole":
            return [(qa.question, qa.answer_choices[qa.correct_index])]
        return []


@dataclass
class ModelAnswer:
    """A model's output for one :class:`EvalItem`.

    Attributes:
        choice_scores: 5 finite floats, lower = better; None if the model does not score text.
        object_choice_scores: same for the object question (part-whole types), else None.
        masks: part name -> bool ``(H, W)`` mask at the image's resolution, for the correct
            answer's parts; None if the model does not segment. A part left out counts as missing.
        extra: JSON-safe extras written to the prediction line (e.g. generated text).
    """

    choice_scores: list[float] | None = None
    object_choice_scores: list[float] | None = None
    masks: dict[str, np.ndarray] | None = None
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class GroundingModel(Protocol):
    """Batch in, aligned list out. The model owns batching, caching and devices."""

    name: str

    def predict(self, items: Sequence[EvalItem]) -> list[ModelAnswer]:
        """Return one answer per item, in the same order."""
        ...


@dataclass
class Span:
    """A tagged span of a generated answer: character offsets into the answer text, end exclusive."""

    start: int
    end: int
    text: str


@dataclass
class FreeFormAnswer:
    """Free-form output: the answer text, its part spans and one bool ``(H, W)`` mask per span."""

    text: str
    spans: list[Span]
    masks: list[np.ndarray]


@runtime_checkable
class FreeFormModel(Protocol):
    """A model that answers an open question and segments the parts it names."""

    def answer(
        self, image: np.ndarray, question: str, *, highlight: Sequence[str] | None = None
    ) -> FreeFormAnswer:
        """Generate an answer; with ``highlight``, segment those phrases of it instead of tagged spans."""
        ...


# ------------------------------------------------------------------ the other tasks (issue 11)
@dataclass(frozen=True)
class VqaQuery:
    """One free-form question of a VQA task (TextVQA, GQA, POPE).

    Attributes:
        question_id: the task's question id.
        image: ``(H, W, 3)`` uint8 RGB at the original resolution.
        question: the full user turn, the task's instruction included
            (:mod:`partonomy.tasks.prompts`); the model adds only its own chat template.
        record: the task's sample (:class:`partonomy.tasks.base.VqaSample`); only reference models
            (``oracle``) may read its answers.
    """

    question_id: str
    image: np.ndarray
    question: str
    record: object = None


@dataclass(frozen=True)
class ReferQuery:
    """One referring expression to segment (ReasonSeg, refCOCO family), teacher-forced.

    Attributes:
        question_id: the task's question id.
        image: ``(H, W, 3)`` uint8 RGB; the mask must come back at ``(H, W)``.
        expression: the referring expression or ReasonSeg query, verbatim.
        is_sentence: ReasonSeg's long (sentence) queries.
        question: the user turn (:func:`partonomy.tasks.prompts.refer_question`).
        answer: the assistant turn to teacher-force (:func:`partonomy.tasks.prompts.refer_answer`).
        span: the phrase of ``answer`` whose tokens prompt the mask (a model with a ``[SEG]``
            token may ignore it).
        record: the task's sample (:class:`partonomy.tasks.base.SegSample`); only reference models
            (``oracle``) may read its target.
    """

    question_id: str
    image: np.ndarray
    expression: str
    is_sentence: bool
    question: str
    answer: str
    span: str
    record: object = None


@runtime_checkable
class VqaModel(Protocol):
    """Answers VQA questions free-form (greedy): batch in, one answer string per query out."""

    name: str

    def answer_vqa(self, queries: Sequence[VqaQuery]) -> list[str]:
        """Return one answer per query, in order."""
        ...


@runtime_checkable
class ReferringSegmenter(Protocol):
    """Segments referring expressions: batch in, one bool ``(H, W)`` mask per query out."""

    name: str

    def segment_referring(self, queries: Sequence[ReferQuery]) -> list[np.ndarray]:
        """Return one bool mask per query, at the query image's resolution, in order."""
        ...
