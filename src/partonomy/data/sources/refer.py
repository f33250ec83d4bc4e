"""refCOCO, refCOCO+, refCOCOg and refCLEF: stage-1 referring segmentation.

Layout (seed README)::

    dataset/refer_seg/{refcoco,refcoco+,refcocog,refclef}/refs(unc|umd|google|berkeley).p
    dataset/refer_seg/{refcoco,refcoco+,refcocog,refclef}/instances.json
    dataset/refer_seg/images/mscoco/images/train2014/COCO_train2014_000000000009.jpg
    dataset/refer_seg/images/saiapr_tc-12/...                       (refCLEF)

``refs(*).p`` is a pickle of a list of refs ``{"ref_id", "ann_id", "image_id", "split",
"sentences": [{"sent", "raw", "tokens", "sent_id"}], ...}``; it is read with the restricted
unpickler of :mod:`partonomy.data.unpickle` (a pickle from the internet can run code).
``instances.json`` is COCO-style; a ref's ``ann_id`` names the annotation to segment. Splits
follow the original: ``unc`` for refCOCO, refCOCO+ and refCLEF, ``umd`` for refCOCOg.

A sample is one image: up to ``num_classes_per_sample`` of its expressions, each expression
(verbatim, whitespace-trimmed) the span of its object's mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from partonomy.data.coco_index import BadRecord, CocoIndex, Problems
from partonomy.data.sample import TrainingSample
from partonomy.data.sources.base import CheckResult, SourceInfo, Stage1Options, resolve_image
from partonomy.data.sources.templates import compose_turn, pick_compatible
from partonomy.data.unpickle import load_plain_pickle
from partonomy.errors import FormatError

DATASETS = ("refclef", "refcoco", "refcoco+", "refcocog")
SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd", "refclef": "unc"}
"""The refs file each dataset is read from by default (``refs({split_by}).p``)."""
COCO_IMAGES = "refer_seg/images/mscoco/images/train2014"
CLEF_IMAGES = "refer_seg/images/saiapr_tc-12"


def images_rel(dataset: str) -> str:
    return CLEF_IMAGES if dataset == "refclef" else COCO_IMAGES


def refs_rel(dataset: str, split_by: str | None = None) -> str:
    return f"refer_seg/{dataset}/refs({split_by or SPLIT_BY[dataset]}).p"


def load_refs(path: Path, problems: Problems) -> list[dict[str, Any]]:
    """Read and check a ``refs(*).p`` file.

    Returns:
        The well-formed refs (a bad one raises, or is reported and left out when skipping).

    Raises:
        FormatError: the file is not a plain-data pickle of a list, or a ref lacks
            ``ann_id`` / ``image_id`` / ``split`` / ``sentences`` (naming its ``ref_id``).
    """
    refs = load_plain_pickle(path)
    if not isinstance(refs, list):
        raise FormatError(f"expected a list of refs, got {type(refs).__name__}", file=path)
    good = []
    for k, ref in enumerate(refs):
        record = f"ref_id {ref.get('ref_id', '?')}" if isinstance(ref, dict) else f"ref {k}"
        if not isinstance(ref, dict):
            problems.report(BadRecord(str(path), record, None, "a ref must be a dict"))
            continue
        missing = [key for key in ("ann_id", "image_id", "split", "sentences") if key not in ref]
        if missing:
            problems.report(BadRecord(str(path), record, missing[0], "missing key"))
            continue
        sentences = ref["sentences"]
        if not isinstance(sentences, list) or not all(
            isinstance(s, dict) and isinstance(s.get("sent", s.get("raw")), str) for s in sentences
        ):
            problems.report(
                BadRecord(str(path), record, "sentences", "must be a list of {'sent': str}")
            )
            continue
        good.append(ref)
    return good


class ReferReader:
    """Stage-1 referring segmentation over one refer dataset.

    Args:
        name: the dataset (``refcoco``, ...).
        refs: the refs of the wanted split.
        index: ``instances.json``.
        images_dir: where the image ``file_name``s resolve.
        num_classes_per_sample: at most this many expressions per sample.
        refs_path: the refs file, for error messages.
    """

    def __init__(
        self,
        name: str,
        refs: list[dict[str, Any]],
        index: CocoIndex,
        images_dir: Path,
        num_classes_per_sample: int = 5,
        refs_path: Path | None = None,
    ) -> None:
        self.name = name
        self.index = index
        self.images_dir = images_dir
        self.num_classes_per_sample = num_classes_per_sample
        self.by_image: dict[int, list[tuple[str, int]]] = {}
        for ref in refs:
            try:
                index.annotation(ref["ann_id"])
            except KeyError:
                index.problems.report(
                    BadRecord(
                        str(refs_path or name),
                        f"ref_id {ref.get('ref_id', '?')}",
                        "ann_id",
                        f"annotation id {ref['ann_id']} is not in {index.path.name}",
                    )
                )
                continue
            for sentence in ref["sentences"]:
                text = str(sentence.get("sent", sentence.get("raw", ""))).strip()
                if text:
                    self.by_image.setdefault(ref["image_id"], []).append((text, ref["ann_id"]))
        self.image_ids = sorted(self.by_image)

    def __len__(self) -> int:
        return len(self.image_ids)

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
        pairs = self.by_image[image_id]
        ann_of: dict[str, int] = {}
        for k in rng.permutation(len(pairs)):
            text, ann_id = pairs[k]
            ann_of.setdefault(text, ann_id)  # one mask per text: the first drawn wins
        names = pick_compatible(list(ann_of), self.num_classes_per_sample)
        question, answer, kept = compose_turn(names, rng)
        masks = {}
        for text in kept:
            mask = self.index.mask(self.index.annotation(ann_of[text]))
            if mask is None:  # undecodable and skipped: the ref cannot be used
                continue
            masks[text] = mask.astype(np.uint8)
        return TrainingSample(
            image=image_path,
            conversation=[(question, answer)],
            masks=masks,
            source=self.name,
            meta={"file": str(self.index.path), "image_id": str(image_id)},
        )


def open_dataset(
    root: Path, dataset: str, options: Stage1Options, split_by: str | None = None
) -> ReferReader:
    """The reader of one refer dataset under ``root`` (the ``dataset/`` folder)."""
    problems = Problems(skip_bad=False)
    refs_path = root / refs_rel(dataset, split_by)
    refs = [r for r in load_refs(refs_path, problems) if r["split"] == options.split]
    index = CocoIndex.load(root / "refer_seg" / dataset / "instances.json", problems=problems)
    return ReferReader(
        dataset,
        refs,
        index,
        root / images_rel(dataset),
        options.num_classes_per_sample,
        refs_path=refs_path,
    )


def check_dataset(root: Path, dataset: str, deep: bool) -> CheckResult:
    """Doctor check of one refer dataset (``deep`` loads the pickle and ``instances.json``)."""
    expected = [refs_rel(dataset), f"refer_seg/{dataset}/instances.json", f"{images_rel(dataset)}/"]
    result = CheckResult(dataset, "found", expected)
    for rel in expected:
        if not (root / rel).exists():
            result.status = "missing"
            result.problems.append(f"missing {rel}")
    if result.status == "missing" or not deep:
        return result
    problems = Problems(skip_bad=True)
    try:
        refs = load_refs(root / refs_rel(dataset), problems)
        index = CocoIndex.load(root / "refer_seg" / dataset / "instances.json", problems=problems)
    except FormatError as err:
        result.status = "malformed"
        result.problems.append(str(err))
        return result
    result.counts.update(
        refs=len(refs),
        sentences=sum(len(r["sentences"]) for r in refs),
        images=len(index.images),
        annotations=len(index),
    )
    if problems.records:
        result.status = "malformed"
        result.counts["bad records"] = len(problems.records)
        result.problems.extend(str(b) for b in problems.records[:5])
    return result


def _source(dataset: str) -> SourceInfo:
    return SourceInfo(
        name=dataset,
        description=f"{dataset} referring expressions (refs({SPLIT_BY[dataset]}).p + instances.json)",
        group="refer_seg",
        needed_by=("stage1",),
        open_reader=lambda root, options: open_dataset(root, dataset, options),
        check=lambda root, deep: check_dataset(root, dataset, deep),
    )


REFCOCO = _source("refcoco")
REFCOCO_PLUS = _source("refcoco+")
REFCOCOG = _source("refcocog")
REFCLEF = _source("refclef")
