"""What every task is made of: its samples, its options and its entry in the task registry.

A task (:class:`TaskSpec`) is a reader of the official files (``read(data, splits, options)`` ->
samples), a kind (``vqa``: a text answer per question; ``segmentation``: one mask per referring
expression) and a metric with a reducer (:mod:`partonomy.tasks.scoring`). Prediction lines:

* VQA: ``{"question_id": str, "answer": str}``
* segmentation: ``{"question_id": str, "mask": {"size": [H, W], "counts": str}}`` (COCO RLE)

Extra keys on a line are kept and ignored by scoring. Question ids are strings (an official
integer id is written as its decimal string).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from partonomy.errors import ConfigError, FormatError

Kind = Literal["partonomy", "vqa", "segmentation"]
MISSING_POLICIES = ("strict", "lenient")
"""strict: a question without a prediction scores as wrong (empty mask / wrong answer);
lenient: it is left out of the metrics (counted in ``n_unanswered`` either way)."""
RULES = ("official", "original")
"""``official``: the benchmark's own scoring; ``original``: the original PLUM evaluation script's
rule (GQA and POPE only; see :func:`partonomy.tasks.metrics.original_vqa_eval`)."""


@dataclass(frozen=True)
class VqaSample:
    """One question of a VQA task.

    Attributes:
        question_id: unique within the task's selection.
        image: the image file.
        question: the official question text (no instruction added).
        answers: TextVQA: the 10 human answers; GQA: ``(answer,)``; POPE: ``(label,)``.
        group: the subset or split reported under the task's group key (POPE: the category).
        full_answer: GQA's ``fullAnswer`` (used by the ``original`` rule only).
    """

    question_id: str
    image: Path
    question: str
    answers: tuple[str, ...]
    group: str | None = None
    full_answer: str | None = None


@dataclass(frozen=True)
class SegSample:
    """One referring expression of a segmentation task.

    Attributes:
        question_id: unique within the selection (refCOCO: ``sent_id``; ReasonSeg: file stem).
        image: the image file.
        expression: the referring expression or ReasonSeg query, verbatim.
        is_sentence: ReasonSeg's ``is_sentence`` (long query); False for refCOCO.
        size: ``(H, W)`` of the image, as the annotation states it.
        group: split name (refCOCO) or ``short`` / ``long`` (ReasonSeg).
        load_target: returns the uint8 ``(H, W)`` target (0, 1, 255 = ignore); called when scoring.
    """

    question_id: str
    image: Path
    expression: str
    is_sentence: bool
    size: tuple[int, int]
    group: str | None
    load_target: Callable[[], np.ndarray] = field(repr=False, compare=False)


Sample = VqaSample | SegSample


@dataclass(frozen=True)
class TaskOptions:
    """Options of reading and scoring a task (``partonomy eval|score --task``).

    Attributes:
        splits: which splits to read (None: the task's default).
        image_root: where images resolve (None: the task's default place beside the data).
        limit: only the first ``limit`` questions in file order (GQA's original cap is 5000).
        missing: see :data:`MISSING_POLICIES`.
        rule: see :data:`RULES`.
    """

    splits: tuple[str, ...] | None = None
    image_root: str | None = None
    limit: int | None = None
    missing: str = "strict"
    rule: str = "official"

    def __post_init__(self) -> None:
        if self.missing not in MISSING_POLICIES:
            raise ConfigError(f"missing must be one of {', '.join(MISSING_POLICIES)}")
        if self.rule not in RULES:
            raise ConfigError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if self.limit is not None and self.limit < 0:
            raise ConfigError(f"limit must be >= 0, got {self.limit}")


Reader = Callable[[Path, tuple[str, ...], TaskOptions], Sequence[Sample]]


@dataclass(frozen=True)
class TaskSpec:
    """A registered task.

    Attributes:
        name: registry name.
        kind: ``partonomy`` (the benchmark's own harness), ``vqa`` or ``segmentation``.
        metric: ``partonomy`` | ``soft_vqa`` | ``exact_match`` | ``pope`` | ``iou``.
        splits: the splits the reader knows; ``default_splits`` are read when none are asked for.
        group_key: results key of the per-group metrics (``by_split`` / ``by_subset``), or None.
        read: the reader of the official files.
        rules: the scoring rules this task accepts.
        data: what the DATA argument is (for help and errors).
    """

    name: str
    kind: Kind
    metric: str
    splits: tuple[str, ...]
    default_splits: tuple[str, ...]
    group_key: str | None
    read: Reader
    data: str
    rules: tuple[str, ...] = ("official",)

    def resolve_splits(self, options: TaskOptions) -> tuple[str, ...]:
        """The splits to read; an unknown one is a :class:`ConfigError` listing the known ones."""
        splits = options.splits or self.default_splits
        for split in splits:
            if split not in self.splits:
                raise ConfigError(
                    f"task {self.name!r} has no split {split!r}; splits: {', '.join(self.splits)}"
                )
        if options.rule not in self.rules:
            raise ConfigError(
                f"task {self.name!r} accepts rule {', '.join(self.rules)}, not {options.rule!r}"
            )
        return tuple(splits)

    def load(self, data: str | Path, options: TaskOptions) -> list[Sample]:
        """Read the samples (first ``options.limit``), checking ids are unique."""
        samples = list(self.read(Path(data), self.resolve_splits(options), options))
        if options.limit is not None:
            samples = samples[: options.limit]
        seen: set[str] = set()
        for s in samples:
            if s.question_id in seen:
                raise FormatError(
                    f"question id {s.question_id!r} occurs twice in the {self.name} data",
                    file=data,
                    field="question_id",
                )
            seen.add(s.question_id)
        return samples
