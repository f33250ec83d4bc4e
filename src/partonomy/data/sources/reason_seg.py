"""ReasonSeg: stage-1 reasoning segmentation (and the masks of its val split).

Layout (seed README)::

    dataset/reason_seg/ReasonSeg/{train,val}/<name>.jpg
    dataset/reason_seg/ReasonSeg/{train,val}/<name>.json
    dataset/reason_seg/ReasonSeg/explanatory/train.json            (optional)

Each annotation is labelme-style: ``{"text": [str, ...], "is_sentence": bool, "shapes": [{"label":
"target" | "ignore", "points": [[x, y], ...], "shape_type": "polygon"}, ...]}``. ``target`` shapes
are the answer (1); shapes whose label contains ``ignore`` are ambiguous regions and become
:data:`~partonomy.data.sample.IGNORE_INDEX` (255), excluded from losses and metrics; ``flag``
shapes are dropped. Shapes are painted largest first, so a small region inside a larger one
keeps its own value. The explanatory file is a list of ``{"image", "query", "outputs"}``.

Spans: a short query (``is_sentence`` false, e.g. "the camera lens") is its own span. A sentence
query has no noun phrase to point at, so the answer names :data:`SENTENCE_SPAN` and that is the
span (the original keyed its BIO targets on the query sentence, which the answer does not contain).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from partonomy.data.sample import IGNORE_INDEX, TrainingSample
from partonomy.data.sources.base import CheckResult, SourceInfo, Stage1Options, image_size, stems
from partonomy.data.sources.templates import (
    ANSWERS,
    EXPLAIN_SUFFIXES,
    EXPLAINED_ANSWERS,
    QUESTIONS,
    SENTENCE_QUESTIONS,
    compose_turn,
    fill,
    occurrences,
)
from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.jsonfile import load_json

BASE = "reason_seg/ReasonSeg"
SENTENCE_SPAN = "the target region"
"""The span of answers to sentence queries."""


def shape_value(label: str) -> int | None:
    """Mask value of a shape label: ``ignore`` -> 255, ``flag`` -> None (dropped), else 1."""
    if "ignore" in label:
        return IGNORE_INDEX
    if label == "flag":
        return None
    return 1


def reasonseg_mask(record: dict[str, Any], height: int, width: int, path: Path) -> np.ndarray:
    """Rasterise a ReasonSeg annotation into a ``uint8`` ``(height, width)`` mask (0 / 1 / 255).

    Raises:
        FormatError: naming ``path``, the shape and the field, when ``shapes`` is missing, a
            shape has fewer than 3 points, or its ``shape_type`` is not polygon / rectangle.
    """
    shapes = record.get("shapes")
    if not isinstance(shapes, list):
        raise FormatError("missing or not a list", file=path, field="shapes")
    painted: list[tuple[int, int, np.ndarray]] = []
    for k, shape in enumerate(shapes):
        where = f"shapes[{k}]"
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
            raise FormatError("a shape needs a 'label'", file=path, record=where, field="label")
        value = shape_value(shape["label"])
        if value is None:
            continue
        points = shape.get("points")
        kind = shape.get("shape_type", "polygon")
        if kind == "rectangle" and isinstance(points, list) and len(points) == 2:
            (x0, y0), (x1, y1) = points
            points = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
        elif kind != "polygon":
            raise FormatError(
                f"shape_type {kind!r} is not supported (polygon or rectangle)",
                file=path,
                record=where,
                field="shape_type",
            )
        if not isinstance(points, list) or len(points) < 3:
            n = len(points) if isinstance(points, list) else 0
            raise FormatError(
                f"a polygon needs at least 3 points, got {n}",
                file=path,
                record=where,
                field="points",
            )
        flat = [float(c) for point in points for c in point]
        rle = mask_io.from_polygons([flat], height, width)
        painted.append((mask_io.area(rle), k, mask_io.decode(rle)))
    mask = np.zeros((height, width), dtype=np.uint8)
    for _area, k, region in sorted(painted, key=lambda t: (-t[0], t[1])):
        mask[region] = shape_value(shapes[k]["label"])  # type: ignore[assignment]
    return mask


def load_explanations(base: Path, split: str) -> dict[str, str]:
    """Image file name -> explanation text, from ``explanatory/{split}.json`` or
    ``{split}/explanatory.json`` when present (else empty)."""
    for path in (base / "explanatory" / f"{split}.json", base / split / "explanatory.json"):
        if path.is_file():
            items = load_json(path, what="ReasonSeg explanatory file")
            if not isinstance(items, list):
                raise FormatError("expected a list of {image, query, outputs}", file=path)
            out = {}
            for k, item in enumerate(items):
                if not isinstance(item, dict) or not {"image", "outputs"} <= set(item):
                    raise FormatError("needs 'image' and 'outputs'", file=path, record=k)
                out[str(item["image"])] = str(item["outputs"]).strip()
            return out
    return {}


class ReasonSegReader:
    """Stage-1 ReasonSeg samples: one query, one mask (with ignore regions) per image.

    Args:
        base: ``dataset/reason_seg/ReasonSeg``.
        split: folder name (``train`` / ``val``).
        explanatory: probability of an explanatory answer for an image that has one.
    """

    def __init__(self, base: Path, split: str = "train", explanatory: float = 0.1) -> None:
        self.name = "reason_seg"
        self.dir = base / split
        names = sorted(stems(self.dir, ".jpg") & stems(self.dir, ".json"))
        if not names:
            raise FormatError("no <name>.jpg + <name>.json pairs", file=self.dir)
        self.items = names
        self.explanations = load_explanations(base, split)
        self.explanatory = explanatory

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[Path, dict[str, Any], np.ndarray]:
        """``(image path, annotation record, mask)`` of item ``index``."""
        stem = self.items[index]
        image_path, json_path = self.dir / f"{stem}.jpg", self.dir / f"{stem}.json"
        record = load_json(json_path, what="ReasonSeg annotation")
        if not isinstance(record, dict):
            raise FormatError("must be a JSON object", file=json_path)
        h, w = image_size(image_path)
        declared = (record.get("imageHeight", h), record.get("imageWidth", w))
        if declared != (h, w):
            raise FormatError(
                f"imageHeight/imageWidth {declared[0]}x{declared[1]} differ "
                f"from the image's {h}x{w}",
                file=json_path,
                field="imageHeight",
            )
        return image_path, record, reasonseg_mask(record, h, w, json_path)

    def sample(self, index: int, rng: np.random.Generator) -> TrainingSample:
        image_path, record, mask = self.load(index)
        json_path = image_path.with_suffix(".json")
        texts = record.get("text")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise FormatError("must be a non-empty list of strings", file=json_path, field="text")
        text = texts[int(rng.integers(len(texts)))].strip()
        is_sentence = bool(record.get("is_sentence", False))
        span = SENTENCE_SPAN if is_sentence else text.rstrip(".?!").strip()
        explanation = self.explanations.get(image_path.name)
        if explanation and rng.random() < self.explanatory:
            suffix = EXPLAIN_SUFFIXES[int(rng.integers(len(EXPLAIN_SUFFIXES)))]
            tpl = EXPLAINED_ANSWERS[int(rng.integers(len(EXPLAINED_ANSWERS)))]
            answer = fill(tpl, span, explanation=explanation)
            if occurrences(span, answer) == 1:
                turn = (f"{text} {suffix}", answer)
                return self._sample(image_path, turn, span, mask, explained=True)
        if is_sentence:
            question = SENTENCE_QUESTIONS[int(rng.integers(len(SENTENCE_QUESTIONS)))]
            _, answer, _ = compose_turn([span], rng, QUESTIONS, ANSWERS)
            turn = (question.format(sent=text), answer)
        else:
            question, answer, _ = compose_turn([span], rng)
            turn = (question, answer)
        return self._sample(image_path, turn, span, mask, explained=False)

    def _sample(
        self, image_path: Path, turn: tuple[str, str], span: str, mask: np.ndarray, explained: bool
    ) -> TrainingSample:
        return TrainingSample(
            image=image_path,
            conversation=[turn],
            masks={span: mask},
            source=self.name,
            meta={"file": str(image_path.with_suffix(".json")), "explanatory": str(explained)},
        )


def open_reader(root: Path, options: Stage1Options) -> ReasonSegReader:
    return ReasonSegReader(root / BASE, options.split, options.explanatory)


def check(root: Path, deep: bool) -> CheckResult:
    """Doctor check: jpg/json pairs of train and val (every JSON is parsed: they are small)."""
    expected = [f"{BASE}/train/*.jpg + *.json", f"{BASE}/val/*.jpg + *.json"]
    result = CheckResult("reason_seg", "found", expected)
    for split in ("train", "val"):
        folder = root / BASE / split
        jpgs, jsons = stems(folder, ".jpg"), stems(folder, ".json") - {"explanatory"}
        result.counts[f"{split} images"] = len(jpgs & jsons)
        if not jpgs:
            result.status = "missing"
            result.problems.append(f"no images in {BASE}/{split}")
            continue
        if jpgs - jsons:
            result.status = "malformed"
            stem = sorted(jpgs - jsons)[0]
            result.problems.append(f"{len(jpgs - jsons)} image(s) without JSON, e.g. {stem}.jpg")
        for stem in sorted(jpgs & jsons):
            try:
                record = load_json(folder / f"{stem}.json")
                if not isinstance(record, dict) or "shapes" not in record or "text" not in record:
                    raise FormatError("needs 'text' and 'shapes'", file=folder / f"{stem}.json")
            except FormatError as err:
                result.status = "malformed"
                result.problems.append(str(err))
    explained = root / BASE / "explanatory" / "train.json"
    result.counts["explanatory file"] = int(explained.is_file())
    return result


SOURCE = SourceInfo(
    name="reason_seg",
    description="ReasonSeg (labelme polygons, ignore = 255, explanatory answers), stage 1",
    group="reason_seg",
    needed_by=("stage1",),
    open_reader=open_reader,
    check=check,
)
