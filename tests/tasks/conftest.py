"""Tiny datasets in the official formats of each task, written into ``tmp_path``.

Layouts and field names follow the official releases (TextVQA 0.5.1 JSON, GQA balanced questions,
POPE ``coco_pope_*.json`` JSONL, ReasonSeg labelme JSON, refer ``refs(unc).p`` + COCO
``instances.json``); images are small solid JPEGs.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from partonomy.io import masks as mask_io


def _jpg(path: Path, h: int, w: int, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, dtype=np.uint8)).save(path, quality=95)


@pytest.fixture
def textvqa(tmp_path: Path) -> Path:
    root = tmp_path / "textvqa"
    data = [
        {
            "question_id": 34602,
            "question": "what is the brand of this camera?",
            "image_id": "003a8ae2ef43b901",
            "answers": [
                *("nous les gosses", "dakota", "clos culombu", "dakota digital", "dakota"),
                *("dakota", "dakota digital", "dakota digital", "dakota", "dakota"),
            ],
            "set_name": "val",
        },
        {
            "question_id": 34603,
            "question": "how many cups?",
            "image_id": "003a8ae2ef43b902",
            "answers": ["two", "2", "2", "two cups", "2", "3", "2", "2", "2", "2"],
            "set_name": "val",
        },
    ]
    path = root / "TextVQA_0.5.1_val.json"
    root.mkdir()
    path.write_text(json.dumps({"dataset_type": "val", "dataset_name": "textvqa", "data": data}))
    for item in data:
        _jpg(root / "train_images" / f"{item['image_id']}.jpg", 24, 32)
    return path


@pytest.fixture
def gqa(tmp_path: Path) -> Path:
    root = tmp_path / "gqa"
    questions = {
        "20968379": {
            "imageId": "n288870",
            "question": "Do the shorts have dark color?",
            "answer": "yes",
            "fullAnswer": "Yes, the shorts are dark.",
        },
        "201971873": {
            "imageId": "n161313",
            "question": "What is the man holding?",
            "answer": "umbrella",
            "fullAnswer": "The man is holding an umbrella.",
        },
        "201640614": {
            "imageId": "n161313",
            "question": "Which color is the umbrella?",
            "answer": "black",
            "fullAnswer": "The umbrella is black.",
        },
    }
    path = root / "questions" / "testdev_balanced_questions.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(questions))
    for image_id in ("n288870", "n161313"):
        _jpg(root / "images" / f"{image_id}.jpg", 20, 30)
    return path


_R, _P, _A = (f"COCO_val2014_000000{n}.jpg" for n in ("310196", "210789", "429109"))
POPE_LINES = {
    "random": [(_R, "Is there a snowboard in the image?", "yes"), (_R, "Is there a dog?", "no")],
    "popular": [(_P, "Is there a dining table?", "yes"), (_P, "Is there a chair?", "no")],
    "adversarial": [(_A, "Is there a car in the image?", "no"), (_A, "Is there a truck?", "yes")],
}


@pytest.fixture
def pope(tmp_path: Path) -> Path:
    root = tmp_path / "pope"
    root.mkdir()
    for category, lines in POPE_LINES.items():
        with open(root / f"coco_pope_{category}.json", "w") as handle:
            for k, (image, text, label) in enumerate(lines, start=1):
                record = {"question_id": k, "image": image, "text": text, "label": label}
                handle.write(json.dumps(record) + "\n")
                _jpg(root / "val2014" / image, 16, 16)
    return root


@pytest.fixture
def reason_seg(tmp_path: Path) -> Path:
    """Two val images: a short query (a 4x6 target box) and a sentence query whose target has an
    ignore region inside a larger target."""
    root = tmp_path / "ReasonSeg"
    val = root / "val"
    _jpg(val / "short_one.jpg", 20, 24)
    _jpg(val / "long_one.jpg", 20, 24)
    (val / "short_one.json").write_text(
        json.dumps(
            {
                "text": ["the camera lens", "the lens"],
                "is_sentence": False,
                "shapes": [
                    {"label": "target", "points": [[2, 2], [8, 2], [8, 6], [2, 6]]},
                    {"label": "flag", "points": [[0, 0], [1, 0], [1, 1]]},
                ],
                "imageHeight": 20,
                "imageWidth": 24,
            }
        )
    )
    (val / "long_one.json").write_text(
        json.dumps(
            {
                "text": ["What could someone sit on while waiting here?"],
                "is_sentence": True,
                "shapes": [
                    {"label": "target", "points": [[0, 0], [12, 0], [12, 10], [0, 10]]},
                    {"label": "ignore", "points": [[2, 2], [6, 2], [6, 6], [2, 6]]},
                ],
            }
        )
    )
    return root


@pytest.fixture
def refer(tmp_path: Path) -> Path:
    """``dataset/`` with refcoco (unc): 2 images, 3 refs (val, val, testA), 5 sentences."""
    root = tmp_path / "dataset"
    ref_dir = root / "refer_seg" / "refcoco"
    ref_dir.mkdir(parents=True)
    images_dir = root / "refer_seg" / "images" / "mscoco" / "images" / "train2014"
    images = [
        {"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": 16, "width": 20},
        {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "height": 12, "width": 12},
    ]
    for img in images:
        _jpg(images_dir / img["file_name"], img["height"], img["width"])
    box = mask_io.from_polygons([[1, 1, 9, 1, 9, 9, 1, 9]], 16, 20)
    anns = [
        {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 9, 1, 9, 9, 1, 9]]},
        {"id": 11, "image_id": 1, "category_id": 1, "segmentation": box},
        {"id": 12, "image_id": 2, "category_id": 1, "segmentation": [[0, 0, 6, 0, 6, 6, 0, 6]]},
    ]
    for a in anns:
        a.update(area=1.0, bbox=[0, 0, 1, 1], iscrowd=0)
    (ref_dir / "instances.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]})
    )

    def sents(*items: tuple[int, str]) -> list[dict[str, object]]:
        return [{"sent_id": i, "sent": s, "raw": s, "tokens": s.split()} for i, s in items]

    refs = [
        {"ref_id": 0, "ann_id": 10, "image_id": 1, "split": "val", "category_id": 1,
         "sentences": sents((100, "left dog"), (101, "dog on the left"))},
        {"ref_id": 1, "ann_id": 11, "image_id": 1, "split": "val", "category_id": 1,
         "sentences": sents((102, "the same box"))},
        {"ref_id": 2, "ann_id": 12, "image_id": 2, "split": "testA", "category_id": 1,
         "sentences": sents((103, "man in red"), (104, "red shirt guy"))},
    ]  # fmt: skip
    with open(ref_dir / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)
    return root
