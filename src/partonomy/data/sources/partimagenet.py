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

from pathlib import Path
from typing import Any

from partonomy.data.coco_index import CocoIndex, Problems
from partonomy.data.sources.base import CheckResult, SourceInfo
from partonomy.data.sources.part_coco import (
    BuildResult,
    PartCategory,
    build_part_descriptor,
    check_coco_source,
)

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


def build(
    annotations: Path,
    images: Path,
    out: Path,
    *,
    object_names: dict[str, str] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> BuildResult:
    """``partonomy build-descriptor --source partimagenet``."""
    index = CocoIndex.load(annotations, problems=Problems(skip_bad=skip_bad))
    return build_part_descriptor(
        index,
        parse_category,
        dataset_name="partimagenet",
        images_dir=Path(images),
        out=Path(out),
        object_names=object_names,
        progress=progress,
    )


def check(root: Path, deep: bool) -> CheckResult:
    return check_coco_source(
        "partimagenet",
        root,
        ANNOTATIONS.format(split="train"),
        IMAGES.format(split="train"),
        deep=deep,
    )


SOURCE = SourceInfo(
    name="partimagenet",
    description="PartImageNet (supercategory = object): descriptor builder",
    needed_by=("stage2",),
    build_descriptor=build,
    check=check,
)
