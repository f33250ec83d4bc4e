"""Scoring: QA pairs + predictions -> the results dict (``results.json``, a public contract).

``results.json``::

    {"overall": M, "by_type": {question_type: M}, "config": {...}, "version": "<partonomy>"}

where ``M`` maps :data:`METRIC_KEYS` to a fraction in [0, 1] or null (not applicable: no text
scores, no object question, no mask scored) and :data:`COUNT_KEYS` to integers. The rules
(matching, missing predictions, ties, empty masks) live in
:mod:`partonomy.eval.metrics.conventions`; ``docs/scoring.md`` states them for users.

Which parts of a run are scored is decided once for the whole predictions file:

* text, if any prediction has ``choice_scores``; object accuracy, if any prediction of a
  part_to_whole / whole_to_part question has ``object_choice_scores``;
* masks, if any prediction has ``masks`` (even ``{}``). A text-only run thus gets null gIoU and
  zero mask counts instead of a gIoU of 0.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from partonomy import __version__
from partonomy.config import from_dict, to_dict
from partonomy.errors import FormatError
from partonomy.eval.metrics.conventions import (
    DEFAULT_MATCHING,
    DEFAULT_MISSING,
    EMPTY_UNION_IOU,
    PART_NORMALISATION,
    SCORING_PROTOCOL_VERSION,
    TIE_RULE,
    Matching,
    MissingPolicy,
)
from partonomy.eval.metrics.inputs import MaskInputs, PredictionError, check_scores
from partonomy.eval.metrics.masks import QuestionMasks
from partonomy.eval.metrics.matching import question_masks
from partonomy.eval.metrics.text import (
    TextOutcome,
    object_outcome,
    text_outcome,
    unanswered_outcome,
)
from partonomy.io.atomic import atomic_write_json
from partonomy.io.predictions import Prediction, load_predictions
from partonomy.io.qa_pairs import (
    OBJECT_QUESTION_TYPES,
    QUESTION_TYPES,
    QAPair,
    load_qa_pairs,
)
from partonomy.registries import METRICS

METRIC_KEYS = (
    "accuracy",
    "part_precision",
    "part_recall",
    "part_f1",
    "object_accuracy",
    "micro_giou",
    "macro_giou",
    "ciou",
)
"""Rates of ``M`` (registered in :data:`~partonomy.registries.METRICS` under these names)."""
COUNT_KEYS = ("n_questions", "n_masks", "n_missing_masks", "n_ties", "n_unanswered")
"""Counts of ``M``: questions; scored (question, part) pairs (one per question with ``union``);
missing pairs (either policy); questions with a tie; questions without a prediction line."""


@dataclass(frozen=True)
class ScoringConfig:
    """How to score (written to ``results.json`` under ``config``).

    Attributes:
        matching: see :data:`~partonomy.eval.metrics.conventions.Matching`.
        missing: see :data:`~partonomy.eval.metrics.conventions.MissingPolicy`.
        resize_mismatched: resize a predicted mask whose size differs from its ground truth
            (nearest neighbour, with a warning) instead of raising :class:`FormatError`.
    """

    matching: Matching = DEFAULT_MATCHING
    missing: MissingPolicy = DEFAULT_MISSING
    resize_mismatched: bool = False


@dataclass(frozen=True)
class _QuestionScore:
    """Everything one question contributes (None = not scored for that part of the run)."""

    question_type: str
    text: TextOutcome | None
    obj: TextOutcome | None
    masks: QuestionMasks | None
    answered: bool

    @property
    def tied(self) -> bool:
        return bool((self.text and self.text.tied) or (self.obj and self.obj.tied))


def score(
    records: Sequence[QAPair],
    predictions: Mapping[str, Prediction],
    *,
    matching: str = DEFAULT_MATCHING,
    missing: str = DEFAULT_MISSING,
    resize_mismatched: bool = False,
    qa_file: str | Path | None = None,
    predictions_file: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score predictions against QA pairs; returns the results dict (nothing is written).

    Args:
        records: the QA pairs (unique ``question_id``).
        predictions: ``question_id`` -> prediction; ids must be among ``records``' ids, and a
            question may have none (it is then unanswered).
        matching: ``paired`` | ``greedy`` | ``hungarian`` | ``union``.
        missing: ``strict`` | ``lenient``.
        resize_mismatched: see :class:`ScoringConfig`.
        qa_file, predictions_file: named in errors and in ``config``.
        progress: show a tqdm progress bar (on stderr, once scoring has run for a second).

    Returns:
        ``{"overall": M, "by_type": {type: M}, "config": {...}, "version": str}`` (module doc).

    Raises:
        ConfigError: an unknown ``matching`` or ``missing``.
        FormatError: a prediction for an unknown question id, scores that are not 5 finite
            numbers, or a predicted mask whose size differs from its ground truth.
    """
    cfg = from_dict(
        ScoringConfig,
        {"matching": matching, "missing": missing, "resize_mismatched": resize_mismatched},
        source="scoring",
    )
    by_id = {qa.question_id: qa for qa in records}
    _validate(by_id, predictions, qa_file, predictions_file)
    parts = _Parts(
        text=any(p.choice_scores is not None for p in predictions.values()),
        objects=any(
            p.object_choice_scores is not None and by_id[q].question_type in OBJECT_QUESTION_TYPES
            for q, p in predictions.items()
        ),
        masks=any(p.masks is not None for p in predictions.values()),
    )
    prepare = MaskInputs(
        resize_mismatched=cfg.resize_mismatched,
        name_check=cfg.matching == "paired",
        qa_file=qa_file,
        predictions_file=predictions_file,
    )
    scores = [
        _score_question(index, qa, predictions.get(qa.question_id), parts, cfg, prepare)
        for index, qa in enumerate(
            tqdm(records, desc="scoring", unit="q", disable=not progress, delay=1.0)
        )
    ]
    if prepare.resized:
        warnings.warn(
            f"resized {len(prepare.resized)} predicted mask(s) to their ground-truth size "
            f"(first: {prepare.resized[0]})",
            stacklevel=2,
        )
    if prepare.unmatched_names:
        warnings.warn(
            f"{len(prepare.unmatched_names)} predicted mask(s) are keyed by a name that is not a "
            f"part of the correct answer (first: {prepare.unmatched_names[0]}); paired matching "
            "ignores them: key masks by the bare part names of answer_parts",
            stacklevel=2,
        )
    types = [t for t in QUESTION_TYPES if any(s.question_type == t for s in scores)]
    return {
        "overall": _summarise(scores),
        "by_type": {t: _summarise([s for s in scores if s.question_type == t]) for t in types},
        "config": {
            **to_dict(cfg),
            "protocol_version": SCORING_PROTOCOL_VERSION,
            "empty_union_iou": EMPTY_UNION_IOU,
            "tie_rule": TIE_RULE,
            "part_normalisation": PART_NORMALISATION,
            "qa_file": None if qa_file is None else str(qa_file),
            "predictions_file": None if predictions_file is None else str(predictions_file),
        },
        "version": __version__,
    }


@dataclass(frozen=True)
class _Parts:
    """Which parts of the run are scored (decided once for the whole predictions file)."""

    text: bool
    objects: bool
    masks: bool


def _validate(
    by_id: Mapping[str, QAPair],
    predictions: Mapping[str, Prediction],
    qa_file: str | Path | None,
    predictions_file: str | Path | None,
) -> None:
    unknown = [qid for qid in predictions if qid not in by_id]
    if unknown:
        raise PredictionError(
            f"{len(unknown)} prediction(s) name question ids that are not in the QA file"
            + (f" ({qa_file})" if qa_file else "")
            + "; score predictions against the QA file they were made for",
            file=predictions_file,
            qid=unknown[0],
            field="question_id",
        )
    for pred in predictions.values():
        check_scores(pred, "choice_scores", predictions_file)
        check_scores(pred, "object_choice_scores", predictions_file)


def _score_question(
    index: int,
    qa: QAPair,
    pred: Prediction | None,
    parts: _Parts,
    cfg: ScoringConfig,
    prepare: MaskInputs,
) -> _QuestionScore:
    text = obj = masks = None
    if parts.text:
        text = _text(qa, pred.choice_scores if pred else None, cfg.missing)
    answer_types = qa.object_answer_types  # set for the object types (the QA loader checks)
    if parts.objects and qa.question_type in OBJECT_QUESTION_TYPES and answer_types is not None:
        obj_scores = pred.object_choice_scores if pred else None
        if obj_scores is not None or cfg.missing == "strict":
            obj = object_outcome(obj_scores, answer_types)
    if parts.masks:
        preds, truth = prepare(index, qa, pred.masks if pred else None)
        masks = question_masks(preds, truth, matching=cfg.matching, missing=cfg.missing)
    return _QuestionScore(qa.question_type, text, obj, masks, answered=pred is not None)


def _text(qa: QAPair, scores: list[float] | None, missing: str) -> TextOutcome | None:
    if scores is not None:
        return text_outcome(scores, qa.answer_types, qa.answer_parts)
    if missing == "strict":
        return unanswered_outcome(qa.answer_types, qa.answer_parts)
    return None


def _summarise(scores: Sequence[_QuestionScore]) -> dict[str, Any]:
    """Reduce a group of per-question scores to ``M`` (registered metrics, then counts)."""
    samples: dict[str, list[Any]] = {
        "text": [s.text for s in scores if s.text is not None],
        "object": [s.obj for s in scores if s.obj is not None],
        "masks": [s.masks for s in scores if s.masks is not None],
    }
    out: dict[str, Any] = {}
    for key in METRIC_KEYS:
        metric = METRICS.get(key)
        out[key] = metric(samples[metric.sample_kind])
    masks: list[QuestionMasks] = samples["masks"]
    out.update(
        n_questions=len(scores),
        n_masks=sum(len(m.pairs) for m in masks),
        n_missing_masks=sum(m.n_missing for m in masks),
        n_ties=sum(s.tied for s in scores),
        n_unanswered=sum(not s.answered for s in scores),
    )
    return out


def _prediction_line(path: Path, qid: str) -> int | None:
    """1-based line of the last prediction for ``qid`` (the one that was scored)."""
    found = None
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if qid not in line:  # cheap filter before parsing
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(raw, dict) and str(raw.get("question_id")) == qid:
                found = lineno
    return found


def score_files(
    qa_path: str | Path,
    predictions_path: str | Path,
    out_path: str | Path,
    *,
    matching: str = DEFAULT_MATCHING,
    missing: str = DEFAULT_MISSING,
    resize_mismatched: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Load a QA JSON and a predictions JSONL, score them and write ``out_path`` atomically.

    Returns the results dict written (see :func:`score`); errors name the file and line.
    """
    records = load_qa_pairs(qa_path)
    predictions = load_predictions(predictions_path)
    try:
        results = score(
            records,
            predictions,
            matching=matching,
            missing=missing,
            resize_mismatched=resize_mismatched,
            qa_file=qa_path,
            predictions_file=predictions_path,
            progress=progress,
        )
    except PredictionError as err:
        line = _prediction_line(Path(predictions_path), err.question_id)
        record = f"line {line} (question_id {err.question_id!r})" if line else err.record
        raise FormatError(err.message, file=err.file, record=record, field=err.field) from None
    atomic_write_json(out_path, results)
    return results
