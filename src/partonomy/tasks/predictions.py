"""Prediction lines of the non-PARTONOMY tasks, read with errors that name file, line and field.

* VQA: ``{"question_id": str, "answer": str}``
* segmentation: ``{"question_id": str, "mask": {"size": [H, W], "counts": str}}``

Other keys are kept in :attr:`TaskPrediction.extra`. A prediction for a question id the
annotations do not hold, a question id given twice, or a line without its ``answer`` / ``mask``
is a :class:`~partonomy.errors.FormatError`; a mask of the wrong size is reported when scoring.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.atomic import read_jsonl_tolerant
from partonomy.tasks.base import Kind

FIELD = {"vqa": "answer", "segmentation": "mask"}
"""The prediction field of each task kind."""


@dataclass(frozen=True)
class TaskPrediction:
    """One prediction line: ``answer`` (VQA) or ``mask`` (segmentation), and ``line`` for errors."""

    question_id: str
    answer: str | None = None
    mask: mask_io.Rle | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"question_id": self.question_id}
        if self.answer is not None:
            out["answer"] = self.answer
        if self.mask is not None:
            out["mask"] = self.mask
        return out | self.extra


def parse_line(raw: Any, kind: Kind, file: str | Path, lineno: int) -> TaskPrediction:
    """One decoded JSON line -> :class:`TaskPrediction` (or a FormatError naming the field)."""
    where = f"line {lineno}"
    if not isinstance(raw, dict):
        raise FormatError("a prediction line must be a JSON object", file=file, record=where)
    qid = raw.get("question_id")
    if isinstance(qid, int) and not isinstance(qid, bool):
        qid = str(qid)
    if not isinstance(qid, str) or not qid:
        raise FormatError("missing or not a string", file=file, record=where, field="question_id")
    where = f"line {lineno} (question_id {qid!r})"
    key = FIELD[kind]
    if key not in raw or raw[key] is None:
        raise FormatError(f"a {kind} prediction needs '{key}'", file=file, record=where, field=key)
    extra = {k: v for k, v in raw.items() if k not in ("question_id", key)}
    if kind == "vqa":
        if not isinstance(raw[key], str):
            raise FormatError(
                f"must be a string, got {type(raw[key]).__name__}",
                file=file,
                record=where,
                field=key,
            )
        return TaskPrediction(qid, answer=raw[key], extra=extra, line=lineno)
    try:
        rle = mask_io.to_rle(raw[key])
    except (ValueError, TypeError) as err:
        raise FormatError(f"not a COCO RLE ({err})", file=file, record=where, field=key) from None
    return TaskPrediction(qid, mask=rle, extra=extra, line=lineno)


def _lines(path: Path) -> Iterable[tuple[int, Any]]:
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise FormatError(
                    f"invalid JSON ({err.msg})", file=path, record=f"line {lineno}"
                ) from None


def check_known(
    pred: TaskPrediction, known: set[str], done: dict[str, TaskPrediction], file: str | Path
) -> None:
    """Refuse an unknown question id or one already predicted (naming both lines)."""
    where = f"line {pred.line} (question_id {pred.question_id!r})"
    if pred.question_id not in known:
        raise FormatError(
            "prediction for a question id that is not in the annotations",
            file=file,
            record=where,
            field="question_id",
            hint="score predictions against the data (and --split / --limit) they were made for",
        )
    if pred.question_id in done:
        raise FormatError(
            f"duplicate question id (first on line {done[pred.question_id].line})",
            file=file,
            record=where,
            field="question_id",
            hint="keep one prediction per question",
        )


def load_predictions(path: str | Path, kind: Kind, known: set[str]) -> dict[str, TaskPrediction]:
    """Read a predictions JSONL written by anyone (strict: every line must parse)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError("predictions file not found", file=path)
    done: dict[str, TaskPrediction] = {}
    for lineno, raw in _lines(path):
        pred = parse_line(raw, kind, path, lineno)
        check_known(pred, known, done, path)
        done[pred.question_id] = pred
    return done


def load_run_predictions(path: Path, kind: Kind, known: set[str]) -> dict[str, TaskPrediction]:
    """A run directory's own predictions (a torn last line from a killed run is dropped)."""
    done: dict[str, TaskPrediction] = {}
    for lineno, raw in enumerate(read_jsonl_tolerant(path), start=1):
        pred = parse_line(raw, kind, path, lineno)
        check_known(pred, known, done, path)
        done[pred.question_id] = pred
    return done
