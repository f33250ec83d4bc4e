"""COCO-style part datasets (PACO-LVIS, PASCAL-Part, PartImageNet): descriptors and stage-1 reader.

Each dataset only says how a category record maps to ``(object, part)``
(:class:`PartCategory`); the rest is shared:

* :func:`build_part_descriptor` turns the annotations into a PARTONOMY descriptor: per image and
  object class one instance (object-part matching of :mod:`partonomy.data.matching`), labelled
  ``object--{obj}`` and ``{obj}--part:{part}`` (:mod:`partonomy.io.labels`).
* :class:`PartSemSegReader` is the stage-1 semantic segmentation reader over the same files.

When a dataset has no object category for a class (VLPart's PASCAL-Part and PartImageNet annotate
parts only), the parts of that class in one image form one instance and no box is drawn, because
instances cannot be told apart without object masks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from partonomy.data.coco_index import BadRecord, CocoIndex, Problems
from partonomy.data.matching import (
    OVERLAP_THRESHOLD,
    boxed_image_name,
    choose_instance,
    match_parts,
    save_boxed_image,
)
from partonomy.data.sample import TrainingSample
from partonomy.data.sources.base import CheckResult, quick_json_check, resolve_image
from partonomy.data.sources.templates import compose_turn, pick_compatible
from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.descriptor import Descriptor, Instance, save_descriptor
from partonomy.io.labels import (
    is_part_label,
    object_label,
    object_name,
    part_label,
    split_part_label,
)
from partonomy.io.paths import relative_path


@dataclass(frozen=True)
class PartCategory:
    """What a category is: an object class (``part is None``) or a part of one."""

    obj: str
    part: str | None = None


CategoryParser = Callable[[dict[str, Any]], PartCategory]


def strip_qualifier(name: str) -> str:
    """Drop an LVIS ``_(...)`` qualifier: ``"glass_(drink_container)"`` -> ``"glass"``."""
    return name.split("_(")[0].strip()


def parse_obj_part(category: dict[str, Any]) -> PartCategory:
    """``"obj:part"`` categories (PACO-LVIS, PASCAL-Part); a name without ``:`` is an object.

    ``_(...)`` qualifiers are stripped from both halves and ``_`` becomes a space in part names.
    """
    name = str(category["name"]).strip()
    obj, sep, part = name.partition(":")
    if not sep:
        return PartCategory(strip_qualifier(obj))
    return PartCategory(strip_qualifier(obj), strip_qualifier(part).replace("_", " "))


def natural_name(obj: str, object_names: dict[str, str] | None) -> str:
    """The natural-language object name: from the mapping if given, else ``_`` -> space."""
    if object_names and obj in object_names:
        return object_names[obj]
    return obj.replace("_", " ")


@dataclass
class BuildResult:
    """What :func:`build_part_descriptor` (or the Core builder) produced.

    Attributes:
        descriptor: the descriptor written to ``out``.
        out: its path.
        skipped: every bad record that was left out (``--skip-bad``).
        boxed_images: how many red-box images were written.
        skipped_path: where the skipped records were listed (set by ``build_descriptor``).
    """

    descriptor: Descriptor
    out: Path
    skipped: list[BadRecord] = field(default_factory=list)
    boxed_images: int = 0
    skipped_path: Path | None = None


def build_part_descriptor(
    index: CocoIndex,
    parse: CategoryParser,
    *,
    dataset_name: str,
    images_dir: Path,
    out: Path,
    object_names: dict[str, str] | None = None,
    threshold: float = OVERLAP_THRESHOLD,
    progress: bool = True,
) -> BuildResult:
    """Convert a COCO-style part dataset to a PARTONOMY descriptor and write it to ``out``.

    Args:
        index: the annotations (its ``problems`` decide whether bad records raise or are skipped).
        parse: category record -> :class:`PartCategory`.
        dataset_name: the descriptor's ``dataset_name``.
        images_dir: where the annotation ``file_name``s resolve (see
            :func:`~partonomy.data.sources.base.resolve_image`).
        out: the descriptor path; red-box images ``{stem}-{k}.jpg`` go next to it.
        object_names: object id -> natural-language name (``--object-names``).
        threshold: the object-part overlap threshold.
        progress: show a progress bar.

    Returns:
        A :class:`BuildResult`. Image paths in the descriptor are relative to ``out``'s folder.

    Raises:
        FormatError: a bad record (without ``skip_bad``), naming the file and annotation id.
    """
    out = Path(out)
    out_dir = out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    cats = {cid: parse(cat) for cid, cat in index.categories.items()}
    object_classes = {pc.obj for pc in cats.values() if pc.part is None}
    instances: list[Instance] = []
    boxed = 0
    for image_id in tqdm(index.image_ids(), desc=dataset_name, disable=not progress):
        img = index.images[image_id]
        anns = index.annotations(image_id)
        image_path = resolve_image(images_dir, str(img["file_name"]))
        if image_path is None:
            for ann in anns:
                index.problems.report(
                    BadRecord(
                        str(index.path),
                        f"annotation id {ann['id']}",
                        "image_id",
                        f"image id {image_id} has no image file "
                        f"(looked for {images_dir / str(img['file_name'])})",
                    )
                )
            continue
        objects: dict[str, list[tuple[int, mask_io.Rle]]] = {}
        parts: dict[str, list[tuple[int, str, mask_io.Rle]]] = {}
        for ann in anns:
            rle = index.rle(ann)
            if rle is None:
                continue
            pc = cats[ann["category_id"]]
            if pc.part is None:
                objects.setdefault(pc.obj, []).append((ann["id"], rle))
            else:
                parts.setdefault(pc.obj, []).append((ann["id"], pc.part, rle))
        size = [int(img["height"]), int(img["width"])]
        relative_image = relative_path(image_path, out_dir)  # once per image: resolve() is I/O
        k = 0
        for obj in sorted(parts):
            obj_rle: mask_io.Rle | None = None
            chosen_parts = parts[obj]
            shown_path = relative_image
            source_ids = [p[0] for p in chosen_parts]
            if obj in object_classes:
                candidates = match_parts(
                    objects.get(obj, []), [(pid, r) for pid, _, r in chosen_parts], threshold
                )
                best = choose_instance(candidates)
                if best is None:
                    continue  # no instance of this class has a matched part
                obj_rle = best.rle
                matched = set(best.parts)
                chosen_parts = [p for p in chosen_parts if p[0] in matched]
                source_ids = [best.ann_id, *best.parts]
                if len(candidates) > 1:
                    name = boxed_image_name(image_path.stem, k)
                    save_boxed_image(image_path, mask_io.bbox(best.rle), out_dir / name)
                    shown_path, k, boxed = name, k + 1, boxed + 1
            segs: dict[str, list[mask_io.Rle]] = {}
            if obj_rle is not None:
                segs[object_label(obj)] = [obj_rle]
            for _pid, part, rle in sorted(chosen_parts, key=lambda p: (p[1], p[0])):
                segs.setdefault(part_label(obj, part), []).append(rle)
            instances.append(
                Instance(
                    image_path=shown_path,
                    image_label=natural_name(obj, object_names),
                    segmentations=segs,
                    segmentation_labels=list(segs),
                    extra={
                        "image_size": size,
                        "source_image_id": image_id,
                        "source_annotation_ids": source_ids,
                    },
                )
            )
    descriptor = Descriptor(
        dataset_name=dataset_name,
        instances=instances,
        part_graph=part_graph_of(instances),
        instance_graph={"object": sorted({obj_of(inst) for inst in instances})},
        root=out_dir,
    )
    save_descriptor(descriptor, out)
    return BuildResult(descriptor, out, list(index.problems.records), boxed)


def obj_of(instance: Instance) -> str:
    """The object id of an instance built here (from its first part label)."""
    for label in instance.segmentation_labels:
        if is_part_label(label):
            return split_part_label(label)[0]
    return object_name(instance.segmentation_labels[0])


def part_graph_of(instances: list[Instance]) -> dict[str, list[str]]:
    """Object id -> sorted part labels actually annotated (the original deduces it likewise)."""
    graph: dict[str, set[str]] = {}
    for inst in instances:
        for label in inst.segmentation_labels:
            if is_part_label(label):
                graph.setdefault(split_part_label(label)[0], set()).add(label)
    return {obj: sorted(labels) for obj, labels in sorted(graph.items())}


# ---------------------------------------------------------------------------- stage 1


class PartSemSegReader:
    """Stage-1 semantic segmentation over a COCO-style part dataset (PACO-LVIS, PASCAL-Part).

    A sample asks about up to ``num_classes_per_sample`` of the categories annotated in one image.
    Part categories are named ``"{obj} {part}"`` or ``"the {part} of the {obj}"`` (even odds, as in
    the original); object categories by their name. A category's mask is the union of its
    instances in the image (semantic segmentation: one mask per name).

    Args:
        name: source name.
        index: the annotations.
        parse: category record -> :class:`PartCategory`.
        images_dir: where ``file_name`` resolves.
        num_classes_per_sample: at most this many categories per sample.
    """

    def __init__(
        self,
        name: str,
        index: CocoIndex,
        parse: CategoryParser,
        images_dir: Path,
        num_classes_per_sample: int = 5,
    ) -> None:
        self.name = name
        self.index = index
        self.cats = {cid: parse(cat) for cid, cat in index.categories.items()}
        self.images_dir = images_dir
        self.image_ids = index.image_ids()
        self.num_classes_per_sample = num_classes_per_sample

    def __len__(self) -> int:
        return len(self.image_ids)

    def _span(self, pc: PartCategory, rng: np.random.Generator) -> str:
        obj = pc.obj.replace("_", " ")
        if pc.part is None:
            return obj
        return f"{obj} {pc.part}" if rng.random() < 0.5 else f"the {pc.part} of the {obj}"

    def sample(self, index: int, rng: np.random.Generator) -> TrainingSample:
        image_id = self.image_ids[index]
        img = self.index.images[image_id]
        image_path = resolve_image(self.images_dir, str(img["file_name"]))
        if image_path is None:
            raise FormatError(
                f"image id {image_id} has no image file",
                file=self.images_dir / str(img["file_name"]),
                hint="run `partonomy data check`",
            )
        by_cat: dict[int, list[dict[str, Any]]] = {}
        for ann in self.index.annotations(image_id):
            by_cat.setdefault(ann["category_id"], []).append(ann)
        cat_ids = sorted(by_cat)
        order = [cat_ids[k] for k in rng.permutation(len(cat_ids))]
        spans = {self._span(self.cats[cid], rng): cid for cid in order}
        names = pick_compatible(list(spans), self.num_classes_per_sample)
        question, answer, kept = compose_turn(names, rng)
        h, w = int(img["height"]), int(img["width"])
        masks = {n: self.index.union_mask(by_cat[spans[n]], h, w) for n in kept}
        return TrainingSample(
            image=image_path,
            conversation=[(question, answer)],
            masks=masks,
            source=self.name,
            meta={"file": str(self.index.path), "image_id": str(image_id)},
        )


def check_coco_source(
    name: str, root: Path, annotation_rel: str, image_rel: str, *, deep: bool
) -> CheckResult:
    """Doctor check of a COCO-style annotation file and its image folder.

    Without ``deep`` the JSON is only checked for truncation (these files reach gigabytes);
    with ``deep`` it is parsed and indexed, and the counts include images, annotations,
    categories, bad records and images whose file is missing.
    """
    expected = [annotation_rel, f"{image_rel}/"]
    result = CheckResult(name, "found", expected)
    ann_path, image_dir = root / annotation_rel, root / image_rel
    for rel, ok in ((annotation_rel, ann_path.is_file()), (image_rel, image_dir.is_dir())):
        if not ok:
            result.status = "missing"
            result.problems.append(f"missing {rel}")
    if result.status == "missing":
        return result
    problem = quick_json_check(ann_path)
    if problem:
        result.status = "malformed"
        result.problems.append(f"{annotation_rel}: {problem}")
        return result
    if deep:
        try:
            index = CocoIndex.load(ann_path, problems=Problems(skip_bad=True))
        except FormatError as err:
            result.status = "malformed"
            result.problems.append(str(err))
            return result
        used = index.image_ids()
        no_file = [
            i for i in used if resolve_image(image_dir, str(index.images[i]["file_name"])) is None
        ]
        result.counts.update(
            images=len(index.images),
            annotations=len(index),
            categories=len(index.categories),
            **{"bad records": len(index.problems.records), "images without file": len(no_file)},
        )
        if index.problems.records or no_file:
            result.status = "malformed"
            result.problems.extend(str(b) for b in index.problems.records[:5])
            if no_file:
                result.problems.append(
                    f"{len(no_file)} annotated image(s) have no file under {image_rel}"
                )
    return result
