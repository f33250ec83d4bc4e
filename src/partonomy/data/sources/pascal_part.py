"""PASCAL-Part in VLPart's COCO-style ``train.json`` (VOC2010 images).

Layout (seed README)::

    dataset/vlpart/pascal_part/train.json
    dataset/vlpart/pascal_part/VOCdevkit/VOC2010/JPEGImages/2008_000002.jpg

Categories are named ``"obj:part"`` (``"aeroplane:wing"``), parsed like PACO's. VLPart's file has
part categories only; object categories, if a file has them, are matched to parts as for PACO.
"""

from __future__ import annotations

from partonomy.data.sources.base import SourceInfo
from partonomy.data.sources.part_coco import parse_obj_part
from partonomy.data.sources.part_coco_dataset import CocoPartDataset

ANNOTATIONS = "vlpart/pascal_part/{split}.json"
IMAGES = "vlpart/pascal_part/VOCdevkit/VOC2010/JPEGImages"

DATASET = CocoPartDataset("pascal_part", parse_obj_part, ANNOTATIONS, IMAGES)
build = DATASET.build
open_reader = DATASET.open_reader
check = DATASET.check

SOURCE = SourceInfo(
    name="pascal_part",
    description="PASCAL-Part (VLPart train.json): descriptor builder and stage-1 sem-seg",
    group="sem_seg",
    needed_by=("stage1", "stage2"),
    open_reader=open_reader,
    build_descriptor=build,
    check=check,
)
