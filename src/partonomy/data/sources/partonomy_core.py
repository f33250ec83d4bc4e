"""PARTONOMY-Core raw masks -> descriptor.

Layout::

    masks/<category--object>/<any>.json             the object's mask (is_root_concept: true)
    masks/<category--object--part:part>/<any>.json  one part mask
    each JSON: {"size": [h, w], "counts": str, "image_path": str, "is_root_concept": bool}

Masks are grouped by ``(image_path, object)``; each group is one instance labelled
``object--{category--object}`` and ``{category--object}--part:{part}`` (the directory names are
already in the label convention). ``image_path`` may be absolute or relative to ``--images``.
Natural-language object names come from ``--object-names`` (the original's
``object_names_to_nl.json``: ``"airplanes--agricultural" -> "agricultural airplane"``); without
it the identifier is the name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from partonomy.data.coco_index import BadRecord, Problems, check_segmentation
from partonomy.data.sources.base import CheckResult, SourceInfo, image_size, resolve_image
from partonomy.data.sources.part_coco import BuildResult, part_graph_of
from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.descriptor import Descriptor, Instance, save_descriptor
from partonomy.io.labels import CATEGORY_SEP, PART_SEP, object_label
from partonomy.io.paths import relative_path

MASKS = "partonomy_core/masks"
IMAGES = "partonomy_core/images"
REQUIRED_KEYS = ("size", "counts", "image_path")


def _read_mask(path: Path, problems: Problems) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problems.report(BadRecord(str(path), "mask file", None, f"not readable JSON ({err})"))
        return None
    if not isinstance(record, dict):
        problems.report(BadRecord(str(path), "mask file", None, "must be a JSON object"))
        return None
    for key in REQUIRED_KEYS:
        if key not in record:
            problems.report(BadRecord(str(path), "mask file", key, "missing key"))
            return None
    return record


def build(
    annotations: Path,
    images: Path,
    out: Path,
    *,
    object_names: dict[str, str] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> BuildResult:
    """``partonomy build-descriptor --source partonomy_core --annotations masks/``.

    Raises:
        FormatError: (without ``skip_bad``) a mask file that is not JSON or lacks a key, whose
            image is missing, or whose RLE size differs from its image; naming the mask file.
    """
    masks_dir, images, out = Path(annotations), Path(images), Path(out)
    if not masks_dir.is_dir():
        raise FormatError("masks folder not found", file=masks_dir, hint="pass the masks/ folder")
    problems = Problems(skip_bad=skip_bad)
    groups: dict[tuple[Path, str], dict[str, list[mask_io.Rle]]] = {}
    sizes: dict[Path, tuple[int, int]] = {}
    label_dirs = sorted(p for p in masks_dir.iterdir() if p.is_dir())
    for label_dir in tqdm(label_dirs, desc="partonomy_core", disable=not progress):
        label = label_dir.name
        obj = label.rpartition(PART_SEP)[0] if PART_SEP in label else label
        for path in sorted(label_dir.glob("*.json")):
            record = _read_mask(path, problems)
            if record is None:
                continue
            image_path = resolve_image(images, str(record["image_path"]))
            if image_path is None:
                problems.report(
                    BadRecord(
                        str(path),
                        "mask file",
                        "image_path",
                        f"no image file {record['image_path']!r} under {images}",
                    )
                )
                continue
            if image_path not in sizes:
                sizes[image_path] = image_size(image_path)
            h, w = sizes[image_path]
            problem = check_segmentation(record, h, w)
            if problem is not None:
                problems.report(BadRecord(str(path), "mask file", "size", problem))
                continue
            key = label if PART_SEP in label else object_label(obj)
            segs = groups.setdefault((image_path, obj), {})
            segs.setdefault(key, []).append(mask_io.to_rle(record))
    out_dir = out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    instances = []
    for (image_path, obj), segs in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        labels = sorted(segs, key=lambda lbl: (PART_SEP in lbl, lbl))  # object mask first
        instances.append(
            Instance(
                image_path=relative_path(image_path, out_dir),
                image_label=(object_names or {}).get(obj, obj),
                segmentations={lbl: segs[lbl] for lbl in labels},
                segmentation_labels=labels,
                extra={"image_size": list(sizes[image_path])},
            )
        )
    instance_graph: dict[str, list[str]] = {}
    for obj in sorted({obj for _, obj in groups}):
        instance_graph.setdefault(obj.split(CATEGORY_SEP)[0], []).append(obj)
    descriptor = Descriptor(
        dataset_name="partonomy_core",
        instances=instances,
        part_graph=part_graph_of(instances),
        instance_graph=instance_graph,
        root=out_dir,
    )
    save_descriptor(descriptor, out)
    return BuildResult(descriptor, out, list(problems.records), 0)


def check(root: Path, deep: bool) -> CheckResult:
    """Doctor check: label folders and mask files; ``deep`` parses every mask file."""
    result = CheckResult("partonomy_core", "found", [f"{MASKS}/<label>/*.json", f"{IMAGES}/"])
    masks_dir = root / MASKS
    for rel in (MASKS, IMAGES):
        if not (root / rel).is_dir():
            result.status = "missing"
            result.problems.append(f"missing {rel}")
    if result.status == "missing":
        return result
    label_dirs = [p for p in masks_dir.iterdir() if p.is_dir()]
    files = [f for d in label_dirs for f in d.glob("*.json")]
    result.counts.update({"labels": len(label_dirs), "mask files": len(files)})
    if not files:
        result.status = "missing"
        result.problems.append(f"no mask files under {MASKS}")
    if deep:
        problems = Problems(skip_bad=True)
        for path in files:
            record = _read_mask(path, problems)
            if (
                record is not None
                and resolve_image(root / IMAGES, str(record["image_path"])) is None
            ):
                problems.report(BadRecord(str(path), "mask file", "image_path", "image not found"))
        if problems.records:
            result.status = "malformed"
            result.counts["bad mask files"] = len(problems.records)
            result.problems.extend(str(b) for b in problems.records[:5])
    return result


SOURCE = SourceInfo(
    name="partonomy_core",
    description="PARTONOMY-Core raw masks (masks/<label>/*.json): descriptor builder",
    needed_by=("eval",),
    build_descriptor=build,
    check=check,
)
