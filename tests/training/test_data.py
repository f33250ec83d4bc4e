"""QA pairs -> training samples (stage 2), and the stage-1 mixture hook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from partonomy.errors import ConfigError
from partonomy.io import masks as mask_io
from partonomy.io.qa_pairs import parse_qa_pair
from partonomy.training.data import (
    DataConfig,
    QADataConfig,
    load_qa_samples,
    load_samples,
    qa_to_samples,
)


def _mask(rows: slice, cols: slice, shape: tuple[int, int] = (6, 8)) -> dict:
    m = np.zeros(shape, np.uint8)
    m[rows, cols] = 1
    return mask_io.encode(m)


def _record(
    qtype: str = "identification_with_label", image: str = "a.png", **extra: object
) -> dict:
    parts = ["wing", "left wing", "tail"]
    rec = {
        "image_path": image,
        "image_label": "glider",
        "question": "What visible parts does the glider in the image have?",
        "question_type": qtype,
        # The correct choice is not first: it is found through answer_types.
        "answer_choices": [f"Wrong {k}." for k in range(4)]
        + ["The glider in the image has the following visible parts: left wing, tail, and wing."],
        "answer_types": ["incorrect"] * 4 + ["correct"],
        "answer_parts": [["tail"]] * 4 + [parts],
        "segmentations": {
            "wing": [_mask(slice(0, 2), slice(0, 2)), _mask(slice(4, 6), slice(6, 8))],
            "left wing": [_mask(slice(2, 3), slice(0, 8))],
            "tail": [_mask(slice(5, 6), slice(0, 1))],
        },
        "object_question": None,
        "object_answer_choices": None,
        "object_answer_types": None,
        "object_answer_classes": None,
    }
    if qtype in ("part_to_whole", "whole_to_part"):
        rec.update(
            object_question="What is the object in the image?",
            object_answer_choices=["It is a glider."] + [f"It is a boat {k}." for k in range(4)],
            object_answer_types=["correct"] + ["incorrect"] * 4,
            object_answer_classes=["glider", "boat", "boat", "boat", "boat"],
        )
    rec.update(extra)
    return rec


def test_identification_sample_masks_and_order() -> None:
    qa = parse_qa_pair(_record(), 0, Path("qa.json"))
    samples, unmatched = qa_to_samples(qa, Path("a.png"))
    assert unmatched == 0 and len(samples) == 1
    sample = samples[0]
    assert sample.conversation == [(qa.question, qa.answer_choices[4])]
    # Ordered by first occurrence in the answer; each mask is the union of its instances.
    assert list(sample.masks) == ["left wing", "tail", "wing"]
    wing = sample.masks["wing"]
    assert wing.dtype == np.uint8 and wing.shape == (6, 8) and int(wing.sum()) == 8
    assert int(sample.masks["left wing"].sum()) == 8


def test_part_whole_types_keep_their_chain() -> None:
    w2p = parse_qa_pair(_record("whole_to_part"), 0, Path("qa.json"))
    (sample,), _ = qa_to_samples(w2p, Path("a.png"))
    assert sample.conversation[0] == ("What is the object in the image?", "It is a glider.")
    assert sample.conversation[1][1].endswith("and wing.") and sample.masks

    p2w = parse_qa_pair(_record("part_to_whole"), 0, Path("qa.json"))
    parts, obj = qa_to_samples(p2w, Path("a.png"))[0]
    assert len(parts.conversation) == 1 and parts.masks
    assert obj.conversation[0] == parts.conversation[0]
    assert obj.conversation[1] == ("What is the object in the image?", "It is a glider.")
    assert obj.masks == {} and obj.meta["turn"] == "object"
    assert len(qa_to_samples(p2w, Path("a.png"), object_turn=False)[0]) == 1


def test_a_part_missing_from_the_answer_text_gets_no_mask() -> None:
    rec = _record()
    rec["answer_choices"][4] = "The glider in the image has the following visible parts: tail."
    (sample,), unmatched = qa_to_samples(parse_qa_pair(rec, 0, Path("q.json")), Path("a.png"))
    assert unmatched == 2 and list(sample.masks) == ["tail"]


def test_every_listed_file_is_trained(tmp_path: Path) -> None:
    files = []
    for split, n in (("partimagenet", 3), ("paco_lvis", 2), ("pascal_part", 1)):
        path = tmp_path / split / f"{split}_qa_pairs_train.json"
        path.parent.mkdir()
        path.write_text(json.dumps([_record(image=f"img{k}.png") for k in range(n)]))
        files.append(str(path))
    samples = load_qa_samples(QADataConfig(files=files))
    assert len(samples) == 6  # the original trained only the last split (1 record)
    assert {samples[k].source for k in range(6)} == {Path(f).stem for f in files}
    # Relative image paths resolve against each QA file's directory (or image_root).
    assert samples[0].image == tmp_path / "partimagenet" / "img0.png"
    rooted = load_qa_samples(QADataConfig(files=files[:1], image_root="/data/img"))
    assert rooted[0].image == Path("/data/img/img0.png")
    assert len(load_samples(DataConfig(qa=QADataConfig(files=files), limit=4))) == 4


def test_filters_and_one_question_per_image(tmp_path: Path) -> None:
    recs = [_record(image="x.png"), _record(image="x.png"), _record("positive_with_label")]
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(recs))
    assert len(load_qa_samples(QADataConfig(files=[str(path)]))) == 3
    one = load_qa_samples(QADataConfig(files=[str(path)], one_question_per_image=True))
    assert len(one) == 2  # one per (image, question type)
    only = QADataConfig(files=[str(path)], question_types=["positive_with_label"])
    assert len(load_qa_samples(only)) == 1
    with pytest.raises(ConfigError, match="unknown type"):
        QADataConfig(files=[str(path)], question_types=["identifcation"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_qa_samples(QADataConfig(files=[str(tmp_path / "nope.json")]))
    with pytest.raises(ConfigError, match="empty"):
        load_qa_samples(QADataConfig())


def test_stage1_mixture_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"data\.mixture"):
        load_samples(DataConfig(kind="mixture", mixture={"sample_rates": {"sem_seg": -1}}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_samples(DataConfig(kind="mixture", mixture={"roots": "dataset"}))
