"""Object-part matching and the red-box images, as the original PARTONOMY conversion does them.

COCO-style part datasets annotate objects and parts as separate instances. A part belongs to an
object when at least :data:`OVERLAP_THRESHOLD` of the part's area lies inside the object. Per
image and object class one instance is kept: the one with the most matched parts, ties broken by
the larger object area, then by the lower annotation id (so the choice is deterministic). When an
image holds several instances of the class, the chosen one is marked with a red box (width
:data:`BOX_WIDTH`, padded by :data:`BOX_PAD` px) in a derived copy of the image, so a question
about "the object" names one instance.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from partonomy.io import masks as mask_io
from partonomy.io.atomic import atomic_write_bytes

OVERLAP_THRESHOLD = 0.1
"""A part matches an object when ``area(part AND object) / area(part) >= OVERLAP_THRESHOLD``."""
BOX_WIDTH = 3
"""Line width of the red box, in pixels (drawn inwards from the padded box edge)."""
BOX_PAD = 5
"""Padding between the object's tight box and the red box, in pixels."""
BOX_COLOR = (255, 0, 0)
JPEG_QUALITY = 95


@dataclass
class Candidate:
    """One object instance and the parts matched to it.

    Attributes:
        ann_id: the object's annotation id.
        rle: its mask.
        area: its pixel area.
        parts: annotation ids of the matched parts, in the order given to :func:`match_parts`.
    """

    ann_id: int
    rle: mask_io.Rle
    area: int
    parts: list[int] = field(default_factory=list)


def overlap_fraction(part: mask_io.Rle, obj: mask_io.Rle) -> float:
    """Fraction of ``part``'s area inside ``obj`` (0.0 for an empty part)."""
    part_area = mask_io.area(part)
    if part_area == 0:
        return 0.0
    return mask_io.intersection_area(part, obj) / part_area


def match_parts(
    objects: Sequence[tuple[int, mask_io.Rle]],
    parts: Sequence[tuple[int, mask_io.Rle]],
    threshold: float = OVERLAP_THRESHOLD,
) -> list[Candidate]:
    """Attach each part to the object instance that holds most of it.

    Args:
        objects: ``(annotation id, RLE)`` of the object instances of one class in one image.
        parts: ``(annotation id, RLE)`` of that class's part instances in the same image.
        threshold: the minimum overlap fraction (of the part's area) for a match.

    Returns:
        One :class:`Candidate` per object, in input order. A part goes to the object with the
        largest overlap fraction (first object on ties) if that fraction reaches ``threshold``;
        it is matched to at most one object, so parts are never counted twice.
    """
    candidates = [Candidate(oid, rle, mask_io.area(rle)) for oid, rle in objects]
    for pid, prle in parts:
        best, best_frac = None, -1.0
        for cand in candidates:
            frac = overlap_fraction(prle, cand.rle)
            if frac > best_frac:
                best, best_frac = cand, frac
        if best is not None and best_frac >= threshold:
            best.parts.append(pid)
    return candidates


def choose_instance(candidates: Sequence[Candidate]) -> Candidate | None:
    """The candidate with the most parts, then the largest area, then the lowest id.

    Returns:
        None when no candidate has a matched part (the class is then dropped for the image).
    """
    with_parts = [c for c in candidates if c.parts]
    if not with_parts:
        return None
    return min(with_parts, key=lambda c: (-len(c.parts), -c.area, c.ann_id))


def red_box(
    bbox_xywh: tuple[float, float, float, float], width: int, height: int, pad: int = BOX_PAD
) -> tuple[int, int, int, int]:
    """The padded box ``(x0, y0, x1, y1)`` (inclusive pixel corners) clamped to the image.

    ``bbox_xywh`` is a COCO box (top-left pixel, width and height in pixels).
    """
    x, y, w, h = bbox_xywh
    x0 = max(0, int(x) - pad)
    y0 = max(0, int(y) - pad)
    x1 = min(width - 1, int(x + w) - 1 + pad)
    y1 = min(height - 1, int(y + h) - 1 + pad)
    return x0, y0, max(x0, x1), max(y0, y1)


def draw_red_box(
    image: Image.Image,
    bbox_xywh: tuple[float, float, float, float],
    *,
    line_width: int = BOX_WIDTH,
    pad: int = BOX_PAD,
) -> Image.Image:
    """A copy of ``image`` (converted to RGB) with a red box around ``bbox_xywh``."""
    out = image.convert("RGB")
    box = red_box(bbox_xywh, out.width, out.height, pad)
    ImageDraw.Draw(out).rectangle(box, outline=BOX_COLOR, width=line_width)
    return out


def save_boxed_image(
    src: str | Path, bbox_xywh: tuple[float, float, float, float], dst: str | Path
) -> None:
    """Read ``src``, draw the red box and write a JPEG to ``dst`` atomically."""
    with Image.open(src) as img:
        boxed = draw_red_box(img, bbox_xywh)
    buffer = io.BytesIO()
    boxed.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    atomic_write_bytes(dst, buffer.getvalue())


def boxed_image_name(stem: str, k: int) -> str:
    """The derived image's file name: ``{stem}-{k}.jpg``."""
    return f"{stem}-{k}.jpg"
