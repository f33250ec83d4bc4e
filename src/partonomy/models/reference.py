"""Reference models: anchors that pin the metrics' ceiling, floors and chance level.

All four implement :class:`~partonomy.eval.protocol.GroundingModel` without weights or torch:

* ``oracle``: the correct choice scores 0.0 and every other choice 1.0 (lower = better), and
  each part of the correct answer gets its ground-truth mask. Every metric is 1.0.
* ``null``: no choice scores and no masks, so every metric is null (not applicable); with
  ``masks: empty`` it answers ``{}`` for masks, every part is missing, and the mask metrics sit
  at their floor (docs/evaluation.md).
* ``random``: uniform random choice scores (accuracy near 20%, the 1-in-5 chance level) and,
  with ``masks: random``, masks whose pixels are foreground independently with probability
  ``mask_density`` (default: no masks). Random draws depend only on ``seed`` and the question
  id, never on batch order, so an interrupted and resumed run gives the same predictions.
* ``whole_object``: for every part, the same mask: the union of *all* the question's
  ground-truth part masks ("segment the whole object"), the baseline the quickstart compares
  PLUM against. It reads ground truth for the object region only, never which part is where.
  Choice scores are none (default) or random.

The other tasks (``partonomy eval --task``, issue 11): ``oracle`` answers a VQA question with its
most frequent ground-truth answer (the best soft accuracy any single answer can get) and segments
with the target's foreground; ``null`` answers ``""`` and empty masks (the floors); ``random``
answers "yes" or "no" at random (POPE's chance level) and segments with Bernoulli masks of
``mask_density``. ``whole_object`` has no object region to use there and does not take part.

Builders take keyword options (``partonomy eval --model-opt key=value``); an unknown option is a
:class:`~partonomy.errors.ConfigError` with a did-you-mean hint.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from partonomy.config import from_dict
from partonomy.eval.protocol import EvalItem, GroundingModel, ModelAnswer, ReferQuery, VqaQuery
from partonomy.io import masks as mask_io
from partonomy.io.images import ground_truth_mask
from partonomy.io.qa_pairs import N_CHOICES, OBJECT_QUESTION_TYPES

ORACLE_CORRECT_SCORE = 0.0
"""The oracle's score for the correct choice (lower = better)."""
ORACLE_WRONG_SCORE = 1.0
"""The oracle's score for every wrong choice."""


def question_rng(seed: int, question_id: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``question_id`` (stable across runs)."""
    return np.random.default_rng([seed, zlib.crc32(question_id.encode("utf-8"))])


def _one_hot_scores(correct: int) -> list[float]:
    return [ORACLE_CORRECT_SCORE if k == correct else ORACLE_WRONG_SCORE for k in range(N_CHOICES)]


def _random_scores(rng: np.random.Generator) -> list[float]:
    return [float(x) for x in rng.random(N_CHOICES)]


@dataclass
class OracleOptions:
    """The oracle takes no options."""


class OracleModel:
    """Ground truth in, ground truth out: the test anchor for 'every metric is 1.0'."""

    name = "oracle"

    def predict(self, items: Sequence[EvalItem]) -> list[ModelAnswer]:
        out = []
        for item in items:
            qa = item.qa
            object_scores = None
            if qa.object_correct_index is not None:
                object_scores = _one_hot_scores(qa.object_correct_index)
            masks = {part: ground_truth_mask(qa, part, item.size) for part in qa.correct_parts}
            out.append(ModelAnswer(_one_hot_scores(qa.correct_index), object_scores, masks))
        return out

    def answer_vqa(self, queries: Sequence[VqaQuery]) -> list[str]:
        """The most frequent ground-truth answer (after normalisation; first in file order on ties)."""
        from partonomy.tasks.normalize import normalize_answer

        out = []
        for q in queries:
            answers = list(getattr(q.record, "answers", ()))
            if not answers:
                raise ValueError(f"oracle: question_id {q.question_id!r} carries no answers")
            norm = [normalize_answer(a) for a in answers]
            out.append(answers[max(range(len(answers)), key=lambda k: (norm.count(norm[k]), -k))])
        return out

    def segment_referring(self, queries: Sequence[ReferQuery]) -> list[np.ndarray]:
        """The target's foreground (value 1; ignore pixels are left out)."""
        out = []
        for q in queries:
            load = getattr(q.record, "load_target", None)
            if load is None:
                raise ValueError(f"oracle: question_id {q.question_id!r} carries no target")
            out.append(np.asarray(load()) == 1)
        return out


@dataclass
class NullOptions:
    """Options of the ``null`` model.

    Attributes:
        masks: ``"none"`` (no masks: the run is not scored for masks) or ``"empty"`` (an empty
            mask dict ``{}`` per question: every part is a missing mask, which pins the mask
            metrics' floor under the ``strict`` missing policy).
    """

    masks: Literal["none", "empty"] = "none"


class NullModel:
    """Answers nothing: no scores, and no masks (or, with ``masks: empty``, none of the parts)."""

    name = "null"

    def __init__(self, options: NullOptions) -> None:
        self.options = options

    def predict(self, items: Sequence[EvalItem]) -> list[ModelAnswer]:
        empty = self.options.masks == "empty"
        return [ModelAnswer(masks={} if empty else None) for _ in items]

    def answer_vqa(self, queries: Sequence[VqaQuery]) -> list[str]:
        return ["" for _ in queries]

    def segment_referring(self, queries: Sequence[ReferQuery]) -> list[np.ndarray]:
        return [np.zeros(q.image.shape[:2], dtype=bool) for q in queries]


@dataclass
class RandomOptions:
    """Options of the ``random`` model.

    Attributes:
        seed: base seed; each question draws from ``(seed, crc32(question_id))``.
        masks: ``"none"`` (no masks) or ``"random"`` (i.i.d. Bernoulli pixels).
        mask_density: probability that a pixel is foreground when ``masks`` is ``"random"``.
        delay: seconds to sleep per question (to test interruption and resume).
    """

    seed: int = 0
    masks: Literal["none", "random"] = "none"
    mask_density: float = 0.5
    delay: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.mask_density <= 1.0:
            raise ValueError(f"mask_density must be in [0, 1], got {self.mask_density}")
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {self.delay}")


class RandomModel:
    """Chance level: uniform random scores, optionally random masks."""

    name = "random"

    def __init__(self, options: RandomOptions) -> None:
        self.options = options

    def predict(self, items: Sequence[EvalItem]) -> list[ModelAnswer]:
        out = []
        for item in items:
            if self.options.delay:
                time.sleep(self.options.delay)
            qa = item.qa
            rng = question_rng(self.options.seed, qa.question_id)
            scores = _random_scores(rng)
            object_scores = (
                _random_scores(rng) if qa.question_type in OBJECT_QUESTION_TYPES else None
            )
            masks = None
            if self.options.masks == "random":
                masks = {
                    part: rng.random(item.size) < self.options.mask_density
                    for part in qa.correct_parts
                }
            out.append(ModelAnswer(scores, object_scores, masks))
        return out

    def answer_vqa(self, queries: Sequence[VqaQuery]) -> list[str]:
        """ "yes" or "no" with probability 1/2 each, drawn from ``(seed, question_id)``."""
        return [
            "yes" if question_rng(self.options.seed, q.question_id).random() < 0.5 else "no"
            for q in queries
        ]

    def segment_referring(self, queries: Sequence[ReferQuery]) -> list[np.ndarray]:
        """Bernoulli(``mask_density``) pixels, drawn from ``(seed, question_id)``."""
        return [
            question_rng(self.options.seed, q.question_id).random(q.image.shape[:2])
            < self.options.mask_density
            for q in queries
        ]


@dataclass
class WholeObjectOptions:
    """Options of the ``whole_object`` model.

    Attributes:
        scores: ``"none"`` (no choice scores) or ``"random"`` (as the ``random`` model).
        seed: seed of the random scores.
    """

    scores: Literal["none", "random"] = "none"
    seed: int = 0


class WholeObjectModel:
    """Every part gets the union of all the question's ground-truth part masks."""

    name = "whole_object"

    def __init__(self, options: WholeObjectOptions) -> None:
        self.options = options

    def predict(self, items: Sequence[EvalItem]) -> list[ModelAnswer]:
        out = []
        for item in items:
            qa = item.qa
            scores = object_scores = None
            if self.options.scores == "random":
                rng = question_rng(self.options.seed, qa.question_id)
                scores = _random_scores(rng)
                if qa.question_type in OBJECT_QUESTION_TYPES:
                    object_scores = _random_scores(rng)
            rles = [
                r if tuple(r["size"]) == item.size else mask_io.resize(r, *item.size)
                for part_rles in qa.segmentations.values()
                for r in part_rles
            ]
            whole = mask_io.decode(mask_io.union(rles, size=item.size))
            masks = {part: whole.copy() for part in qa.correct_parts}
            out.append(ModelAnswer(scores, object_scores, masks))
        return out


def build_oracle(**options: Any) -> GroundingModel:
    """The ``oracle`` reference model (no options)."""
    from_dict(OracleOptions, options, source="model 'oracle' options")
    return OracleModel()


def build_null(**options: Any) -> GroundingModel:
    """The ``null`` reference model; options as :class:`NullOptions`."""
    return NullModel(from_dict(NullOptions, options, source="model 'null' options"))


def build_random(**options: Any) -> GroundingModel:
    """The ``random`` reference model; options as :class:`RandomOptions`."""
    return RandomModel(from_dict(RandomOptions, options, source="model 'random' options"))


def build_whole_object(**options: Any) -> GroundingModel:
    """The ``whole_object`` baseline; options as :class:`WholeObjectOptions`."""
    return WholeObjectModel(
        from_dict(WholeObjectOptions, options, source="model 'whole_object' options")
    )
