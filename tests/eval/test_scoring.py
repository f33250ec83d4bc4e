"""``partonomy.eval.scoring``: the results.json contract on a 4-question set scored by hand.

The set (4x4 masks; correct choices marked *):

* q1 identification: parts *[a, b]; scores tie choice 0 (correct) with 1 ([a]) -> choice 1,
  wrong, tied. Masks: a exact (I 4, U 4); b missing (truth 4 px).
* q2 positive: parts *[x] (index 2); x's truth is two instances (union 5 px). Scores pick
  choice 1 = [x, y]: wrong. Mask x: row 0 (I 4, U 5).
* q3 part_to_whole: parts *[a]; right part answer and right object answer (object choice 1).
  Mask a: 2 of its 4 px (I 2, U 4).
* q4 identification_with_label: parts *[a]; no prediction line at all.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.errors import ConfigError, FormatError
from partonomy.eval.scoring import COUNT_KEYS, METRIC_KEYS, score, score_files
from partonomy.io import masks as mask_io
from partonomy.io.predictions import Prediction
from partonomy.io.qa_pairs import QAPair, save_qa_pairs

C, X = "correct", "incorrect"  # X: a wrong choice


def box(r0: int, r1: int, c0: int, c1: int, size: int = 4) -> dict:
    dense = np.zeros((size, size), dtype=bool)
    dense[r0:r1, c0:c1] = True
    return mask_io.encode(dense)


def qa(qid, qtype, parts, correct, segmentations, object_correct=None) -> QAPair:
    types = [C if k == correct else X for k in range(5)]
    extra = {}
    if object_correct is not None:
        extra = dict(
            object_question="What is the object in the image?",
            object_answer_choices=[f"It is a {c}." for c in "vwxyz"],
            object_answer_types=[C if k == object_correct else X for k in range(5)],
            object_answer_classes=list("vwxyz"),
        )
    return QAPair(
        question_id=qid,
        image_path=f"{qid}.jpg",
        image_label="thing",
        question="What visible parts does the object in the image have?",
        question_type=qtype,
        answer_choices=[", ".join(p) for p in parts],
        answer_types=types,
        answer_parts=parts,
        segmentations=segmentations,
        explicit_id=True,
        **extra,
    )


A, B = box(0, 2, 0, 2), box(2, 4, 2, 4)
RECORDS = [
    qa("q1", "identification", [["a", "b"], ["a"], ["a", "b", "c"], ["b"], ["c"]], 0,
       {"a": [A], "b": [B]}),
    qa("q2", "positive", [["y"], ["x", "y"], ["x"], ["z"], ["x", "z"]], 2,
       {"x": [box(0, 1, 0, 4), box(0, 2, 0, 1)]}),
    qa("q3", "part_to_whole", [["a"], ["b"], ["a", "b"], ["c"], ["a", "c"]], 0, {"a": [A]},
       object_correct=1),
    qa("q4", "identification_with_label", [["a"], ["b"], ["a", "b"], ["c"], ["a", "c"]], 0,
       {"a": [A]}),
]  # fmt: skip
PREDICTIONS = {
    "q1": Prediction("q1", [0.5, 0.5, 0.9, 0.9, 0.9], None, {"a": A}),
    "q2": Prediction("q2", [0.9, 0.1, 0.2, 0.9, 0.9], None, {"x": box(0, 1, 0, 4)}),
    "q3": Prediction("q3", [0.1, 0.5, 0.5, 0.5, 0.5], [0.5, 0.2, 0.3, 0.4, 0.6],
                     {"a": box(0, 2, 0, 1)}),
}  # fmt: skip


def check_contract(results: dict) -> None:
    assert set(results) == {"overall", "by_type", "config", "version"}
    for m in [results["overall"], *results["by_type"].values()]:
        assert list(m) == [*METRIC_KEYS, *COUNT_KEYS]
        for key in METRIC_KEYS:
            assert m[key] is None or (isinstance(m[key], float) and 0.0 <= m[key] <= 1.0), key
        for key in COUNT_KEYS:
            assert type(m[key]) is int and m[key] >= 0, key


def test_strict_by_hand():
    results = score(RECORDS, PREDICTIONS)
    check_contract(results)
    o = results["overall"]
    assert o["accuracy"] == pytest.approx(1 / 4)
    assert o["part_precision"] == pytest.approx(3 / 4)  # TP 1+1+1 over 1+2+1 predicted
    assert o["part_recall"] == pytest.approx(3 / 5)  # over 2+1+1+1 true (q4 unanswered)
    assert o["part_f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert o["object_accuracy"] == 1.0
    assert o["micro_giou"] == pytest.approx((1 + 0 + 0.8 + 0.5 + 0) / 5)
    assert o["macro_giou"] == pytest.approx((0.5 + 0.8 + 0.5 + 0) / 4)
    assert o["ciou"] == pytest.approx((4 + 0 + 4 + 2 + 0) / (4 + 4 + 5 + 4 + 4))
    assert (o["n_questions"], o["n_masks"], o["n_missing_masks"]) == (4, 5, 2)
    assert (o["n_ties"], o["n_unanswered"]) == (1, 1)
    by = results["by_type"]
    assert list(by) == ["identification", "positive", "identification_with_label", "part_to_whole"]
    ident = by["identification"]
    assert (ident["accuracy"], ident["part_precision"], ident["part_recall"]) == (0.0, 1.0, 0.5)
    assert ident["object_accuracy"] is None and ident["n_ties"] == 1
    assert (ident["micro_giou"], ident["ciou"]) == (0.5, 0.5)
    assert by["positive"]["micro_giou"] == pytest.approx(0.8)
    assert by["part_to_whole"]["object_accuracy"] == 1.0
    q4 = by["identification_with_label"]
    assert (q4["accuracy"], q4["part_precision"], q4["part_recall"]) == (0.0, None, 0.0)
    assert (q4["part_f1"], q4["micro_giou"], q4["n_missing_masks"]) == (None, 0.0, 1)
    cfg = results["config"]
    assert (cfg["matching"], cfg["missing"], cfg["protocol_version"]) == ("paired", "strict", 1)
    assert results["version"] == __import__("partonomy").__version__


def test_lenient_by_hand():
    o = score(RECORDS, PREDICTIONS, missing="lenient")["overall"]
    assert o["accuracy"] == pytest.approx(1 / 3)  # q4 skipped
    assert (o["part_precision"], o["part_recall"]) == (0.75, 0.75)
    assert o["micro_giou"] == pytest.approx(2.3 / 3)  # b of q1 and a of q4 skipped
    assert o["macro_giou"] == pytest.approx(2.3 / 3)
    assert o["ciou"] == pytest.approx(10 / 13)
    assert (o["n_masks"], o["n_missing_masks"], o["n_unanswered"]) == (3, 2, 1)


def test_union_matching_one_pair_per_question():
    o = score(RECORDS, PREDICTIONS, matching="union")["overall"]
    # q1: a vs a|b (I 4, U 8); q2 0.8; q3 0.5; q4 missing (strict: IoU 0, U 4).
    assert (o["n_masks"], o["n_missing_masks"]) == (4, 1)
    assert o["micro_giou"] == pytest.approx((0.5 + 0.8 + 0.5 + 0) / 4)
    assert o["ciou"] == pytest.approx((4 + 4 + 2) / (8 + 5 + 4 + 4))


def test_text_only_and_masks_only_runs():
    text_only = {k: Prediction(k, p.choice_scores, p.object_choice_scores) for k, p in
                 PREDICTIONS.items()}  # fmt: skip
    o = score(RECORDS, text_only)["overall"]
    assert o["micro_giou"] is None and o["macro_giou"] is None and o["ciou"] is None
    assert (o["n_masks"], o["n_missing_masks"]) == (0, 0)
    assert o["accuracy"] == pytest.approx(1 / 4)
    masks_only = {k: Prediction(k, masks=p.masks) for k, p in PREDICTIONS.items()}
    results = score(RECORDS, masks_only)
    check_contract(results)
    o = results["overall"]
    assert o["accuracy"] is None and o["part_f1"] is None and o["object_accuracy"] is None
    assert o["n_ties"] == 0 and o["micro_giou"] == pytest.approx(0.46)


def test_nothing_predicted():
    results = score(RECORDS, {})
    check_contract(results)
    assert results["overall"]["n_unanswered"] == 4
    assert all(results["overall"][k] is None for k in METRIC_KEYS)


def test_object_scores_missing_for_one_question():
    records = [*RECORDS, qa("q5", "whole_to_part", [["a"], ["b"], ["a", "b"], ["c"], ["a", "c"]],
                            0, {"a": [A]}, object_correct=0)]  # fmt: skip
    preds = {**PREDICTIONS, "q5": Prediction("q5", [0.1, 0.5, 0.5, 0.5, 0.5], None, {"a": A})}
    strict = score(records, preds)
    assert strict["overall"]["object_accuracy"] == 0.5  # q5 has no object scores: wrong
    assert strict["by_type"]["whole_to_part"]["object_accuracy"] == 0.0
    lenient = score(records, preds, missing="lenient")
    assert lenient["overall"]["object_accuracy"] == 1.0
    assert lenient["by_type"]["whole_to_part"]["object_accuracy"] is None


def test_empty_truth_takes_the_size_of_other_masks():
    rec = qa("e", "identification", [["a", "b"], ["a"], ["b"], ["c"], ["d"]], 0,
             {"a": [A], "b": []})  # fmt: skip
    pred = {"e": Prediction("e", masks={"a": A, "b": mask_io.empty(4, 4)})}
    o = score([rec], pred)["overall"]
    assert (o["micro_giou"], o["ciou"], o["n_masks"]) == (1.0, 1.0, 2)


# --- files, CLI and errors -------------------------------------------------------------------


def prediction_lines() -> list[dict]:
    """Fresh JSON lines of PREDICTIONS (a deep copy: tests edit them)."""
    return [json.loads(json.dumps(p.to_dict())) for p in PREDICTIONS.values()]


def write_inputs(tmp_path: Path, lines: list[dict] | None = None) -> tuple[Path, Path]:
    qa_path, pred_path = tmp_path / "qa.json", tmp_path / "preds.jsonl"
    save_qa_pairs(RECORDS, qa_path)
    if lines is None:
        lines = prediction_lines()
    pred_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return qa_path, pred_path


def test_score_files_writes_results(tmp_path):
    qa_path, pred_path = write_inputs(tmp_path)
    out = tmp_path / "out" / "results.json"
    results = score_files(qa_path, pred_path, out, matching="hungarian", missing="lenient")
    on_disk = json.loads(out.read_text())
    check_contract(on_disk)
    assert on_disk == results
    assert on_disk["config"]["matching"] == "hungarian"
    assert on_disk["config"]["predictions_file"] == str(pred_path)


def test_cli(tmp_path):
    qa_path, pred_path = write_inputs(tmp_path)
    out = tmp_path / "results.json"
    args = ["score", str(qa_path), str(pred_path), "--out", str(out), "--matching", "greedy"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["config"]["matching"] == "greedy"
    assert "Table 2" in result.output and "Table 3" in result.output
    # greedy = paired here (one prediction per part, named right); q4's column comes second.
    assert (
        "| model | 50.0 / 50.0 | 0.0 / 0.0 | 80.0 / 80.0 | – | 50.0 / 50.0 | – |" in result.output
    )
    bad = CliRunner().invoke(cli, [*args[:-2], "--matching", "best"])
    assert bad.exit_code == 2 and "best" in bad.output


def test_cli_error_names_file_line_and_field(tmp_path):
    lines = prediction_lines()
    lines[1]["masks"] = {"x": box(0, 1, 0, 4, size=8)}
    qa_path, pred_path = write_inputs(tmp_path, lines)
    result = CliRunner().invoke(
        cli, ["score", str(qa_path), str(pred_path), "--out", str(tmp_path / "r.json")]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{pred_path}, record line 2 (question_id 'q2'), field 'masks.x'" in result.output
    assert not (tmp_path / "r.json").exists()


def test_unknown_question_id(tmp_path):
    lines = prediction_lines()
    lines.insert(1, {"question_id": "zzz", "choice_scores": None, "masks": None})
    qa_path, pred_path = write_inputs(tmp_path, lines)
    with pytest.raises(FormatError) as err:
        score_files(qa_path, pred_path, tmp_path / "r.json")
    assert (err.value.file, err.value.field) == (str(pred_path), "question_id")
    assert err.value.record == "line 2 (question_id 'zzz')"


@pytest.mark.parametrize(
    ("scores", "message"),
    [(float("nan"), "finite"), (float("inf"), "finite"), ("4 scores", "5")],
)
def test_bad_scores_in_file(tmp_path, scores, message):
    lines = prediction_lines()
    if scores == "4 scores":
        lines[2]["object_choice_scores"] = [0.1, 0.2, 0.3, 0.4]
        field = "object_choice_scores"
    else:
        lines[2]["choice_scores"][3] = scores
        field = "choice_scores"
    qa_path, pred_path = write_inputs(tmp_path, lines)
    with pytest.raises(FormatError, match=message) as err:
        score_files(qa_path, pred_path, tmp_path / "r.json")
    assert (err.value.file, err.value.field) == (str(pred_path), field)
    assert "line 3" in str(err.value.record)


@pytest.mark.parametrize(
    "scores", [[0.1, 0.2, math.nan, 0.4, 0.5], [0.1, 0.2, 0.3], [0.1, True, 0.3, 0.4, 0.5]]
)
def test_bad_scores_in_memory(scores):
    preds = {"q1": Prediction("q1", scores)}
    with pytest.raises(FormatError) as err:
        score(RECORDS, preds, predictions_file="preds.jsonl")
    assert (err.value.field, err.value.record) == ("choice_scores", "question_id 'q1'")


def test_size_mismatch_and_resize(tmp_path):
    preds = {**PREDICTIONS, "q2": Prediction("q2", masks={"x": box(0, 2, 0, 8, size=8)})}
    with pytest.raises(FormatError, match="--resize-mismatched") as err:
        score(RECORDS, preds)
    assert err.value.field == "masks.x"
    with pytest.warns(UserWarning, match="resized 1 predicted mask"):
        o = score(RECORDS, preds, resize_mismatched=True)["by_type"]["positive"]
    assert o["micro_giou"] == pytest.approx(0.8)  # 8x8 rows 0-1 -> 4x4 row 0


def test_inconsistent_truth_sizes():
    rec = qa("s", "identification", [["a", "b"], ["a"], ["b"], ["c"], ["d"]], 0,
             {"a": [A], "b": [box(0, 1, 0, 1, size=8)]})  # fmt: skip
    with pytest.raises(FormatError) as err:
        score([rec], {"s": Prediction("s", masks={})}, qa_file="qa.json")
    assert (err.value.file, err.value.field) == ("qa.json", "segmentations.b[0]")


def test_bad_policy_names():
    with pytest.raises(ConfigError, match="matching"):
        score(RECORDS, PREDICTIONS, matching="best")
    with pytest.raises(ConfigError, match="missing"):
        score(RECORDS, PREDICTIONS, missing="loose")


def test_paired_warns_about_masks_keyed_by_other_names():
    preds = {"q1": Prediction("q1", masks={"a": A, "airplane--part:b": B})}
    with pytest.warns(UserWarning, match="1 predicted mask.*'q1'/'airplane--part:b'"):
        o = score(RECORDS, preds)["by_type"]["identification"]
    assert (o["micro_giou"], o["n_missing_masks"]) == (0.5, 1)
