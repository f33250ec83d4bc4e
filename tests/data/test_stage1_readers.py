"""Stage-1 readers: PACO-LVIS / PASCAL-Part sem-seg, refCOCO family, LLaVA-Instruct, ReasonSeg."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from partonomy.data.sample import IGNORE_INDEX
from partonomy.data.sources import llava_instruct, paco_lvis, pascal_part, reason_seg, refer
from partonomy.data.sources.base import Stage1Options
from partonomy.errors import FormatError


def _fg(sample):
    return {k: int((m == 1).sum()) for k, m in sample.masks.items()}


# ---------------------------------------------------------------- part datasets


def test_paco_sem_seg_names_and_union_masks(tmp_path, real):
    real.make_paco(tmp_path)
    reader = paco_lvis.open_reader(tmp_path, Stage1Options(num_classes_per_sample=10))
    assert len(reader) == 3
    seen: dict[str, int] = {}
    for seed in range(30):
        sample = reader.sample(1, np.random.default_rng(seed))  # image 285: cans and pedals
        seen.update(_fg(sample))
        assert sample.image.name == "000000000285.jpg"
    # one mask per class: the union of the 3 cans (100 + 400 + 36 px) and of the 2 pedals
    # (10x2 + 20x2 px); a part is named "obj part" or "the part of the obj"
    assert seen == {
        "trash can": 536,
        "trash can foot pedal": 60,
        "the foot pedal of the trash can": 60,
    }


def test_paco_parts_named_in_the_answer_once(tmp_path, real):
    real.make_paco(tmp_path)
    reader = paco_lvis.open_reader(tmp_path, Stage1Options(num_classes_per_sample=5))
    sample = reader.sample(0, np.random.default_rng(3))  # image 139: mug, glass and parts
    [(_, answer)] = sample.conversation
    assert 1 <= len(sample.masks) <= 5
    # names that contain one another ("mug" and "mug body") are never asked together
    names = list(sample.masks)
    assert not any(a != b and a in b for a in names for b in names)
    assert all(answer.count(n) == 1 for n in names)


def test_pascal_part_sem_seg(tmp_path, real):
    real.make_pascal_part(tmp_path)
    reader = pascal_part.open_reader(tmp_path, Stage1Options())
    sample = reader.sample(0, np.random.default_rng(0))
    areas = sorted(_fg(sample).values())
    assert areas == [100, 150, 400]  # head (uncompressed RLE), wing, torso
    assert sample.image.parts[-4:] == ("VOCdevkit", "VOC2010", "JPEGImages", "2008_000002.jpg")


# ---------------------------------------------------------------- referring segmentation


@pytest.mark.parametrize(
    ("dataset", "split_by", "images"),
    [
        ("refcoco", "unc", "mscoco/images/train2014"),
        ("refcoco+", "unc", "mscoco/images/train2014"),
        ("refcocog", "umd", "mscoco/images/train2014"),
        ("refclef", "unc", "saiapr_tc-12"),
    ],
)
def test_refer_reader(tmp_path, real, dataset, split_by, images):
    real.make_refer(tmp_path, dataset, split_by)
    reader = refer.open_dataset(tmp_path, dataset, Stage1Options())
    assert len(reader) == 1
    sample = reader.sample(0, np.random.default_rng(0))
    # train refs only: 3 sentences; ann 100 = [0,0,10,10] (100 px), ann 101 = [10,10,20,15] (50 px)
    assert _fg(sample) == {"man on the left": 100, "guy in red": 100, "woman with umbrella": 50}
    assert sample.image == tmp_path / "refer_seg" / "images" / images / (
        "COCO_train2014_000000000009.jpg"
    )
    val = refer.open_dataset(tmp_path, dataset, Stage1Options(split="val"))
    assert _fg(val.sample(0, np.random.default_rng(0))) == {"left man": 100}


def test_refer_limits_expressions_per_sample(tmp_path, real):
    real.make_refer(tmp_path, "refcoco")
    reader = refer.open_dataset(tmp_path, "refcoco", Stage1Options(num_classes_per_sample=1))
    draws = {next(iter(reader.sample(0, np.random.default_rng(s)).masks)) for s in range(30)}
    assert draws == {"man on the left", "guy in red", "woman with umbrella"}


def test_refer_rejects_a_malicious_refs_pickle(tmp_path, real):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    real.make_refer(tmp_path, "refcoco")
    (tmp_path / "refer_seg" / "refcoco" / "refs(unc).p").write_bytes(
        pickle.dumps([Evil()], protocol=2)
    )
    with pytest.raises(FormatError, match="refused"):
        refer.open_dataset(tmp_path, "refcoco", Stage1Options())
    assert not (tmp_path / "pwned").exists()


def test_refer_bad_refs_name_the_ref(tmp_path, real):
    real.make_refer(tmp_path, "refcoco")
    refs = real.refer_refs()
    refs[1]["ann_id"] = 555
    (tmp_path / "refer_seg" / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    with pytest.raises(FormatError) as info:
        refer.open_dataset(tmp_path, "refcoco", Stage1Options())
    assert "ref_id 1" in str(info.value) and "annotation id 555" in str(info.value)
    del refs[1]["ann_id"]
    (tmp_path / "refer_seg" / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    with pytest.raises(FormatError, match=r"ref_id 1.*ann_id"):
        refer.open_dataset(tmp_path, "refcoco", Stage1Options())


# ---------------------------------------------------------------- VQA


def test_llava_instruct_reader(tmp_path, real):
    real.make_llava(tmp_path)
    reader = llava_instruct.open_reader(tmp_path, Stage1Options())
    assert len(reader) == 2
    first = reader.sample(0, np.random.default_rng(0))
    assert first.conversation == [
        ("What are the colors of the bus?", "The bus is white and red."),
        ("What feature can be seen on the back of the bus?", "An advertisement."),
    ]
    assert first.masks == {} and first.image == tmp_path / "coco" / "train2017" / "000000033471.jpg"
    second = reader.sample(1, np.random.default_rng(0))  # "<image>" at the end of the question
    assert second.conversation == [("Where is the cat?", "On the sofa.")]


def test_llava_bad_records(tmp_path, real):
    real.make_llava(tmp_path)
    path = tmp_path / "llava_dataset" / "llava_instruct_150k.json"
    records = json.loads(path.read_text())
    records[1]["conversations"][0]["from"] = "gpt"
    path.write_text(json.dumps(records))
    reader = llava_instruct.open_reader(tmp_path, Stage1Options())
    with pytest.raises(FormatError) as info:
        reader.sample(1, np.random.default_rng(0))
    assert "id '000000052846'" in str(info.value) and "conversations[0]" in str(info.value)


# ---------------------------------------------------------------- ReasonSeg


def test_reason_seg_mask_ignore_regions(tmp_path, real):
    real.make_reason_seg(tmp_path)
    reader = reason_seg.open_reader(tmp_path, Stage1Options(explanatory=0.0))
    assert len(reader) == 2
    _, _, mask = reader.load(0)
    # target [0,0,6,6] = 36 px with the smaller ignore square [2,2,4,4] (4 px) painted over it,
    # plus the ignore square [7,7,10,10] (9 px); the "flag" shape is dropped
    assert int((mask == 1).sum()) == 32 and int((mask == IGNORE_INDEX).sum()) == 13
    assert mask[3, 3] == IGNORE_INDEX and mask[0, 0] == 1 and mask[9, 9] == IGNORE_INDEX
    assert mask[6, 0] == 0


def test_reason_seg_samples(tmp_path, real):
    real.make_reason_seg(tmp_path)
    reader = reason_seg.open_reader(tmp_path, Stage1Options(explanatory=0.0))
    sentence = reader.sample(0, np.random.default_rng(0))
    [(question, answer)] = sentence.conversation
    assert list(sentence.masks) == [reason_seg.SENTENCE_SPAN]
    assert reason_seg.SENTENCE_SPAN in answer
    assert question.split("?")[0] + "?" in (
        "What part of this object keeps food cold?",
        "Which region stores the food?",
    )
    phrase = reader.sample(1, np.random.default_rng(0))
    [(question, answer)] = phrase.conversation
    assert list(phrase.masks) == ["the camera lens"] and "the camera lens" in answer
    assert int((phrase.masks["the camera lens"] == 1).sum()) == 10  # [0,0,2,5]


def test_reason_seg_explanatory_answers(tmp_path, real):
    real.make_reason_seg(tmp_path)
    reader = reason_seg.open_reader(tmp_path, Stage1Options(explanatory=1.0))
    sample = reader.sample(0, np.random.default_rng(0))
    [(question, answer)] = sample.conversation
    assert "explain" in question
    assert answer.endswith("The fridge door holds the cold air.")
    assert sample.meta["explanatory"] == "True"
    # an image without an explanation never gets one
    assert reader.sample(1, np.random.default_rng(0)).meta["explanatory"] == "False"


def test_reason_seg_bad_polygon(tmp_path, real):
    real.make_reason_seg(tmp_path)
    path = tmp_path / "reason_seg" / "ReasonSeg" / "train" / "b.json"
    record = json.loads(path.read_text())
    record["shapes"][0]["points"] = [[0, 0], [2, 2]]
    path.write_text(json.dumps(record))
    reader = reason_seg.open_reader(tmp_path, Stage1Options())
    with pytest.raises(FormatError) as info:
        reader.sample(1, np.random.default_rng(0))
    message = str(info.value)
    assert str(path) in message and "shapes[0]" in message and "at least 3 points" in message
