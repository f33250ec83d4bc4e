"""Each task's reader on fixtures written in the official formats (conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from partonomy.errors import ConfigError, FormatError
from partonomy.registries import TASKS
from partonomy.registry import UnknownNameError
from partonomy.tasks.base import TaskOptions


def test_task_registry_did_you_mean() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: refcoco"):
        TASKS.get("refcocoo")
    assert set(TASKS.names()) == {
        "partonomy", "reason_seg", "refcoco", "refcoco+", "refcocog", "refclef", "textvqa", "gqa",
        "pope",
    }  # fmt: skip


def test_textvqa(textvqa: Path) -> None:
    samples = TASKS.get("textvqa").load(textvqa, TaskOptions())
    assert [s.question_id for s in samples] == ["34602", "34603"]
    assert len(samples[0].answers) == 10 and samples[0].answers[1] == "dakota"
    assert samples[0].image == textvqa.parent / "train_images" / "003a8ae2ef43b901.jpg"
    # the folder works too, and the declared split is checked
    assert len(TASKS.get("textvqa").load(textvqa.parent, TaskOptions())) == 2
    with pytest.raises(FormatError, match="dataset_type"):
        TASKS.get("textvqa").load(textvqa, TaskOptions(splits=("train",)))


def test_gqa_file_order_and_limit(gqa: Path) -> None:
    task = TASKS.get("gqa")
    samples = task.load(gqa, TaskOptions())
    assert [s.question_id for s in samples] == ["20968379", "201971873", "201640614"]
    assert samples[1].answers == ("umbrella",) and samples[1].full_answer.startswith("The man")
    assert samples[1].image == gqa.parents[1] / "images" / "n161313.jpg"
    assert [s.question_id for s in task.load(gqa, TaskOptions(limit=2))] == [
        "20968379",
        "201971873",
    ]
    assert len(task.load(gqa.parents[1], TaskOptions())) == 3  # the folder: questions/ is searched


def test_pope_folder_prefixes_ids_with_the_category(pope: Path) -> None:
    samples = TASKS.get("pope").load(pope, TaskOptions())
    assert [s.question_id for s in samples][:3] == ["random/1", "random/2", "popular/1"]
    assert {s.group for s in samples} == {"random", "popular", "adversarial"}
    assert samples[0].answers == ("yes",) and samples[0].question.startswith("Is there a snow")
    one = TASKS.get("pope").load(pope / "coco_pope_popular.json", TaskOptions())
    assert [s.question_id for s in one] == ["1", "2"] and one[0].group == "popular"


def test_pope_bad_label_names_line_and_field(pope: Path) -> None:
    path = pope / "coco_pope_random.json"
    path.write_text(json.dumps({"question_id": 1, "image": "x.jpg", "text": "?", "label": "maybe"}))
    with pytest.raises(FormatError, match=r"line 1.*label") as info:
        TASKS.get("pope").load(pope, TaskOptions())
    assert "coco_pope_random.json" in str(info.value)


def test_reason_seg_first_query_groups_and_ignore(reason_seg: Path) -> None:
    samples = TASKS.get("reason_seg").load(reason_seg, TaskOptions())
    by_id = {s.question_id: s for s in samples}
    assert set(by_id) == {"long_one", "short_one"}
    short, long = by_id["short_one"], by_id["long_one"]
    assert short.expression == "the camera lens" and short.group == "short"
    assert long.is_sentence and long.group == "long"
    target = long.load_target()
    assert target.shape == (20, 24) and target.dtype == np.uint8
    assert set(np.unique(target)) == {0, 1, 255}  # the ignore region inside the target
    assert (short.load_target() == 1).sum() > 0


def test_refcoco_every_sentence_of_the_split(refer: Path) -> None:
    task = TASKS.get("refcoco")
    val = task.load(refer, TaskOptions())
    assert [s.question_id for s in val] == ["100", "101", "102"]
    assert [s.expression for s in val][:2] == ["left dog", "dog on the left"]
    assert all(s.group == "val" and s.size == (16, 20) for s in val)
    assert (val[0].load_target() == val[2].load_target()).all()  # polygon vs RLE, same box
    both = task.load(refer / "refer_seg", TaskOptions(splits=("val", "testA")))
    assert [s.group for s in both] == ["val", "val", "val", "testA", "testA"]


def test_unknown_split_is_a_config_error(refer: Path) -> None:
    with pytest.raises(ConfigError, match=r"splits: train, val, test$"):
        TASKS.get("refcocog").load(refer, TaskOptions(splits=("testA",)))


def test_rule_only_where_offered(textvqa: Path) -> None:
    with pytest.raises(ConfigError, match="rule"):
        TASKS.get("textvqa").load(textvqa, TaskOptions(rule="original"))


@pytest.mark.parametrize(
    ("name", "refs_file"), [("refcocog", "refs(umd).p"), ("refclef", "refs(unc).p")]
)
def test_other_refer_datasets_read_their_refs_file(refer: Path, name: str, refs_file: str) -> None:
    import shutil

    src = refer / "refer_seg" / "refcoco"
    dst = refer / "refer_seg" / name
    dst.mkdir()
    shutil.copy(src / "instances.json", dst / "instances.json")
    shutil.copy(src / "refs(unc).p", dst / refs_file)
    images = "saiapr_tc-12" if name == "refclef" else "mscoco/images/train2014"
    samples = TASKS.get(name).load(refer, TaskOptions())
    assert [s.question_id for s in samples] == ["100", "101", "102"]
    assert images in str(samples[0].image)
