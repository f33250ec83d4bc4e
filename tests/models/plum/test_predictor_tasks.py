"""PLUM on the other tasks (issue 11): free-form VQA answers and teacher-forced referring masks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from fixtures.tasks import builders
from partonomy.models.core.loading import build_predictor
from partonomy.models.core.predictor import SegPredictor
from partonomy.tasks.base import TaskOptions
from partonomy.tasks.harness import TaskEvalConfig, get_task, load_sample_image, run_task_eval
from partonomy.tasks.prompts import refer_answer, refer_question

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def predictor(one_thread: None) -> SegPredictor:
    return build_predictor("plum", device="cpu", dtype="float32", batch_size=3, max_new_tokens=6)


def test_vqa_answers_batched_equal_one_at_a_time(predictor: SegPredictor, tmp_path: Path) -> None:
    pope = builders.make_pope(tmp_path)
    out = run_task_eval(
        TaskEvalConfig(task="pope", model="plum", data=str(pope), out=str(tmp_path / "run"),
                       batch_size=6, progress=False),
        model=predictor,
    )  # fmt: skip
    assert out.results["overall"]["n_questions"] == 6
    lines = [
        json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    ]
    assert all(isinstance(x["answer"], str) for x in lines)
    # the batched, left-padded generation gives each question the answer it gets alone
    for line, sample in zip(lines[:2], get_task("pope").load(pope, TaskOptions()), strict=False):
        image = load_sample_image(sample, pope)
        alone = predictor.generate(
            image, f'{sample.question} Please answer the question with "Yes" or "No".'
        )
        assert line["answer"] == alone.text.strip()


@pytest.mark.parametrize("task", ["reason_seg", "refcoco"])
def test_referring_masks_batch_invariant_and_spans_found(
    predictor: SegPredictor, tmp_path: Path, task: str, caplog: pytest.LogCaptureFixture
) -> None:
    make = {"reason_seg": "make_reason_seg", "refcoco": "make_refer"}[task]
    data = getattr(builders, make)(tmp_path)
    with caplog.at_level(logging.WARNING):
        res = run_task_eval(
            TaskEvalConfig(task=task, model="plum", data=str(data), out=str(tmp_path / "run"),
                           batch_size=3, progress=False),
            model=predictor,
        )  # fmt: skip
    assert "not in the answer" not in caplog.text
    assert res.results["overall"]["n_scored"] == res.n_questions
    # one query at a time gives the same masks as the batch of 3
    from partonomy.eval.protocol import ReferQuery

    samples = get_task(task).load(data, TaskOptions())
    queries = []
    for s in samples:
        answer, span = refer_answer(s.expression, s.is_sentence)
        question = refer_question(s.expression, s.is_sentence)
        image = load_sample_image(s, data)
        queries.append(
            ReferQuery(s.question_id, image, s.expression, s.is_sentence, question, answer, span)
        )
    batched = predictor.segment_referring(queries)
    single = [predictor.segment_referring([q])[0] for q in queries]
    for q, a, b in zip(queries, batched, single, strict=True):
        assert a.dtype == bool and a.shape == q.image.shape[:2]
        np.testing.assert_array_equal(a, b)
