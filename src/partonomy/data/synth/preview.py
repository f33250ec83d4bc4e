"""A contact sheet of a descriptor's images with their part masks overlaid and labelled.

Each tile shows the image, the same image with every annotated part tinted in its own colour,
outlined and numbered, and a legend (number, colour, part name). Parts that are drawn but hidden
by the visibility rule (``hidden_parts``, when the descriptor has it) are listed in grey. Works on
any descriptor, not only synthetic ones.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from partonomy.io import masks as mask_io
from partonomy.io.atomic import atomic_write_bytes
from partonomy.io.descriptor import Instance, load_descriptor
from partonomy.io.labels import is_part_label, part_name
from partonomy.viz.palette import colour

TINT = 0.55
LINE = 14
HEADER = 16


def _boundary(mask: np.ndarray) -> np.ndarray:
    edge = np.zeros_like(mask)
    edge[:, 1:] |= mask[:, 1:] & ~mask[:, :-1]
    edge[:, :-1] |= mask[:, :-1] & ~mask[:, 1:]
    edge[1:, :] |= mask[1:, :] & ~mask[:-1, :]
    edge[:-1, :] |= mask[:-1, :] & ~mask[1:, :]
    return edge


def _anchor(mask: np.ndarray) -> tuple[int, int]:
    """A pixel inside ``mask`` near its centroid (a ring's centroid lies outside it)."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return int(xs[k]), int(ys[k])


Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _tile(image: Image.Image, inst: Instance, tile: int, font: Font) -> Image.Image:
    parts = inst.part_masks()
    names = [part_name(lbl) for lbl in inst.segmentation_labels if is_part_label(lbl)]
    hidden = [str(p) for p in inst.extra.get("hidden_parts") or []]
    n_lines = math.ceil(len(names) / 2) + (1 if hidden else 0)
    canvas = Image.new("RGB", (2 * tile + 6, HEADER + tile + 4 + LINE * max(n_lines, 1)), "white")
    draw = ImageDraw.Draw(canvas)
    title = inst.image_label + ("  [red box]" if inst.extra.get("red_box") else "")
    draw.text((2, 2), title, fill=(0, 0, 0), font=font)

    scale = tile / max(image.size)
    shown = image.convert("RGB").resize(
        (round(image.width * scale), round(image.height * scale)), Image.Resampling.NEAREST
    )
    canvas.paste(shown, (0, HEADER))
    over = np.asarray(shown, dtype=np.float32).copy()
    anchors = []
    for k, name in enumerate(names):
        rgb = np.array(colour(k), dtype=np.float32)
        dense = np.logical_or.reduce([mask_io.decode(r) for r in parts[name]])
        dense = np.asarray(
            Image.fromarray(dense).resize(shown.size, Image.Resampling.NEAREST), dtype=bool
        )
        over[dense] = over[dense] * (1 - TINT) + rgb * TINT
        over[_boundary(dense)] = rgb
        anchors.append(_anchor(dense) if dense.any() else None)
    overlay = Image.fromarray(np.clip(over, 0, 255).astype(np.uint8))
    odraw = ImageDraw.Draw(overlay)
    for k, anchor in enumerate(anchors):
        if anchor is not None:
            x, y = anchor
            odraw.rectangle((x - 1, y - 5, x + 7, y + 6), fill=(0, 0, 0))
            odraw.text((x, y - 5), str(k + 1), fill=(255, 255, 255), font=font)
    canvas.paste(overlay, (tile + 6, HEADER))

    y0 = HEADER + tile + 2
    for k, name in enumerate(names):
        x = 2 + (k % 2) * (tile + 3)
        y = y0 + (k // 2) * LINE
        draw.rectangle((x, y + 2, x + 9, y + 11), fill=colour(k))
        draw.text((x + 13, y), f"{k + 1} {name}", fill=(0, 0, 0), font=font)
    if hidden:
        y = y0 + math.ceil(len(names) / 2) * LINE
        draw.text((2, y), "hidden: " + ", ".join(hidden), fill=(140, 140, 140), font=font)
    return canvas


def write_preview(
    descriptor_path: str | Path, out_path: str | Path, *, n: int = 16, tile: int = 256
) -> Path:
    """Write a contact-sheet PNG of the first ``n`` instances of a descriptor.

    Args:
        descriptor_path: a dataset descriptor JSON.
        out_path: the PNG to write (atomically).
        n: how many instances (fewer if the descriptor has fewer).
        tile: displayed image side in pixels (images are resized, nearest neighbour).

    Returns:
        ``out_path`` as a Path.
    """
    descriptor = load_descriptor(descriptor_path)
    font = ImageFont.load_default()
    tiles = []
    for inst in descriptor.instances[: max(n, 1)]:
        with Image.open(descriptor.image_path(inst)) as image:
            tiles.append(_tile(image, inst, tile, font))
    cols = max(1, min(4, math.ceil(math.sqrt(len(tiles)))))
    rows = math.ceil(len(tiles) / cols)
    width = max(t.width for t in tiles)
    heights = [max(t.height for t in tiles[r * cols : (r + 1) * cols]) for r in range(rows)]
    sheet = Image.new("RGB", (cols * (width + 8), sum(h + 8 for h in heights)), (225, 225, 225))
    y = 0
    for r in range(rows):
        for c, t in enumerate(tiles[r * cols : (r + 1) * cols]):
            sheet.paste(t, (c * (width + 8) + 4, y + 4))
        y += heights[r] + 8
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    out = Path(out_path)
    atomic_write_bytes(out, buf.getvalue())
    return out
