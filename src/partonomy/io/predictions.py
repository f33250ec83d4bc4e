"""The prediction file: JSON lines, one per question, the public input of ``partonomy score``.

One line::

    {"question_id": str,
     "choice_scores": [5 floats] | null,         # lower = better (mean token cross-entropy)
     "object_choice_scores": [5 floats] | null,  # part_to_whole / whole_to_part only
     "masks": {part: RLE} | null}                # one mask per part of the correct answer

Extra keys are allowed and ignored by scoring (e.g. ``"text"`` for free-form answers).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.qa_pairs import N_CHOICES


@dataclass
class Prediction:
    """A model's answer to one question (see module docstring for the on-disk form)."""

    question_id: str
    choice_scores: list[float] | None = None
    object_choice_scores: list[float] | None = None
    masks: dict[str, mask_io.Rle] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "choice_scores": self.choice_scores,
            "object_choice_scores": self.object_choice_scores,
            "masks": self.masks,
            **self.extra,
        }


def _scores(raw: dict[str, Any], key: str, path: Path, rec: str) -> list[float] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != N_CHOICES:
        n = len(value) if isinstance(value, list) else type(value).__name__
        raise FormatError(
            f"expected a list of {N_CHOICES} numbers, got {n}", file=path, record=rec, field=key
        )
    out = []
    for k, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise FormatError(
                f"score {k} is {v!r}; scores must be finite numbers",
                file=path,
                record=rec,
                field=key,
            )
        out.append(float(v))
    return out


def parse_prediction(raw: Any, lineno: int, path: Path) -> Prediction:
    """Validate one prediction line (``lineno`` is 1-based, for messages)."""
    rec = f"line {lineno}"
    if not isinstance(raw, dict):
        raise FormatError("a prediction must be a JSON object", file=path, record=rec)
    if "question_id" not in raw:
        raise FormatError("missing key", file=path, record=rec, field="question_id")
    qid = str(raw["question_id"])
    rec = f"line {lineno} (question_id {qid!r})"
    masks_raw = raw.get("masks")
    masks = None
    if masks_raw is not None:
        if not isinstance(masks_raw, dict):
            raise FormatError("must map part -> RLE", file=path, record=rec, field="masks")
        masks = {}
        for part, rle in masks_raw.items():
            try:
                masks[str(part)] = mask_io.to_rle(rle)
            except (ValueError, TypeError, KeyError, IndexError) as err:
                raise FormatError(str(err), file=path, record=rec, field=f"masks.{part}") from None
    known = ("question_id", "choice_scores", "object_choice_scores", "masks")
    return Prediction(
        question_id=qid,
        choice_scores=_scores(raw, "choice_scores", path, rec),
        object_choice_scores=_scores(raw, "object_choice_scores", path, rec),
        masks=masks,
        extra={k: v for k, v in raw.items() if k not in known},
    )


def load_predictions(path: str | Path) -> dict[str, Prediction]:
    """Read a predictions JSONL file into ``{question_id: Prediction}``.

    A later line for the same question id replaces an earlier one (a resumed run may repeat one).
    NaN/Infinity, which Python's json accepts, are rejected as invalid scores.

    Raises:
        FormatError: a line that is not JSON or not a valid prediction, naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError("prediction file not found", file=path)
    out: dict[str, Prediction] = {}
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                raise FormatError(
                    f"invalid JSON: {err.msg}", file=path, record=f"line {lineno}"
                ) from None
            pred = parse_prediction(raw, lineno, path)
            out[pred.question_id] = pred
    return out
