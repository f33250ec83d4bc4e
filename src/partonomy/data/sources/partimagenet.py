"""PartImageNet: COCO-style part annotations on ImageNet images (object-centric, parts only).

Layout (as the PARTONOMY code reads it)::

    dataset/PartImageNet/annotations/train/train.json
    dataset/PartImageNet/images/train/n01440764_10043.JPEG   (per-synset subfolders also found)

The supercategory is the object (``"Quadruped"`` -> ``quadruped``); the part is the category name
minus the supercategory, lower-cased (``"Quadruped Head"`` -> ``head``), with the dataset's typo
``tier`` fixed to ``tire``. There are no object annotations, so each image's parts form one
instance. PartImageNet is not a stage-1 source (the original's stage 1 has no loader for it).
"""

from __future__ import annotations

from typing import Any

from partonomy.data.sources.base import SourceInfo
from partonomy.data.sources.part_coco import PartCategory
from partonomy.data.sources.part_coco_dataset import CocoPartDataset

ANNOTATIONS = "PartImageNet/annotations/{split}/{split}.json"
IMAGES = "PartImageNet/images/{split}"
TYPOS = {"tier": "tire"}
"""Part-name fixes applied after lower-casing."""


def parse_category(category: dict[str, Any]) -> PartCategory:
    """``{"name": "Car Tier", "supercategory": "Car"}`` -> ``PartCategory("car", "tire")``."""
    sup = str(category.get("supercategory") or "").strip()
    name = str(category["name"]).strip()
    part = name[len(sup) :] if sup and name.lower().startswith(sup.lower()) else name
    part = " ".join(part.split()).lower()
    part = TYPOS.get(part, part)
    return PartCategory((sup or name).lower(), part or name.lower())


DATASET = CocoPartDataset("partimagenet", parse_category, ANNOTATIONS, IMAGES)
build = DATASET.build
check = DATASET.check

SOURCE = SourceInfo(
    name="partimagenet",
    description="PartImageNet (supercategory = object): descriptor builder",
    needed_by=("stage2",),
    build_descriptor=build,
    check=check,
)
