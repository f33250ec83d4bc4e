"""A lazy, validated index over a COCO-style annotation JSON (PACO-LVIS, PASCAL-Part, PartImageNet,
refCOCO ``instances.json``).

The JSON is parsed once; annotations stay as the parsed dicts and are grouped by image. Masks are
never rasterised up front: :meth:`CocoIndex.rle` turns one annotation's polygons or RLE into a
compressed RLE when asked, so a file of a million annotations costs its parse time plus one pass
of cheap structural checks.

Every structural problem is a :class:`BadRecord` naming the file and the annotation (or image) id:
a polygon with fewer than 3 points, a category id that does not exist, an image id that is not in
``images``, an RLE whose size differs from its image. With ``skip_bad`` the record is left out and
kept in :attr:`Problems.records` (so the caller can report every skipped one); without, the first
one raises :class:`~partonomy.errors.FormatError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.jsonfile import load_json

SKIP_HINT = "fix or remove the record, or pass --skip-bad to leave it out"


@dataclass(frozen=True)
class BadRecord:
    """One corrupt or inconsistent record.

    Attributes:
        file: the annotation file (or image file) that holds it.
        record: which record, e.g. ``"annotation id 17"`` or ``"image id 3"``.
        field: the offending field (``segmentation``, ``category_id``, ...), if any.
        message: what is wrong.
    """

    file: str
    record: str
    field: str | None
    message: str

    def to_error(self, hint: str = SKIP_HINT) -> FormatError:
        return FormatError(
            self.message, file=self.file, record=self.record, field=self.field, hint=hint
        )

    def __str__(self) -> str:
        where = f"{self.file}: {self.record}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "record": self.record,
            "field": self.field,
            "message": self.message,
        }


@dataclass
class Problems:
    """Where bad records go: raised at once, or collected when ``skip_bad`` is set."""

    skip_bad: bool = False
    records: list[BadRecord] = field(default_factory=list)

    def report(self, bad: BadRecord) -> None:
        """Raise ``bad`` as a :class:`FormatError`, or record it when skipping."""
        if not self.skip_bad:
            raise bad.to_error()
        self.records.append(bad)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_segmentation(seg: Any, height: int, width: int) -> str | None:
    """Structural check of a COCO ``segmentation`` value against its image size.

    Accepted: a list of flat polygons (each at least 3 points, an even number of numbers); an RLE
    dict ``{"size": [h, w], "counts": str | list}``; a list of RLE dicts (refCLEF). An uncompressed
    RLE (``counts`` a list) must also sum to ``h * w``. Compressed counts are checked when decoded.

    Returns:
        None when the value is well formed, else a one-sentence description of the problem.
    """
    if isinstance(seg, dict):
        return _check_rle(seg, height, width)
    if not isinstance(seg, list):
        return f"expected a list of polygons or an RLE object, got {type(seg).__name__}"
    if not seg:
        return "no polygon (empty list)"
    for k, poly in enumerate(seg):
        if isinstance(poly, dict):
            problem = _check_rle(poly, height, width)
            if problem:
                return f"RLE {k}: {problem}"
            continue
        # Element types are not checked here (a million annotations hold tens of millions of
        # numbers); a non-number fails, with the annotation id, when the mask is decoded.
        if not isinstance(poly, list) or (poly and not _is_number(poly[0])):
            return f"polygon {k} is not a flat list of numbers [x0, y0, x1, y1, ...]"
        if len(poly) < 6:
            return f"polygon {k} has {len(poly) // 2} point(s); a polygon needs at least 3"
        if len(poly) % 2:
            return f"polygon {k} has an odd number of coordinates ({len(poly)})"
    return None


def _check_rle(rle: dict[str, Any], height: int, width: int) -> str | None:
    size, counts = rle.get("size"), rle.get("counts")
    if not isinstance(size, list) or len(size) != 2 or counts is None:
        return "an RLE needs 'size': [h, w] and 'counts'"
    if [int(size[0]), int(size[1])] != [height, width]:
        return f"RLE size {list(size)} differs from the image size [{height}, {width}]"
    if isinstance(counts, list) and sum(counts) != height * width:
        return f"uncompressed RLE counts sum to {sum(counts)}, not h*w = {height * width}"
    if not isinstance(counts, (str, bytes, list)):
        return f"RLE counts must be a string or a list, got {type(counts).__name__}"
    if isinstance(counts, (str, bytes)):
        runs = compressed_runs(counts)
        if runs is None:
            return "corrupt compressed RLE counts"
        if sum(runs) != height * width:
            return f"compressed RLE counts cover {sum(runs)} pixels, not h*w = {height * width}"
    return None


def compressed_runs(counts: str | bytes) -> list[int] | None:
    """The run lengths of a COCO compressed-RLE counts string, or None if it is corrupt.

    pycocotools decodes without bounds checks (runs that overshoot ``h * w`` write past its
    buffer), so counts are checked here before any decode. The string is read by
    :func:`partonomy.io.masks.compressed_runs` (the format is described there); a character
    outside the COCO alphabet, a value cut off or out of range, or a negative run is corrupt.
    """
    text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
    if not text.isascii():
        return None
    try:
        runs = mask_io.compressed_runs(text)
    except ValueError:  # a character outside the alphabet, a value cut off or out of range
        return None
    if runs.size and runs.min() < 0:
        return None
    return runs.tolist()


class CocoIndex:
    """Images, categories and annotations of a COCO-style JSON, grouped by image, masks lazy.

    Args:
        path: the JSON file (used in error messages).
        data: its parsed content.
        problems: where bad records go (default: raise on the first one).

    Attributes:
        images: image id -> image record (``file_name``, ``height``, ``width``, ...).
        categories: category id -> category record (``name``, ``supercategory``, ...).
        problems: the bad records skipped while indexing (and later, by callers).
    """

    def __init__(self, path: str | Path, data: Any, problems: Problems | None = None) -> None:
        self.path = Path(path)
        self.problems = problems if problems is not None else Problems()
        if not isinstance(data, dict):
            raise FormatError("a COCO annotation file must be a JSON object", file=self.path)
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise FormatError(
                    "missing or not a list", file=self.path, field=key, hint="is this a COCO JSON?"
                )
        self.categories: dict[int, dict[str, Any]] = {}
        for k, cat in enumerate(data["categories"]):
            if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or "name" not in cat:
                raise FormatError(
                    "a category needs an integer 'id' and a 'name'",
                    file=self.path,
                    record=f"category {k}",
                )
            self.categories[cat["id"]] = cat
        self.images: dict[int, dict[str, Any]] = {}
        for k, img in enumerate(data["images"]):
            self._add_image(k, img)
        self._anns: list[dict[str, Any]] = data["annotations"]
        self._by_image: dict[int, list[int]] = {}
        self._pos: dict[int, int] = {}
        self._index_annotations()

    @classmethod
    def load(cls, path: str | Path, *, problems: Problems | None = None) -> CocoIndex:
        """Parse and index ``path``.

        Raises:
            FormatError: the file is missing or not JSON, or (unless ``problems.skip_bad``) a
                record is corrupt; the message names the file and the annotation id.
        """
        return cls(path, load_json(path, what="COCO annotation file"), problems)

    def _bad(self, record: str, fld: str | None, message: str) -> None:
        self.problems.report(BadRecord(str(self.path), record, fld, message))

    def _add_image(self, k: int, img: Any) -> None:
        if not isinstance(img, dict) or not isinstance(img.get("id"), int):
            self._bad(f"image {k}", "id", "an image needs an integer 'id'")
            return
        for key in ("file_name", "height", "width"):
            if key not in img:
                self._bad(f"image id {img['id']}", key, "missing key")
                return
        if img["id"] in self.images:
            self._bad(f"image id {img['id']}", "id", "duplicate image id")
            return
        self.images[img["id"]] = img

    def _index_annotations(self) -> None:
        images, categories = self.images, self.categories
        by_image, pos = self._by_image, self._pos
        for k, ann in enumerate(self._anns):
            if not isinstance(ann, dict) or not isinstance(ann.get("id"), int):
                self._bad(f"annotation {k}", "id", "an annotation needs an integer 'id'")
                continue
            ann_id = ann["id"]
            record = f"annotation id {ann_id}"
            if ann_id in pos:
                self._bad(record, "id", "duplicate annotation id")
                continue
            img = images.get(ann.get("image_id"))  # type: ignore[arg-type]
            if img is None:
                self._bad(
                    record, "image_id", f"image id {ann.get('image_id')!r} is not in 'images'"
                )
                continue
            if ann.get("category_id") not in categories:
                self._bad(
                    record,
                    "category_id",
                    f"category id {ann.get('category_id')!r} does not exist in 'categories'",
                )
                continue
            seg = ann.get("segmentation")
            if seg is None:
                self._bad(record, "segmentation", "missing key")
                continue
            # Fast path for the common case, one well-formed polygon; the rest goes through
            # check_segmentation (same verdicts, just slower).
            first = seg[0] if type(seg) is list and len(seg) == 1 else None
            if not (
                type(first) is list
                and len(first) >= 6
                and not len(first) % 2
                and type(first[0]) in (float, int)
            ):
                problem = check_segmentation(seg, img["height"], img["width"])
                if problem is not None:
                    self._bad(record, "segmentation", problem)
                    continue
            pos[ann_id] = k
            by_image.setdefault(ann["image_id"], []).append(k)

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        """Number of valid annotations."""
        return len(self._pos)

    def image_ids(self) -> list[int]:
        """Ids of the images that have at least one valid annotation, sorted."""
        return sorted(self._by_image)

    def annotations(self, image_id: int) -> list[dict[str, Any]]:
        """The valid annotations of one image, in file order (empty if none)."""
        return [self._anns[k] for k in self._by_image.get(image_id, ())]

    def annotation(self, ann_id: int) -> dict[str, Any]:
        """One valid annotation by id (KeyError if unknown or skipped)."""
        return self._anns[self._pos[ann_id]]

    def iter_annotations(self) -> Iterator[dict[str, Any]]:
        """Every valid annotation, in file order."""
        for k in self._pos.values():
            yield self._anns[k]

    def rle(self, ann: dict[str, Any]) -> mask_io.Rle | None:
        """The annotation's mask as a compressed RLE of its image's size, built on demand.

        Returns:
            The RLE, or None when it cannot be decoded (then a :class:`BadRecord` was reported,
            and this raised unless skipping).
        """
        img = self.images[ann["image_id"]]
        h, w = int(img["height"]), int(img["width"])
        seg = ann["segmentation"]
        try:
            if isinstance(seg, list) and seg and isinstance(seg[0], dict):
                rle = mask_io.union([mask_io.to_rle(r, h, w) for r in seg], size=(h, w))
            else:
                rle = mask_io.to_rle(seg, h, w)
            mask_io.area(rle)  # decodes the counts string: corrupt counts fail here
        except (ValueError, TypeError) as err:
            self._bad(f"annotation id {ann['id']}", "segmentation", f"cannot decode: {err}")
            return None
        return rle

    def mask(self, ann: dict[str, Any]) -> np.ndarray | None:
        """The annotation's mask as a ``bool`` ``(H, W)`` array, or None if undecodable."""
        rle = self.rle(ann)
        return None if rle is None else mask_io.decode(rle)

    def union_mask(self, anns: Iterable[dict[str, Any]], height: int, width: int) -> np.ndarray:
        """Union of several annotations' masks as ``uint8`` 0/1 ``(height, width)``."""
        rles = [r for r in (self.rle(a) for a in anns) if r is not None]
        return mask_io.decode(mask_io.union(rles, size=(height, width))).astype(np.uint8)
