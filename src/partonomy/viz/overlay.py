"""Draw part masks over an image: coloured fills, outlines, labels and a legend.

Pure numpy + Pillow; no model or evaluation code. Colours come from :mod:`partonomy.viz.palette`
(the ``k``-th mask takes ``colour(k)``), so an overlay, its legend and a highlighted answer agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from partonomy.viz.palette import colour


def outline(mask: np.ndarray) -> np.ndarray:
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
        out[outline(m)] = rgb
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
    from partonomy.io.atomic import atomic_write_bytes

    atomic_write_bytes(path, png_bytes(display_overlay(image, masks, labels, min_side=min_side)))


def display_overlay(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    min_side: int = MIN_DISPLAY_SIDE,
    legend: bool = True,
) -> np.ndarray:
    """:func:`overlay_masks` of ``image`` enlarged by :func:`display_scale` (nearest neighbour),
    so that labels and legend do not cover a small image; ``min_side=0`` keeps the size.
    ``legend=False`` leaves the legend out (for a page that lists the colours itself).

    Returns:
        ``(s*H, s*W, 3)`` uint8 RGB, ``s`` the display scale.
    """
    height, width = image.shape[:2]
    scale = display_scale(height, width, min_side) if min_side > 0 else 1
    big_masks = [enlarge(np.asarray(m), scale) for m in masks]
    return overlay_masks(enlarge(image, scale), big_masks, labels, legend=legend)


def png_bytes(image: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) as PNG file bytes."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
