"""Readers of the ReasonSeg and refCOCO-family evaluation files (LISA's protocol).

* ReasonSeg: DATA is ``ReasonSeg/`` (holding ``val/``, ``test/``) or one split folder; each
  ``<name>.jpg`` + labelme ``<name>.json``. One sample per image with its **first** query, as LISA's
  ``ValDataset``; the target is the rasterised polygons (``ignore`` shapes = 255, see
  :func:`partonomy.data.sources.reason_seg.reasonseg_mask`). Group: ``long`` when ``is_sentence``,
  else ``short``. Question id: the file stem (``{split}/{stem}`` when several splits are read).
* refCOCO, refCOCO+, refCOCOg (umd), refCLEF: DATA is the ``dataset/`` folder of ``partonomy data``
  (or ``refer_seg/`` itself) with ``refer_seg/{name}/refs(unc|umd).p`` and ``instances.json``.
  **Every sentence of every ref** of the split is one sample (not GLaMM's 3 random per image);
  question id: the sentence's ``sent_id``; group: the split. The target is the ref's annotation.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from partonomy.data.coco_index import CocoIndex, Problems
from partonomy.data.sources.base import image_size, stems
from partonomy.data.sources.reason_seg import reasonseg_mask
from partonomy.data.sources.refer import images_rel, load_refs, refs_rel
from partonomy.errors import FormatError
from partonomy.io.jsonfile import load_json
from partonomy.tasks.base import SegSample, TaskOptions

REFER_SPLITS = {
    "refcoco": ("train", "val", "testA", "testB"),
    "refcoco+": ("train", "val", "testA", "testB"),
    "refcocog": ("train", "val", "test"),
    "refclef": ("train", "val", "testA", "testB", "testC"),
}


# ------------------------------------------------------------------------------------ ReasonSeg
def _reasonseg_target(json_path: Path, size: tuple[int, int]) -> np.ndarray:
    record = load_json(json_path, what="ReasonSeg annotation")
    return reasonseg_mask(record, size[0], size[1], json_path)


def _reasonseg_folder(folder: Path, split: str | None) -> list[SegSample]:
    names = sorted(stems(folder, ".jpg") & (stems(folder, ".json") - {"explanatory"}))
    if not names:
        raise FormatError("no <name>.jpg + <name>.json pairs", file=folder)
    out = []
    for stem in names:
        json_path, image = folder / f"{stem}.json", folder / f"{stem}.jpg"
        record = load_json(json_path, what="ReasonSeg annotation")
        if not isinstance(record, dict):
            raise FormatError("must be a JSON object", file=json_path)
        texts = record.get("text")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not isinstance(texts[0], str):
            raise FormatError("must be a non-empty list of strings", file=json_path, field="text")
        h, w = record.get("imageHeight"), record.get("imageWidth")
        size = (int(h), int(w)) if isinstance(h, int) and isinstance(w, int) else image_size(image)
        is_sentence = bool(record.get("is_sentence", False))
        out.append(
            SegSample(
                question_id=stem if split is None else f"{split}/{stem}",
                image=image,
                expression=texts[0].strip(),
                is_sentence=is_sentence,
                size=size,
                group="long" if is_sentence else "short",
                load_target=partial(_reasonseg_target, json_path, size),
            )
        )
    return out


def read_reason_seg(data: Path, splits: tuple[str, ...], options: TaskOptions) -> list[SegSample]:
    if not data.is_dir():
        raise FormatError("ReasonSeg data must be a folder", file=data)
    if stems(data, ".jpg"):  # a split folder itself
        return _reasonseg_folder(data, None)
    out: list[SegSample] = []
    for split in splits:
        out.extend(_reasonseg_folder(data / split, split if len(splits) > 1 else None))
    return out


# ---------------------------------------------------------------------------------- refCOCO etc.
def _refer_root(data: Path) -> Path:
    """The ``dataset/`` folder (parent of ``refer_seg/``)."""
    if (data / "refer_seg").is_dir():
        return data
    if data.name == "refer_seg" and data.is_dir():
        return data.parent
    raise FormatError("expected a folder holding refer_seg/ (or refer_seg/ itself)", file=data)


def _refer_target(index: CocoIndex, ann: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    mask = index.mask(ann)
    if mask is None:
        raise FormatError(
            f"annotation {ann.get('id')} cannot be decoded", file=index.path, field="segmentation"
        )
    return mask.astype(np.uint8)


def read_refer(
    name: str, data: Path, splits: tuple[str, ...], options: TaskOptions
) -> list[SegSample]:
    root = _refer_root(data)
    problems = Problems(skip_bad=False)
    refs_path = root / refs_rel(name)
    refs = load_refs(refs_path, problems)
    index = CocoIndex.load(root / "refer_seg" / name / "instances.json", problems=problems)
    images = Path(options.image_root) if options.image_root else root / images_rel(name)
    out = []
    for split in splits:
        for ref in refs:
            if ref["split"] != split:
                continue
            where = f"ref_id {ref.get('ref_id', '?')}"
            try:
                ann = index.annotation(ref["ann_id"])
            except KeyError:
                raise FormatError(
                    f"annotation {ref['ann_id']} is not in instances.json",
                    file=refs_path,
                    record=where,
                    field="ann_id",
                ) from None
            img = index.images.get(ref["image_id"])
            if img is None:
                raise FormatError(
                    f"image {ref['image_id']} is not in instances.json",
                    file=refs_path,
                    record=where,
                    field="image_id",
                )
            size = (int(img["height"]), int(img["width"]))
            for k, sentence in enumerate(ref["sentences"]):
                sent_id = sentence.get("sent_id")
                if sent_id is None:
                    raise FormatError(
                        "missing", file=refs_path, record=where, field=f"sentences[{k}].sent_id"
                    )
                out.append(
                    SegSample(
                        question_id=str(sent_id),
                        image=images / str(img["file_name"]),
                        expression=str(sentence.get("sent", sentence.get("raw", ""))).strip(),
                        is_sentence=False,
                        size=size,
                        group=split,
                        load_target=partial(_refer_target, index, ann, size),
                    )
                )
    return out
