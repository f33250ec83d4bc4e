"""COCO-Stuff 164K as a stage-1 semantic segmentation source.

Layout (seed README; the raw ``stuffthingmaps_trainval2017`` folder is accepted too)::

    dataset/cocostuff/train2017/000000000009.png     (or cocostuff/stuffthingmaps_trainval2017/...)
    dataset/coco/train2017/000000000009.jpg

``stuffthingmaps`` PNGs are 8-bit grayscale: value v in 0..181 is class ``names[v]`` (COCO id
v + 1, ``classes/cocostuff.json``), 255 is unlabeled. As in the original, classes whose name has a
hyphen (``wall-other``, ``floor-wood``, ...) are never asked about; their pixels stay 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from partonomy.data.sources.base import CheckResult, SourceInfo, Stage1Options
from partonomy.data.sources.label_maps import (
    UNLABELED,
    LabelMapReader,
    check_pairs,
    packaged_class_names,
    pair_files,
)

SPLITS = {"train": "train2017", "val": "val2017"}
UNLABELED_VALUE = 255


def labels_dir(root: Path, split: str) -> Path:
    """``cocostuff/<split>``, or ``cocostuff/stuffthingmaps_trainval2017/<split>`` if present."""
    raw = root / "cocostuff" / "stuffthingmaps_trainval2017" / split
    return raw if raw.is_dir() else root / "cocostuff" / split


def to_classes(raw: np.ndarray) -> np.ndarray:
    """Raw values -> class indices: 255 -> -1, v -> v."""
    classes = raw.astype(np.int32)
    classes[raw == UNLABELED_VALUE] = UNLABELED
    return classes


def askable_classes(names: list[str]) -> list[int]:
    """Indices of the classes that may be asked about (no hyphenated ``*-other`` style names)."""
    return [k for k, n in enumerate(names) if "-" not in n]


def open_reader(root: Path, options: Stage1Options) -> LabelMapReader:
    split = SPLITS[options.split]
    names = packaged_class_names("cocostuff")
    pairs = pair_files(root / "coco" / split, labels_dir(root, split))
    return LabelMapReader(
        "cocostuff",
        pairs,
        names,
        to_classes,
        askable=askable_classes(names),
        num_classes_per_sample=options.num_classes_per_sample,
    )


def check(root: Path, deep: bool) -> CheckResult:
    return check_pairs(
        "cocostuff",
        root,
        "coco/train2017",
        labels_dir(root, "train2017").relative_to(root).as_posix(),
        deep=deep,
        n_classes=181,
    )


SOURCE = SourceInfo(
    name="cocostuff",
    description="COCO-Stuff 164K stuffthingmaps (182 ids), stage-1 semantic segmentation",
    group="sem_seg",
    needed_by=("stage1",),
    open_reader=open_reader,
    check=check,
)
