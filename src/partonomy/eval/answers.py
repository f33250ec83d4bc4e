"""The checks every model answer passes before the harness writes it.

A wrong number of scores, a NaN, or a mask of the wrong shape or dtype is a
:class:`ModelOutputError` naming the model and the question. Masks keyed by names that are not
parts of the correct answer are kept (matching by IoU may use them; paired matching ignores them,
and the scorer warns about them).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from partonomy.errors import PartonomyError
from partonomy.eval.protocol import EvalItem, ModelAnswer
from partonomy.io import masks as mask_io
from partonomy.io.predictions import Prediction
from partonomy.io.qa_pairs import N_CHOICES, OBJECT_QUESTION_TYPES

_PREDICTION_KEYS = ("question_id", "choice_scores", "object_choice_scores", "masks")


class ModelOutputError(PartonomyError, ValueError):
    """A model returned something the protocol does not allow (names the model and question)."""


def _check_scores(value: Any, what: str, model: str, qid: str) -> list[float] | None:
    if value is None:
        return None
    if hasattr(value, "tolist"):  # numpy arrays and torch tensors
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ModelOutputError(
            f"model '{model}' returned {what} of type {type(value).__name__} for question_id "
            f"{qid!r}; expected a list of {N_CHOICES} numbers"
        )
    values = list(value)
    if len(values) != N_CHOICES:
        raise ModelOutputError(
            f"model '{model}' returned {len(values)} {what} for question_id {qid!r}; expected "
            f"{N_CHOICES} (one per answer choice)"
        )
    out = []
    for k, v in enumerate(values):
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        if not ok or not math.isfinite(float(v)):
            raise ModelOutputError(
                f"model '{model}' returned {what}[{k}] = {v!r} for question_id {qid!r}; scores "
                "must be finite numbers (lower = better)"
            )
        out.append(float(v))
    return out


def _check_masks(value: Any, item: EvalItem, model: str) -> dict[str, mask_io.Rle] | None:
    if value is None:
        return None
    qid = item.question_id
    if not isinstance(value, dict):
        raise ModelOutputError(
            f"model '{model}' returned masks of type {type(value).__name__} for question_id "
            f"{qid!r}; expected a dict part name -> (H, W) bool array"
        )
    out: dict[str, mask_io.Rle] = {}
    for part, mask in value.items():
        if not isinstance(part, str):
            raise ModelOutputError(
                f"model '{model}' keyed a mask of question_id {qid!r} by {part!r}; keys must be "
                "part names (str)"
            )
        arr = np.asarray(mask)
        if arr.shape != item.size:
            raise ModelOutputError(
                f"model '{model}' returned a mask of shape {tuple(arr.shape)} for part {part!r} "
                f"of question_id {qid!r}; expected the image's (H, W) = {item.size}"
            )
        if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
            raise ModelOutputError(
                f"model '{model}' returned a {arr.dtype} mask for part {part!r} of question_id "
                f"{qid!r}; masks must be bool (threshold logits first)"
            )
        out[str(part)] = mask_io.encode(arr)
    return out


def answer_to_prediction(model: str, item: EvalItem, answer: Any) -> Prediction:
    """Check one model answer against the protocol and turn it into a prediction record.

    Raises:
        ModelOutputError: naming ``model``, the question id and what is wrong.
    """
    qid = item.question_id
    if not isinstance(answer, ModelAnswer):
        raise ModelOutputError(
            f"model '{model}' returned a {type(answer).__name__} for question_id {qid!r}; "
            "expected a ModelAnswer"
        )
    object_scores = _check_scores(answer.object_choice_scores, "object choice scores", model, qid)
    if object_scores is not None and item.qa.question_type not in OBJECT_QUESTION_TYPES:
        raise ModelOutputError(
            f"model '{model}' returned object choice scores for question_id {qid!r}, a "
            f"{item.qa.question_type} question, which has no object question"
        )
    extra = dict(answer.extra)
    clash = sorted(set(extra) & set(_PREDICTION_KEYS))
    if clash:
        raise ModelOutputError(f"model '{model}' extra key {clash[0]!r} clashes with a field")
    try:
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ModelOutputError(
            f"model '{model}' returned extras that are not JSON for question_id {qid!r}: {err}"
        ) from None
    return Prediction(
        question_id=qid,
        choice_scores=_check_scores(answer.choice_scores, "choice scores", model, qid),
        object_choice_scores=object_scores,
        masks=_check_masks(answer.masks, item, model),
        extra=extra,
    )
