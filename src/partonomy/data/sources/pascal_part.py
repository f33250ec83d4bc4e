"""PASCAL-Part in VLPart's COCO-style ``train.json`` (VOC2010 images).

Layout (seed README)::

    dataset/vlpart/pascal_part/train.json
    dataset/vlpart/pascal_part/VOCdevkit/VOC2010/JPEGImages/2008_000002.jpg

Categories are named ``"obj:part"`` (``"aeroplane:wing"``), parsed like PACO's. VLPart's file has
part categories only; object categories, if a file has them, are matched to parts as for PACO.
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

ANNOTATIONS = "vlpart/pascal_part/{split}.json"
IMAGES = "vlpart/pascal_part/VOCdevkit/VOC2010/JPEGImages"


def build(
    annotations: Path,
    images: Path,
    out: Path,
    *,
    object_names: dict[str, str] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> BuildResult:
    """``partonomy build-descriptor --source pascal_part``: see :func:`build_part_descriptor`."""
    index = CocoIndex.load(annotations, problems=Problems(skip_bad=skip_bad))
    return build_part_descriptor(
        index,
        parse_obj_part,
        dataset_name="pascal_part",
        images_dir=Path(images),
        out=Path(out),
        object_names=object_names,
        progress=progress,
    )


def open_reader(root: Path, options: Stage1Options) -> PartSemSegReader:
    path = root / ANNOTATIONS.format(split=options.split)
    index = CocoIndex.load(path, problems=Problems(skip_bad=False))
    return PartSemSegReader(
        "pascal_part", index, parse_obj_part, root / IMAGES, options.num_classes_per_sample
    )


def check(root: Path, deep: bool) -> CheckResult:
    return check_coco_source(
        "pascal_part", root, ANNOTATIONS.format(split="train"), IMAGES, deep=deep
    )


SOURCE = SourceInfo(
    name="pascal_part",
    description="PASCAL-Part (VLPart train.json): descriptor builder and stage-1 sem-seg",
    group="sem_seg",
    needed_by=("stage1", "stage2"),
    open_reader=open_reader,
    build_descriptor=build,
    check=check,
)
