"""The predictions JSONL and atomic output: round trips, bad lines, torn lines, crashed writes."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from partonomy.errors import FormatError
from partonomy.io import atomic
from partonomy.io import masks as mask_io
from partonomy.io.atomic import JsonlAppender, atomic_write_json, read_jsonl_tolerant
from partonomy.io.predictions import Prediction, load_predictions


def _pred(qid: str, with_masks: bool = True) -> Prediction:
    dense = np.zeros((4, 5), bool)
    dense[1:3, 2:5] = True
    return Prediction(
        question_id=qid,
        choice_scores=[0.5, 1.0, 2.0, -1.0, 3.0],
        object_choice_scores=None,
        masks={"wing": mask_io.encode(dense)} if with_masks else None,
        extra={"text": "an answer"},
    )


def test_round_trip_through_the_appender(tmp_path):
    path = tmp_path / "p.jsonl"
    preds = [_pred("a"), _pred("b", with_masks=False)]
    with JsonlAppender(path) as appender:
        for pred in preds:
            appender.write(pred.to_dict())
    loaded = load_predictions(path)
    assert list(loaded) == ["a", "b"]
    assert loaded["a"] == preds[0] and loaded["b"] == preds[1]
    assert loaded["a"].extra == {"text": "an answer"}


def test_a_later_line_replaces_an_earlier_one(tmp_path):
    path = tmp_path / "p.jsonl"
    first, second = _pred("a"), _pred("a")
    second.choice_scores = [1.0, 0.0, 0.0, 0.0, 0.0]
    path.write_text(json.dumps(first.to_dict()) + "\n" + json.dumps(second.to_dict()) + "\n")
    assert load_predictions(path)["a"].choice_scores == second.choice_scores


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('{"question_id": "q", "choice_scores": [1, 2, 3, 4]}', "choice_scores", "got 4"),
        ('{"question_id": "q", "choice_scores": [1, 2, 3, 4, 5, 6]}', "choice_scores", "got 6"),
        ('{"question_id": "q", "choice_scores": [1, NaN, 3, 4, 5]}', "choice_scores", "nan"),
        ('{"question_id": "q", "choice_scores": [1, 2, 3, 4, Infinity]}', "choice_scores", "inf"),
        ('{"question_id": "q", "choice_scores": [1, 2, "x", 4, 5]}', "choice_scores", "'x'"),
        ('{"question_id": "q", "object_choice_scores": 3}', "object_choice_scores", "got int"),
        ('{"question_id": "q", "masks": [1]}', "masks", "part -> RLE"),
        ('{"question_id": "q", "masks": {"wing": {"size": [2, 2]}}}', "masks.wing", "not a mask"),
        ('{"choice_scores": null}', "question_id", "missing"),
    ],
)
def test_bad_prediction_lines_name_file_line_and_field(tmp_path, line, field, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(_pred("ok").to_dict()) + "\n" + line + "\n")
    with pytest.raises(FormatError, match=message) as info:
        load_predictions(path)
    err = info.value
    assert err.file == str(path) and err.field == field
    assert err.record.startswith("line 2")


def test_invalid_json_line_and_missing_file(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"question_id": "a"}\n{"question_id": \n{"question_id": "c"}\n')
    with pytest.raises(FormatError, match="invalid JSON") as info:
        load_predictions(path)
    assert info.value.record == "line 2"
    with pytest.raises(FormatError, match="not found"):
        load_predictions(tmp_path / "missing.jsonl")


def test_torn_last_line_is_dropped_then_truncated_on_append(tmp_path):
    path = tmp_path / "p.jsonl"
    good = json.dumps(_pred("a").to_dict())
    path.write_text(good + "\n" + good[: len(good) // 2])  # killed mid-write
    assert [r["question_id"] for r in read_jsonl_tolerant(path)] == ["a"]
    with JsonlAppender(path) as appender:
        appender.write(_pred("b").to_dict())
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["question_id"] == "b"
    assert list(load_predictions(path)) == ["a", "b"]


def test_appender_refuses_nan_so_no_invalid_line_is_written(tmp_path):
    path = tmp_path / "p.jsonl"
    with JsonlAppender(path) as appender, pytest.raises(ValueError):
        appender.write({"question_id": "a", "choice_scores": [math.nan] * 5})
    assert path.read_bytes() == b""


def test_interrupted_atomic_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"v": 1})

    def crash(src, dst):
        raise KeyboardInterrupt  # e.g. Ctrl-C between writing the temp file and the rename

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["results.json"]
