"""Mapillary Vistas v2.0 as a stage-1 semantic segmentation source.

Layout (seed README)::

    dataset/mapillary/config_v2.0.json
    dataset/mapillary/{training,validation}/images/<key>.jpg
    dataset/mapillary/{training,validation}/v2.0/labels/<key>.png

``config_v2.0.json`` holds ``{"labels": [{"name": "animal--bird", "readable": "Bird", ...}, ...]}``;
a label PNG (palette mode) holds the index into that list. Class names are the lower-cased
``readable`` fields, as in the original. The ``Unlabeled`` class (``void--unlabeled``) is treated
as unlabeled pixels (ignored), not as a class to ask about.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from partonomy.data.sources.base import CheckResult, SourceInfo, Stage1Options
from partonomy.data.sources.label_maps import UNLABELED, LabelMapReader, check_pairs, pair_files
from partonomy.errors import FormatError
from partonomy.io.jsonfile import load_json

SPLITS = {"train": "training", "val": "validation"}
CONFIG = "config_v2.0.json"


def load_class_names(config_path: Path) -> tuple[list[str], list[int]]:
    """Class names from ``config_v2.0.json`` and the indices of its unlabeled class(es).

    Raises:
        FormatError: the file lacks ``labels`` or a label lacks ``readable``.
    """
    config = load_json(config_path, what="Mapillary config")
    labels = config.get("labels") if isinstance(config, dict) else None
    if not isinstance(labels, list) or not labels:
        raise FormatError("missing or empty list", file=config_path, field="labels")
    names, unlabeled = [], []
    for k, label in enumerate(labels):
        if not isinstance(label, dict) or not isinstance(label.get("readable"), str):
            raise FormatError("a label needs a 'readable' name", file=config_path, record=k)
        names.append(label["readable"].lower())
        if names[-1] == "unlabeled" or str(label.get("name", "")).startswith("void--unlabeled"):
            unlabeled.append(k)
    return names, unlabeled


def open_reader(root: Path, options: Stage1Options) -> LabelMapReader:
    base = root / "mapillary"
    names, unlabeled = load_class_names(base / CONFIG)
    split = SPLITS[options.split]
    pairs = pair_files(base / split / "images", base / split / "v2.0" / "labels")
    void = np.array(unlabeled, dtype=np.int64)

    def to_classes(raw: np.ndarray) -> np.ndarray:
        classes = raw.astype(np.int32)
        classes[np.isin(raw, void)] = UNLABELED
        return classes

    askable = [k for k in range(len(names)) if k not in set(unlabeled)]
    return LabelMapReader(
        "mapillary",
        pairs,
        names,
        to_classes,
        askable=askable,
        num_classes_per_sample=options.num_classes_per_sample,
    )


def check(root: Path, deep: bool) -> CheckResult:
    result = check_pairs(
        "mapillary",
        root,
        "mapillary/training/images",
        "mapillary/training/v2.0/labels",
        deep=deep,
        extra_expected=[f"mapillary/{CONFIG}"],
    )
    config = root / "mapillary" / CONFIG
    if config.is_file():
        try:
            names, _ = load_class_names(config)
            result.counts["classes"] = len(names)
        except FormatError as err:
            result.status = "malformed"
            result.problems.append(str(err))
    return result


SOURCE = SourceInfo(
    name="mapillary",
    description="Mapillary Vistas v2.0 (config_v2.0.json labels), stage-1 semantic segmentation",
    group="sem_seg",
    needed_by=("stage1",),
    open_reader=open_reader,
    check=check,
)
