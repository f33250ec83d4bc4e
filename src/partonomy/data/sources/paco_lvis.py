"""PACO-LVIS: COCO-style part annotations on COCO 2017 images.

Layout (seed README)::

    dataset/vlpart/paco/annotations/paco_lvis_v1_{train,val}.json
    dataset/coco/train2017/000000000009.jpg        (``file_name`` is ``train2017/...``)

Categories are objects (``"trash_can"``, ``"glass_(drink_container)"``) next to parts named
``"obj:part"`` (``"trash_can:lid"``). ``_(...)`` qualifiers are stripped and ``_`` becomes a space
in part names (:func:`~partonomy.data.sources.part_coco.parse_obj_part`).
"""

from __future__ import annotations

from partonomy.data.sources.base import SourceInfo
from partonomy.data.sources.part_coco import parse_obj_part
from partonomy.data.sources.part_coco_dataset import CocoPartDataset

ANNOTATIONS = "vlpart/paco/annotations/paco_lvis_v1_{split}.json"
IMAGES = "coco"

DATASET = CocoPartDataset(
    "paco_lvis", parse_obj_part, ANNOTATIONS, IMAGES, check_images=f"{IMAGES}/train2017"
)
build = DATASET.build
open_reader = DATASET.open_reader
check = DATASET.check

SOURCE = SourceInfo(
    name="paco_lvis",
    description="PACO-LVIS parts (obj:part categories): descriptor builder and stage-1 sem-seg",
    group="sem_seg",
    needed_by=("stage1", "stage2"),
    open_reader=open_reader,
    build_descriptor=build,
    check=check,
)
