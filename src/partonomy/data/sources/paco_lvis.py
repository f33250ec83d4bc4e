"""PACO-LVIS: COCO-style part annotations on COCO 2017 images.

Layout (seed README)::

    dataset/vlpart/paco/annotations/paco_lvis_v1_{train,val}.json
    dataset/coco/train2017/000000000009.jpg        (``file_name`` is ``train2017/...``)

Categories are objects (``"trash_can"``, ``"glass_(drink_container)"``) next to parts named
``"obj:part"`` (``"trash_can:lid"``). ``_(...)`` qualifiers are stripped and ``_`` becomes a space
in part names (:func:`~partonomy.data.sources.part_coco.parse_obj_part`).
"""

from __future__ import annotations

from pathlib import Path

from partonomy.data.coco_index import CocoIndex, Problems
from partonomy.data.sources.base import CheckResult, SourceInfo, Stage1Options
from partonomy.data.sources.part_coco import (
    BuildResult,
    PartSemSegReader,
    build_part_descriptor,
    check_coco_source,
    parse_obj_part,
)

ANNOTATIONS = "vlpart/paco/annotations/paco_lvis_v1_{split}.json"
IMAGES = "coco"


def build(
    annotations: Path,
    images: Path,
    out: Path,
    *,
    object_names: dict[str, str] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> BuildResult:
    """``partonomy build-descriptor --source paco_lvis``: see :func:`build_part_descriptor`."""
    index = CocoIndex.load(annotations, problems=Problems(skip_bad=skip_bad))
    return build_part_descriptor(
        index,
        parse_obj_part,
        dataset_name="paco_lvis",
        images_dir=Path(images),
        out=Path(out),
        object_names=object_names,
        progress=progress,
    )


def open_reader(root: Path, options: Stage1Options) -> PartSemSegReader:
    path = root / ANNOTATIONS.format(split=options.split)
    index = CocoIndex.load(path, problems=Problems(skip_bad=False))
    return PartSemSegReader(
        "paco_lvis", index, parse_obj_part, root / IMAGES, options.num_classes_per_sample
    )


def check(root: Path, deep: bool) -> CheckResult:
    return check_coco_source(
        "paco_lvis", root, ANNOTATIONS.format(split="train"), f"{IMAGES}/train2017", deep=deep
    )


SOURCE = SourceInfo(
    name="paco_lvis",
    description="PACO-LVIS parts (obj:part categories): descriptor builder and stage-1 sem-seg",
    group="sem_seg",
    needed_by=("stage1", "stage2"),
    open_reader=open_reader,
    build_descriptor=build,
    check=check,
)
