from __future__ import annotations

from collections import Counter

import pytest

from partonomy.io.qa_pairs import QAPair
from partonomy.qa.split import _val_quotas, split_records


def _qa(image: str, label: str, qtype: str = "identification") -> QAPair:
    return QAPair(
        question_id=f"{image}-{qtype}",
        image_path=image,
        image_label=label,
        question="q",
        question_type=qtype,
        answer_choices=["a"] * 5,
        answer_types=["correct"] + ["incorrect"] * 4,
        answer_parts=[["p"]] * 5,
        segmentations={},
    )


def _records(images_per_label: dict[str, int], types: int = 3) -> list[QAPair]:
    records = []
    for label, n in images_per_label.items():
        for i in range(n):
            for t in range(types):
                records.append(_qa(f"{label}/{i}.jpg", label, f"t{t}"))
    return records


def test_largest_remainder_quotas() -> None:
    import numpy as np

    # 10*0.2 = 2, 7*0.2 = 1.4, 3*0.2 = 0.6: floors 2, 1, 0 (3); total round(4.0) = 4
    # the one leftover goes to the largest remainder (0.6)
    assert _val_quotas([10, 7, 3], 0.2, np.random.default_rng(0)) == [2, 1, 1]


def test_split_by_image_stratified() -> None:
    sizes = {"car": 50, "bus": 20, "cat": 13, "owl": 7, "rare": 1}
    records = _records(sizes)
    train, val = split_records(records, val_fraction=0.2, seed=42)
    assert len(train) + len(val) == len(records)
    train_images = {qa.image_path for qa in train}
    val_images = {qa.image_path for qa in val}
    assert not train_images & val_images  # no image on both sides
    n_images = sum(sizes.values())
    assert len(val_images) == round(n_images * 0.2)  # 91 * 0.2 = 18.2 -> 18
    per_label = Counter(path.split("/")[0] for path in val_images)
    for label, n in sizes.items():
        # stratified: floor or ceil of the label's share
        assert per_label.get(label, 0) in (int(n * 0.2), int(n * 0.2) + 1)
    # order kept; all three questions of an image together
    assert train == [qa for qa in records if qa.image_path in train_images]
    assert all(Counter(qa.image_path for qa in val)[p] == 3 for p in val_images)


def test_split_is_seeded_and_order_independent() -> None:
    records = _records({"car": 30, "cat": 20})
    a = split_records(records, seed=42)
    b = split_records(list(reversed(records)), seed=42)
    c = split_records(records, seed=1)
    assert {qa.image_path for qa in a[1]} == {qa.image_path for qa in b[1]}
    assert {qa.image_path for qa in a[1]} != {qa.image_path for qa in c[1]}


def test_split_edges() -> None:
    records = _records({"car": 5})
    assert split_records(records, val_fraction=0.0)[1] == []
    assert split_records(records, val_fraction=1.0)[0] == []
    assert split_records([], val_fraction=0.2) == ([], [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_records(records, val_fraction=1.5)
