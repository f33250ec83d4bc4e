"""`partonomy score --task`: results on hand-built predictions, and the bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.registries import TASKS
from partonomy.tasks.base import TaskOptions
from partonomy.tasks.scoring import score_task_files


def _jsonl(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_pope_results_per_subset_and_overall(pope: Path, tmp_path: Path) -> None:
    # truth: random yes,no; popular yes,no; adversarial no,yes
    answers = {
        "random/1": "Yes, there is.",  # yes, label yes
        "random/2": "No.",  # no, label no
        "popular/1": "There is not.",  # no, label yes
        "popular/2": "Yes",  # yes, label no
        "adversarial/1": "no",  # no, label no
    }  # adversarial/2 unanswered
    preds = _jsonl(
        tmp_path / "p.jsonl", [{"question_id": q, "answer": a} for q, a in answers.items()]
    )
    out = tmp_path / "results.json"
    result = CliRunner().invoke(
        cli, ["score", "--task", "pope", str(pope), str(preds), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    assert set(res) == {"overall", "by_subset", "config", "version"}
    assert res["by_subset"]["random"]["accuracy"] == 1.0
    assert res["by_subset"]["popular"]["accuracy"] == 0.0
    overall = res["overall"]
    # strict: the unanswered 'yes' question counts as said-no: tp=1, fp=1, fn=2, tn=2
    assert overall["accuracy"] == pytest.approx(3 / 6)
    assert overall["precision"] == pytest.approx(1 / 2)
    assert overall["recall"] == pytest.approx(1 / 3)
    assert overall["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert overall["yes_ratio"] == pytest.approx(2 / 6)
    assert (overall["n_questions"], overall["n_unanswered"]) == (6, 1)
    lenient = score_task_files(
        TASKS.get("pope"), pope, preds, tmp_path / "r2.json", TaskOptions(missing="lenient")
    )
    assert lenient["overall"]["accuracy"] == pytest.approx(3 / 5)
    assert lenient["overall"]["n_scored"] == 5


def test_textvqa_and_gqa_accuracy(textvqa: Path, gqa: Path, tmp_path: Path) -> None:
    preds = _jsonl(
        tmp_path / "t.jsonl",
        [{"question_id": "34602", "answer": "Dakota."}, {"question_id": "34603", "answer": "2"}],
    )
    res = score_task_files(TASKS.get("textvqa"), textvqa, preds, tmp_path / "t.json", TaskOptions())
    # 34603: '2' x8 (the word 'two' x1 normalises to '2' too -> 9 of 10) -> 1.0
    assert res["overall"]["accuracy"] == 1.0 and "by_subset" not in res
    g = _jsonl(
        tmp_path / "g.jsonl",
        [
            {"question_id": "20968379", "answer": "Yes"},
            {"question_id": "201971873", "answer": "He holds an umbrella."},
            {"question_id": "201640614", "answer": "black"},
        ],
    )
    official = score_task_files(TASKS.get("gqa"), gqa, g, tmp_path / "g.json", TaskOptions())
    assert official["overall"]["accuracy"] == pytest.approx(2 / 3)
    original = score_task_files(
        TASKS.get("gqa"), gqa, g, tmp_path / "g2.json", TaskOptions(rule="original")
    )
    # [answer, fullAnswer] pairs: exact short answers 1/6 each, the long answer contains it: 1
    assert original["overall"]["accuracy"] == pytest.approx((1 / 6 + 1 + 1 / 6) / 3)
    capped = score_task_files(TASKS.get("gqa"), gqa, _jsonl(tmp_path / "g3.jsonl", []),
                              tmp_path / "g3.json", TaskOptions(limit=2))  # fmt: skip
    assert capped["overall"]["n_questions"] == 2 and capped["overall"]["accuracy"] == 0.0


def test_reason_seg_giou_ciou_and_short_long(reason_seg: Path, tmp_path: Path) -> None:
    task = TASKS.get("reason_seg")
    samples = {s.question_id: s for s in task.load(reason_seg, TaskOptions())}
    short = samples["short_one"].load_target() == 1
    long_target = samples["long_one"].load_target()
    half = np.zeros((20, 24), dtype=bool)
    half[:, :6] = True  # against the long target (rows 0-10, cols 0-12, ignore 2-6 x 2-6)
    expected = {}
    valid = long_target != 255
    inter = int((half & (long_target == 1) & valid).sum())
    union = int(((half | (long_target == 1)) & valid).sum())
    expected["long"] = inter / union
    preds = _jsonl(
        tmp_path / "r.jsonl",
        [
            {"question_id": "short_one", "mask": mask_io.encode(short)},
            {"question_id": "long_one", "mask": mask_io.encode(half)},
        ],
    )
    res = score_task_files(task, reason_seg, preds, tmp_path / "r.json", TaskOptions())
    assert res["by_subset"]["short"]["giou"] == 1.0
    assert res["by_subset"]["long"]["giou"] == pytest.approx(expected["long"])
    assert res["overall"]["giou"] == pytest.approx((1 + expected["long"]) / 2)
    n_short = int(short.sum())
    assert res["overall"]["ciou"] == pytest.approx((n_short + inter) / (n_short + union))
    assert res["config"]["ignore_value"] == 255 and res["config"]["empty_union_iou"] == 1.0


def test_refcoco_by_split(refer: Path, tmp_path: Path) -> None:
    task = TASKS.get("refcoco")
    samples = task.load(refer, TaskOptions(splits=("val", "testA")))
    lines = [
        {"question_id": s.question_id, "mask": mask_io.encode(s.load_target())} for s in samples
    ]
    lines[-1]["mask"] = mask_io.encode(np.zeros((12, 12), dtype=bool))  # a miss in testA
    res = score_task_files(
        task, refer, _jsonl(tmp_path / "p.jsonl", lines), tmp_path / "r.json",
        TaskOptions(splits=("val", "testA")),
    )  # fmt: skip
    assert res["by_split"]["val"]["giou"] == 1.0 and res["by_split"]["val"]["n_questions"] == 3
    assert res["by_split"]["testA"]["giou"] == 0.5
    assert res["overall"]["giou"] == pytest.approx(4 / 5)


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("lines", "pattern"),
    [
        ([{"question_id": "random/9", "answer": "yes"}], r"not in the annotations"),
        (
            [{"question_id": "random/1", "answer": "yes"}, {"question_id": "random/1", "answer": "no"}],
            r"duplicate question id \(first on line 1\)",
        ),
        ([{"question_id": "random/1"}], r"needs 'answer'"),
        ([{"question_id": "random/1", "answer": 3}], r"must be a string"),
        ([{"answer": "yes"}], r"line 1.*question_id"),
    ],
)  # fmt: skip
def test_bad_vqa_predictions(
    pope: Path, tmp_path: Path, lines: list[dict[str, object]], pattern: str
) -> None:
    preds = _jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(FormatError, match=pattern) as info:
        score_task_files(TASKS.get("pope"), pope, preds, tmp_path / "r.json", TaskOptions())
    assert "bad.jsonl" in str(info.value)
    assert not (tmp_path / "r.json").exists()


def test_missing_and_wrong_size_masks(reason_seg: Path, tmp_path: Path) -> None:
    task = TASKS.get("reason_seg")
    no_mask = _jsonl(tmp_path / "a.jsonl", [{"question_id": "short_one"}])
    with pytest.raises(FormatError, match=r"a.jsonl.*line 1.*needs 'mask'"):
        score_task_files(task, reason_seg, no_mask, tmp_path / "r.json", TaskOptions())
    wrong = _jsonl(
        tmp_path / "b.jsonl",
        [{"question_id": "short_one", "mask": mask_io.encode(np.ones((10, 10), dtype=bool))}],
    )
    with pytest.raises(
        FormatError,
        match=r"b.jsonl.*line 1 \(question_id 'short_one'\).*mask.*10x10 but the image is 20x24",
    ):
        score_task_files(task, reason_seg, wrong, tmp_path / "r.json", TaskOptions())  # fmt: skip
    not_rle = _jsonl(tmp_path / "c.jsonl", [{"question_id": "short_one", "mask": {"x": 1}}])
    with pytest.raises(FormatError, match="not a COCO RLE"):
        score_task_files(task, reason_seg, not_rle, tmp_path / "r.json", TaskOptions())


def test_missing_predictions_strict_and_lenient(reason_seg: Path, tmp_path: Path) -> None:
    task = TASKS.get("reason_seg")
    target = next(s for s in task.load(reason_seg, TaskOptions()) if s.question_id == "short_one")
    preds = _jsonl(
        tmp_path / "p.jsonl",
        [{"question_id": "short_one", "mask": mask_io.encode(target.load_target() == 1)}],
    )
    strict = score_task_files(task, reason_seg, preds, tmp_path / "s.json", TaskOptions())
    assert strict["overall"]["giou"] == pytest.approx(0.5)  # the long one: empty mask, IoU 0
    assert strict["overall"]["n_unanswered"] == 1
    lenient = score_task_files(
        task, reason_seg, preds, tmp_path / "l.json", TaskOptions(missing="lenient")
    )
    assert lenient["overall"]["giou"] == 1.0 and lenient["by_subset"]["long"]["giou"] is None
