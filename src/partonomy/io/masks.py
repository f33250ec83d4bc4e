"""Masks: COCO compressed RLE on disk, boolean ``(H, W)`` numpy arrays in memory.

Every RLE operation goes through ``pycocotools.mask``; nothing here re-implements run-length coding.

Conventions:
    * An RLE dict is ``{"size": [h, w], "counts": str}`` (compressed counts, ASCII string).
    * A dense mask is a ``bool`` array of shape ``(h, w)`` in image pixel coordinates (row, col).
    * Polygons are COCO polygons: a list of flat ``[x0, y0, x1, y1, ...]`` lists in pixel coordinates.
    * An uncompressed RLE (``counts`` a list of ints) is accepted on input and compressed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

Rle = dict[str, Any]
"""A COCO compressed RLE: ``{"size": [h, w], "counts": str}``."""


def encode(mask: np.ndarray) -> Rle:
    """Encode a 2-D mask (any dtype; non-zero = foreground) as a compressed RLE with str counts."""
    if mask.ndim != 2:
        raise ValueError(f"encode expects a 2-D (H, W) mask, got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": rle["counts"].decode("ascii"),
    }


def _to_coco(rle: Rle) -> dict[str, Any]:
    counts = rle["counts"]
    return {
        "size": list(rle["size"]),
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }


def decode(rle: Rle) -> np.ndarray:
    """Decode a compressed RLE to a ``bool`` array of shape ``rle["size"]`` = ``(h, w)``."""
    return mask_utils.decode(_to_coco(rle)).astype(bool)


def area(rle: Rle) -> int:
    """Foreground pixel count of a compressed RLE (no decoding)."""
    return int(mask_utils.area(_to_coco(rle)))


def union(rles: Sequence[Rle], size: Sequence[int] | None = None) -> Rle:
    """Union of RLEs of one size. An empty sequence gives an empty mask of ``size`` (required then)."""
    if not rles:
        if size is None:
            raise ValueError("union of no masks needs an explicit size")
        return empty(int(size[0]), int(size[1]))
    if len(rles) == 1:
        return {"size": list(rles[0]["size"]), "counts": rles[0]["counts"]}
    merged = mask_utils.merge([_to_coco(r) for r in rles], intersect=False)
    return {
        "size": [int(merged["size"][0]), int(merged["size"][1])],
        "counts": merged["counts"].decode("ascii"),
    }


def intersection_area(a: Rle, b: Rle) -> int:
    """Pixel count of ``a AND b`` (same size), computed in RLE space."""
    merged = mask_utils.merge([_to_coco(a), _to_coco(b)], intersect=True)
    return int(mask_utils.area(merged))


def empty(height: int, width: int) -> Rle:
    """An all-background RLE of shape ``(height, width)``."""
    return encode(np.zeros((height, width), dtype=np.uint8))


def from_polygons(polygons: Sequence[Sequence[float]], height: int, width: int) -> Rle:
    """Rasterise COCO polygons (flat ``[x, y, ...]`` lists, pixel coordinates) into one RLE.

    Raises:
        ValueError: a polygon has fewer than 3 points (6 numbers) or an odd number of coordinates.
    """
    for k, poly in enumerate(polygons):
        if len(poly) < 6 or len(poly) % 2:
            raise ValueError(
                f"polygon {k} has {len(poly)} coordinates; a polygon needs at least 3 (x, y) points"
            )
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    merged = mask_utils.merge(rles, intersect=False)
    return {
        "size": [int(merged["size"][0]), int(merged["size"][1])],
        "counts": merged["counts"].decode("ascii"),
    }


def to_rle(obj: Any, height: int | None = None, width: int | None = None) -> Rle:
    """Normalise any accepted mask encoding to a compressed RLE with str counts.

    Accepted: a compressed RLE; an uncompressed RLE (``counts`` a list); the original code's
    wrapper ``{"segmentation": <any of these>}``; ``{"polygon"|"polygons": [...], "size": [h, w]}``;
    a bare list of polygons (then ``height`` and ``width`` are required); a 2-D numpy array.

    Raises:
        ValueError: the object is none of the above; the message says which keys were seen.
    """
    if isinstance(obj, np.ndarray):
        return encode(obj)
    if isinstance(obj, dict):
        if "segmentation" in obj and "counts" not in obj:
            size = obj.get("size")
            h = height if size is None else int(size[0])
            w = width if size is None else int(size[1])
            return to_rle(obj["segmentation"], h, w)
        if "counts" in obj and "size" in obj:
            h, w = _check_size(obj["size"])
            counts = obj["counts"]
            if isinstance(counts, list):  # uncompressed RLE
                if not all(_is_int(c) for c in counts):
                    raise ValueError("uncompressed RLE counts must be integers")
                _check_total(sum(counts), min(counts, default=0), h, w)
                coco = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
                return {"size": [h, w], "counts": coco["counts"].decode("ascii")}
            if isinstance(counts, bytes):
                counts = counts.decode("ascii", errors="replace")
            if not isinstance(counts, str):
                raise ValueError(
                    f"RLE counts must be a string or a list, got {type(counts).__name__}"
                )
            runs = compressed_runs(counts)
            _check_total(int(runs.sum()), int(runs.min(initial=0)), h, w)
            return {"size": [h, w], "counts": counts}
        for key in ("polygon", "polygons"):
            if key in obj:
                size = obj.get("size")
                if size is None and (height is None or width is None):
                    raise ValueError(f"a '{key}' mask needs a 'size' [h, w]")
                h = int(size[0]) if size is not None else int(height)  # type: ignore[arg-type]
                w = int(size[1]) if size is not None else int(width)  # type: ignore[arg-type]
                polys = obj[key]
                if polys and not isinstance(polys[0], (list, tuple)):
                    polys = [polys]
                return from_polygons(polys, h, w)
        raise ValueError(
            f"not a mask: keys {sorted(obj)}; expected an RLE {{size, counts}}, "
            "{segmentation: ...} or {polygon(s): ..., size: ...}"
        )
    if isinstance(obj, list):
        if height is None or width is None:
            raise ValueError("a polygon list needs the image height and width")
        polys = obj if obj and isinstance(obj[0], (list, tuple)) else [obj]
        return from_polygons(polys, height, width)
    raise ValueError(f"not a mask: {type(obj).__name__}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_size(size: Any) -> tuple[int, int]:
    ok = isinstance(size, (list, tuple)) and len(size) == 2
    ok = ok and all(_is_int(v) and v >= 0 for v in size)
    if not ok:
        raise ValueError(f"RLE size must be [height, width] (non-negative integers), got {size!r}")
    return int(size[0]), int(size[1])


def _check_total(total: int, smallest: int, height: int, width: int) -> None:
    # pycocotools trusts 'size': runs that do not cover exactly h*w pixels make decode() return
    # uninitialised memory and merge() loop forever, so such an RLE is refused on input.
    if smallest < 0 or total != height * width:
        raise ValueError(
            f"RLE counts cover {total} pixels but size [{height}, {width}] has "
            f"{height * width}; the mask is corrupt or its size is wrong"
        )


def compressed_runs(counts: str) -> np.ndarray:
    """Run lengths of a COCO compressed-RLE string, as an int64 array (for validation only).

    The string holds signed 5-bit-group varints, ASCII-offset by 48 (``0x20`` = more groups
    follow, ``0x10`` of the last group = negative); from the 4th value on, each is a delta to the
    value two before. Decoding to pixels stays with pycocotools.

    Raises:
        ValueError: a character outside the alphabet, or a truncated last value.
    """
    if not counts:
        return np.zeros(0, np.int64)
    codes = np.frombuffer(counts.encode("latin-1", errors="replace"), np.uint8).astype(np.int64)
    codes -= 48
    if codes.min() < 0 or codes.max() > 63:
        raise ValueError("RLE counts string has characters outside the COCO alphabet")
    last = (codes & 0x20) == 0  # the last group of each value
    if not last[-1]:
        raise ValueError("RLE counts string is truncated (its last value is unfinished)")
    value_of = np.concatenate([[0], np.cumsum(last)[:-1]])  # value index of each group
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    position = np.arange(len(codes)) - starts[value_of]  # group index within its value
    if position.max() > 6:  # 35 bits: far beyond any image
        raise ValueError("RLE counts string holds an out-of-range value")
    values = np.bincount(value_of, weights=(codes & 0x1F) << (5 * position)).astype(np.int64)
    ends = np.flatnonzero(last)
    negative = (codes[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * (position[ends][negative] + 1))
    runs = values.copy()
    # runs[i] = values[i] + runs[i - 2] for i > 2: cumulative sums over odd (from 1) and even
    # (from 2) positions
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def resize(rle: Rle, height: int, width: int) -> Rle:
    """Nearest-neighbour resize of a mask to ``(height, width)`` (used for size mismatches)."""
    from PIL import Image

    dense = decode(rle)
    img = Image.fromarray(dense.astype(np.uint8) * 255).resize(
        (width, height), Image.Resampling.NEAREST
    )
    return encode(np.asarray(img) > 127)


def bbox(rle: Rle) -> tuple[float, float, float, float]:
    """Tight box of the foreground in XYWH pixel coordinates (COCO convention); zeros if empty."""
    x, y, w, h = mask_utils.toBbox(_to_coco(rle)).tolist()
    return float(x), float(y), float(w), float(h)
