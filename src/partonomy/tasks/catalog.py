"""The task specs registered in :data:`partonomy.registries.TASKS` (one constant per task)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from partonomy.errors import ConfigError
from partonomy.tasks.base import Sample, TaskOptions, TaskSpec
from partonomy.tasks.seg_readers import REFER_SPLITS, read_reason_seg, read_refer
from partonomy.tasks.vqa_readers import read_gqa, read_pope, read_textvqa


def _partonomy_read(data: Path, splits: tuple[str, ...], options: TaskOptions) -> list[Sample]:
    raise ConfigError(
        "the partonomy task runs through partonomy.eval.harness (QA.json), not a reader"
    )


PARTONOMY = TaskSpec(
    name="partonomy",
    kind="partonomy",
    metric="partonomy",
    splits=("val", "test"),
    default_splits=("val",),
    group_key="by_type",
    read=_partonomy_read,
    data="a PARTONOMY QA-pair JSON (docs/formats.md)",
)
REASON_SEG = TaskSpec(
    name="reason_seg",
    kind="segmentation",
    metric="iou",
    splits=("train", "val", "test"),
    default_splits=("val",),
    group_key="by_subset",
    read=read_reason_seg,
    data="the ReasonSeg folder (holding val/, test/) or one split folder",
)
TEXTVQA = TaskSpec(
    name="textvqa",
    kind="vqa",
    metric="soft_vqa",
    splits=("train", "val"),
    default_splits=("val",),
    group_key=None,
    read=read_textvqa,
    data="TextVQA_0.5.1_val.json (or its folder)",
)
GQA = TaskSpec(
    name="gqa",
    kind="vqa",
    metric="exact_match",
    splits=("testdev", "val", "train"),
    default_splits=("testdev",),
    group_key=None,
    read=read_gqa,
    data="{split}_balanced_questions.json (or its folder)",
    rules=("official", "original"),
)
POPE = TaskSpec(
    name="pope",
    kind="vqa",
    metric="pope",
    splits=("val",),
    default_splits=("val",),
    group_key="by_subset",
    read=read_pope,
    data="a coco_pope_{random,popular,adversarial}.json file, or the folder holding all three",
    rules=("official", "original"),
)


def _refer(name: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        kind="segmentation",
        metric="iou",
        splits=REFER_SPLITS[name],
        default_splits=("val",),
        group_key="by_split",
        read=partial(read_refer, name),
        data="the dataset/ folder holding refer_seg/ (as for `partonomy data`)",
    )


REFCOCO = _refer("refcoco")
REFCOCO_PLUS = _refer("refcoco+")
REFCOCOG = _refer("refcocog")
REFCLEF = _refer("refclef")
