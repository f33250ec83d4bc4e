"""QA-pair JSON: round trips (including the original generator's layout) and every bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.qa_pairs import load_qa_pairs, save_qa_pairs

FIXTURES = Path(__file__).parents[1] / "fixtures" / "qa"


def _raw(name: str = "tiny_qa.json") -> list[dict]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _write(tmp_path: Path, records: object, name: str = "qa.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _error(tmp_path: Path, records: object) -> FormatError:
    with pytest.raises(FormatError) as info:
        load_qa_pairs(_write(tmp_path, records))
    return info.value


def test_fixture_loads_with_ids_types_and_correct_index():
    records = load_qa_pairs(FIXTURES / "tiny_qa.json")
    assert [qa.question_id for qa in records] == [
        "plane-ident",
        "plane-pos",
        "boat-neg",
        "boat-p2w",
        "mug-w2p",
        "mug-pos-empty-lid",
    ]
    pos = records[1]
    assert pos.correct_index == 2  # found through answer_types, not assumed first
    assert pos.correct_parts == ["fuselage", "tail", "wing"]
    p2w, w2p = records[3], records[4]
    assert p2w.object_correct_index == 3 and p2w.object_answer_classes[3] == "sailboat"
    assert w2p.object_correct_index == 0
    assert records[0].object_correct_index is None


def test_round_trip_is_identical(tmp_path):
    records = load_qa_pairs(FIXTURES / "tiny_qa.json")
    out = tmp_path / "again.json"
    save_qa_pairs(records, out)
    assert json.loads(out.read_text()) == _raw()
    assert load_qa_pairs(out) == records


def test_original_layout_loads_unchanged_and_writes_back_identically(tmp_path):
    """The original generator's records (no question_id, answer_operations kept in place,
    orjson indent 2) are written back byte for byte (up to the final newline)."""
    text = (FIXTURES / "original_layout.json").read_text(encoding="utf-8")
    records = load_qa_pairs(FIXTURES / "original_layout.json")
    assert [qa.question_id for qa in records] == ["0", "1", "2"]
    assert not any(qa.explicit_id for qa in records)
    assert records[0].extra["answer_operations"][1] == [
        {"operation": "delete", "part": "landing gear"}
    ]
    out = tmp_path / "back.json"
    save_qa_pairs(records, out, indent=2)
    assert out.read_text(encoding="utf-8") == text + "\n"
    keys = list(json.loads(out.read_text())[0])
    assert keys.index("answer_operations") == keys.index("answer_parts") + 1


def test_masks_in_other_encodings_are_normalised_to_compressed_rle(tmp_path):
    raw = _raw()[:1]
    wing = mask_io.decode(raw[0]["segmentations"]["wing"][0])
    ys, xs = np.nonzero(wing)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    raw[0]["segmentations"]["wing"] = [
        {"segmentation": raw[0]["segmentations"]["wing"][0]},
        {"polygon": [[x0, y0, x1, y0, x1, y1, x0, y1]], "size": list(wing.shape)},
    ]
    qa = load_qa_pairs(_write(tmp_path, raw))[0]
    first, second = qa.segmentations["wing"]
    assert set(first) == {"size", "counts"} and isinstance(first["counts"], str)
    assert np.array_equal(mask_io.decode(first), wing)
    assert mask_io.area(second) >= wing.sum()  # the rasterised box covers the wing


# --- bad inputs: one test each, every error names the file, the record and the field --------


def test_truncated_json(tmp_path):
    path = tmp_path / "qa.json"
    text = (FIXTURES / "tiny_qa.json").read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(FormatError, match="truncated") as info:
        load_qa_pairs(path)
    assert info.value.file == str(path)
    assert "line 1, column" in str(info.value)


def test_not_a_list(tmp_path):
    err = _error(tmp_path, {"records": []})
    assert "JSON list" in str(err)


def test_unknown_question_type_suggests_the_closest(tmp_path):
    raw = _raw()
    raw[2]["question_type"] = "negativ_with_label"
    err = _error(tmp_path, raw)
    assert err.field == "question_type"
    assert err.record == "2 (question_id 'boat-neg')"
    assert "negative_with_label" in str(err)


@pytest.mark.parametrize("n_correct", [0, 2])
def test_answer_types_without_exactly_one_correct(tmp_path, n_correct):
    raw = _raw()
    raw[0]["answer_types"] = ["correct"] * n_correct + ["incorrect"] * (5 - n_correct)
    err = _error(tmp_path, raw)
    assert err.field == "answer_types" and err.record.startswith("0 ")
    assert f"has {n_correct} 'correct'" in str(err)


def test_unknown_answer_type(tmp_path):
    raw = _raw()
    raw[0]["answer_types"][1] = "wrong"
    err = _error(tmp_path, raw)
    assert err.field == "answer_types" and "'wrong'" in str(err)


@pytest.mark.parametrize("n", [4, 6])
def test_fewer_or_more_than_five_choices(tmp_path, n):
    raw = _raw()
    choices = raw[1]["answer_choices"]
    raw[1]["answer_choices"] = (choices * 2)[:n]
    err = _error(tmp_path, raw)
    assert err.field == "answer_choices"
    assert f"has {n} entries" in str(err) and "exactly 5" in str(err)


def test_wrong_number_of_answer_parts(tmp_path):
    raw = _raw()
    raw[0]["answer_parts"] = raw[0]["answer_parts"][:3]
    assert _error(tmp_path, raw).field == "answer_parts"


def test_object_question_fields_checked_for_part_whole_types(tmp_path):
    raw = _raw()
    raw[3]["object_answer_choices"] = raw[3]["object_answer_choices"][:4]
    err = _error(tmp_path, raw)
    assert err.field == "object_answer_choices" and err.record.startswith("3 ")
    raw = _raw()
    raw[4]["object_question"] = None
    assert _error(tmp_path, raw).field == "object_question"


def test_duplicate_question_ids(tmp_path):
    raw = _raw()
    raw[3]["question_id"] = "plane-pos"
    err = _error(tmp_path, raw)
    assert err.field == "question_id" and err.record == 3
    assert "first at record 1" in str(err)


def test_implicit_and_explicit_ids_can_collide(tmp_path):
    raw = _raw()[:2]
    del raw[0]["question_id"]  # gets id "0"
    raw[1]["question_id"] = "0"
    assert "duplicate question_id '0'" in str(_error(tmp_path, raw))


def test_correct_part_without_masks(tmp_path):
    raw = _raw()
    del raw[0]["segmentations"]["tail"]
    err = _error(tmp_path, raw)
    assert err.field == "segmentations" and "'tail'" in str(err)


def test_malformed_mask(tmp_path):
    raw = _raw()
    raw[0]["segmentations"]["wing"] = [{"counts": "abc"}]
    err = _error(tmp_path, raw)
    assert err.field == "segmentations.wing[0]" and "not a mask" in str(err)


def test_missing_string_field(tmp_path):
    raw = _raw()
    del raw[5]["image_path"]
    err = _error(tmp_path, raw)
    assert err.field == "image_path" and err.record.startswith("5 ")


def test_record_not_an_object(tmp_path):
    raw = _raw()
    raw.insert(1, ["not", "a", "record"])
    err = _error(tmp_path, raw)
    assert err.record == 1


def test_error_message_names_file_record_and_field(tmp_path):
    raw = copy.deepcopy(_raw())
    raw[0]["answer_choices"] = raw[0]["answer_choices"][:2]
    text = str(_error(tmp_path, raw))
    assert str(tmp_path / "qa.json") in text
    assert "record 0 (question_id 'plane-ident')" in text
    assert "field 'answer_choices'" in text


def test_an_id_added_after_loading_is_written_first(tmp_path):
    qa = load_qa_pairs(FIXTURES / "original_layout.json")[0]
    qa.question_id, qa.explicit_id = "new-id", True
    assert next(iter(qa.to_dict())) == "question_id"
