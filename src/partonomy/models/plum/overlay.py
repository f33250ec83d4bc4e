"""Draw predicted part masks over an image (coloured fills, outlines, labels, a legend), and write
a free-form answer's three files (``partonomy predict``). Pure numpy + Pillow; no model code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from partonomy.eval.protocol import FreeFormAnswer

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
    (128, 0, 0),
)
"""Mask colours (RGB), in order; the k-th mask takes ``PALETTE[k % len(PALETTE)]``."""


def colour(k: int) -> tuple[int, int, int]:
    """The colour of the ``k``-th mask."""
    return PALETTE[k % len(PALETTE)]


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` that touch the background (4-neighbourhood; the border counts as background)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    return mask & ~interior


def overlay_masks(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    alpha: float = 0.45,
    legend: bool = True,
) -> np.ndarray:
    """Blend each mask's colour over ``image``, outline it and write its label on it.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        masks: bool ``(H, W)`` masks (non-zero = foreground), drawn in order (later ones on top).
        labels: one label per mask, written at the top-left corner of the mask's bounding box; an
            empty mask gets no on-image label (it still appears in the legend, marked "(empty)").
        alpha: opacity of the fill, in [0, 1].
        legend: draw a legend (colour swatch + label per mask) in the top-left corner.

    Returns:
        ``(H, W, 3)`` uint8 RGB; ``image`` itself is not modified.

    Raises:
        ValueError: a mask whose shape is not the image's ``(H, W)``, or labels that do not
            match the masks one to one.
    """
    from PIL import Image, ImageDraw, ImageFont

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
    if len(labels) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(labels)} labels")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    height, width = image.shape[:2]
    out = image.astype(np.float32)
    bool_masks = []
    for k, mask in enumerate(masks):
        m = np.asarray(mask).astype(bool)
        if m.shape != (height, width):
            raise ValueError(f"mask {k} has shape {m.shape}; the image is {(height, width)}")
        bool_masks.append(m)
        rgb = np.array(colour(k), dtype=np.float32)
        out[m] = (1.0 - alpha) * out[m] + alpha * rgb
        out[_outline(m)] = rgb
    canvas = Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for k, (m, label) in enumerate(zip(bool_masks, labels, strict=True)):
        if not m.any():
            continue
        rows, cols = np.nonzero(m)
        x, y = int(cols.min()), int(rows.min())
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=colour(k))
        draw.text((x, y), label, fill=(255, 255, 255), font=font)
    if legend and labels:
        y = 2
        for k, (m, label) in enumerate(zip(bool_masks, labels, strict=True)):
            text = label if m.any() else f"{label} (empty)"
            left, top, right, bottom = draw.textbbox((14, y), text, font=font)
            draw.rectangle((0, top - 1, right + 2, bottom + 1), fill=(0, 0, 0))
            draw.rectangle((2, top, 11, bottom), fill=colour(k))
            draw.text((14, y), text, fill=(255, 255, 255), font=font)
            y = int(bottom) + 3
    return np.asarray(canvas, dtype=np.uint8).copy()


MIN_DISPLAY_SIDE = 256
"""Overlays of smaller images are enlarged until their short side reaches this many pixels."""


def display_scale(height: int, width: int, min_side: int = MIN_DISPLAY_SIDE) -> int:
    """The integer factor that brings the short side of an ``height x width`` image to at least
    ``min_side`` pixels (1 for images that are already large enough)."""
    return max(1, math.ceil(min_side / max(1, min(height, width))))


def enlarge(array: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour ``scale`` x enlargement of an ``(H, W, ...)`` array (pixels stay crisp,
    mask edges stay exact)."""
    if scale == 1:
        return array
    return np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)


def save_overlay(
    path: str | Path,
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    min_side: int = MIN_DISPLAY_SIDE,
) -> None:
    """Write :func:`overlay_masks` as a PNG, atomically.

    A small image (a 64-pixel Synth image, say) is enlarged by :func:`display_scale` first, so
    that the labels and legend do not cover it; pass ``min_side=0`` to keep the image's size.
    """
    import io

    from PIL import Image

    from partonomy.io.atomic import atomic_write_bytes

    scale = display_scale(*image.shape[:2], min_side) if min_side > 0 else 1
    big_masks = [enlarge(np.asarray(m), scale) for m in masks]
    buffer = io.BytesIO()
    Image.fromarray(overlay_masks(enlarge(image, scale), big_masks, labels)).save(
        buffer, format="PNG"
    )
    atomic_write_bytes(path, buffer.getvalue())


ANSWER_FILE = "answer.txt"
SPANS_FILE = "spans.json"
OVERLAY_FILE = "overlay.png"


def write_answer(
    out: str | Path,
    image: np.ndarray,
    question: str,
    answer: FreeFormAnswer,
    *,
    highlight: Sequence[str] | None = None,
    image_path: str | None = None,
) -> dict[str, Path]:
    """Write a free-form answer as ``partonomy predict`` does, each file atomically.

    Files in ``out`` (created if needed):

    * ``answer.txt``: the answer text and a newline.
    * ``spans.json``: ``{"image", "question", "answer", "highlight", "spans": [{"start", "end",
      "text", "area", "mask"}]}``; offsets are characters of ``answer`` (end exclusive), ``mask``
      a COCO RLE of the ``(H, W)`` image and ``area`` its pixel count.
    * ``overlay.png``: :func:`overlay_masks` with each span's text as its label, enlarged for
      display when the image's short side is under :data:`MIN_DISPLAY_SIDE` pixels.

    Returns:
        ``{"answer": path, "spans": path, "overlay": path}``.
    """
    from partonomy.io import masks as mask_io
    from partonomy.io.atomic import atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"answer": out / ANSWER_FILE, "spans": out / SPANS_FILE, "overlay": out / OVERLAY_FILE}
    atomic_write_text(paths["answer"], answer.text + "\n")
    record = {
        "image": image_path,
        "question": question,
        "answer": answer.text,
        "highlight": None if highlight is None else list(highlight),
        "spans": [
            {
                "start": span.start,
                "end": span.end,
                "text": span.text,
                "area": int(np.count_nonzero(mask)),
                "mask": mask_io.encode(mask),
            }
            for span, mask in zip(answer.spans, answer.masks, strict=True)
        ],
    }
    atomic_write_json(paths["spans"], record)
    save_overlay(paths["overlay"], image, answer.masks, [s.text for s in answer.spans])
    return paths
