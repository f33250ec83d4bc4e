"""ADE20K (SceneParsing, ``ADEChallengeData2016``) as a stage-1 semantic segmentation source.

Layout (the seed README renames ``ADEChallengeData2016`` to ``ade20k``; both are accepted)::

    dataset/ade20k/images/{training,validation}/ADE_train_00000001.jpg
    dataset/ade20k/annotations/{training,validation}/ADE_train_00000001.png

Annotation PNGs are 8-bit grayscale: 0 is "other" (unlabeled), 1..150 are the 150 SceneParsing
classes, whose names (``classes/ade20k.json``) are the spans.
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

SPLITS = {"train": "training", "val": "validation"}


def ade_root(root: Path) -> Path:
    """``dataset/ade20k``, or the ``ADEChallengeData2016`` folder inside it if that is present."""
    base = root / "ade20k"
    nested = base / "ADEChallengeData2016"
    return nested if nested.is_dir() else base


def to_classes(raw: np.ndarray) -> np.ndarray:
    """Raw values -> class indices: 0 (other) -> -1, v -> v - 1."""
    classes = raw.astype(np.int32) - 1
    classes[raw == 0] = UNLABELED
    return classes


def open_reader(root: Path, options: Stage1Options) -> LabelMapReader:
    """The ADE20K reader over ``root`` (the ``dataset/`` folder)."""
    base, split = ade_root(root), SPLITS[options.split]
    pairs = pair_files(base / "images" / split, base / "annotations" / split)
    return LabelMapReader(
        "ade20k",
        pairs,
        packaged_class_names("ade20k"),
        to_classes,
        num_classes_per_sample=options.num_classes_per_sample,
    )


def check(root: Path, deep: bool) -> CheckResult:
    base = ade_root(root).relative_to(root).as_posix()
    return check_pairs(
        "ade20k",
        root,
        f"{base}/images/training",
        f"{base}/annotations/training",
        deep=deep,
        n_classes=150,
    )


SOURCE = SourceInfo(
    name="ade20k",
    description="ADE20K SceneParsing (150 classes), stage-1 semantic segmentation",
    group="sem_seg",
    needed_by=("stage1",),
    open_reader=open_reader,
    check=check,
)
