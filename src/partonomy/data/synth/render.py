"""Painting a :class:`~partonomy.data.synth.scene.Scene` and reading its exact annotation back.

Every drawable is painted into the RGB canvas and, at the same pixels, its id into a label map, so
the label map says for each pixel which part copy is visible there. Masks are read from the label
map, so they are exact at the image resolution: outlines, noise and the red box change colours,
never which pixel belongs to which part (the red box is drawn outside the target's bounding box).

The visibility rule (:func:`annotate`): a part copy is annotated when its visible pixel count is at
least ``visibility_threshold`` times its own unoccluded area (pixels cut off by the frame count
towards that area) and at least ``min_part_pixels``. A part is annotated when any copy is, and its
mask is the union of the visible pixels of its kept copies. A part drawn but with no kept copy is
listed in ``hidden_parts``; its few visible pixels still count towards the object mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from partonomy.data.synth.scene import BACKGROUND, Scene
from partonomy.data.synth.shapes import SHAPES, TEXTURES, local_grid

SHADE = 0.15
"""Darkening at the local bottom of a shaded drawable (a linear ramp from 0 at the top)."""
OUTLINE_GAIN = 0.6
"""Colour factor of boundary pixels when outlines are on."""


@dataclass
class Rendered:
    """A painted scene.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        labels: ``(H, W)`` int32 label map (ids of :mod:`partonomy.data.synth.scene`).
        full_area: ``(n_ids,)`` int64 pixel count of each id's whole shape, cut-off pixels included.
    """

    image: np.ndarray
    labels: np.ndarray
    full_area: np.ndarray


@dataclass
class Annotation:
    """The target object's annotation.

    Attributes:
        object_mask: ``(H, W)`` bool, every visible pixel of the target.
        parts: part name -> ``(H, W)`` bool visible mask, for the annotated parts, taxonomy order.
        hidden_parts: parts drawn but dropped by the visibility rule, taxonomy order.
    """

    object_mask: np.ndarray
    parts: dict[str, np.ndarray]
    hidden_parts: list[str]

    def bbox(self) -> tuple[int, int, int, int] | None:
        """``(x0, y0, x1, y1)`` inclusive pixel box of the object mask, or None if it is empty."""
        ys, xs = np.nonzero(self.object_mask)
        if not len(xs):
            return None
        return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def render(scene: Scene, rng: np.random.Generator, *, outline: bool, noise: float) -> Rendered:
    """Paint the background and every layer in order.

    Args:
        scene: what to draw.
        rng: source of the pixel noise.
        outline: darken pixels on a boundary between different ids (not background's side).
        noise: per-pixel Gaussian noise std in 0-255 units (0: none).
    """
    size = scene.size
    canvas = scene.background.astype(np.float32, copy=True)
    labels = np.full((size, size), BACKGROUND, dtype=np.int32)
    n_ids = max([d.label for d in scene.layers] + [scene.target_ids[1]]) + 1
    full_area = np.zeros(n_ids, dtype=np.int64)
    for d in scene.layers:
        (y0, y1, x0, x1), u, v = local_grid(d.matrix, d.center, size, size)
        inside = SHAPES[d.style.shape](u, v)
        full_area[d.label] += int(inside.sum())
        cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, size), max(x0, 0), min(x1, size)
        if cy0 >= cy1 or cx0 >= cx1:
            continue
        win = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        sub, uu, vv = inside[win], u[win], v[win]
        if not sub.any():
            continue
        t = TEXTURES[d.style.texture](uu[sub], vv[sub], d.style.freq)
        colour = d.base[None, :] + (d.accent - d.base)[None, :] * t[:, None]
        if d.shade:
            colour *= (1.0 - SHADE * 0.5 * (np.clip(vv[sub], -1, 1) + 1.0))[:, None]
        canvas[cy0:cy1, cx0:cx1][sub] = colour
        labels[cy0:cy1, cx0:cx1][sub] = d.label
    if outline:
        edge = np.zeros_like(labels, dtype=bool)
        edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
        edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
        edge[1:, :] |= labels[1:, :] != labels[:-1, :]
        edge &= labels != BACKGROUND
        canvas[edge] *= OUTLINE_GAIN
    if noise > 0:
        canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(noise)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return Rendered(image=image, labels=labels, full_area=full_area)


def annotate(
    scene: Scene, rendered: Rendered, *, visibility_threshold: float, min_part_pixels: int
) -> Annotation:
    """Apply the visibility rule (module docstring) to the target's part copies."""
    lo, hi = scene.target_ids
    labels = rendered.labels
    visible = np.bincount(labels.ravel(), minlength=len(rendered.full_area))
    kept: dict[str, list[int]] = {}
    drawn: dict[str, None] = {}
    for label in range(lo, hi):
        part = scene.part_of[label]
        drawn[part] = None
        full = int(rendered.full_area[label])
        seen = int(visible[label])
        if full > 0 and seen >= visibility_threshold * full and seen >= min_part_pixels:
            kept.setdefault(part, []).append(label)
    order = {p: i for i, p in enumerate(scene.target.parts)}
    parts: dict[str, np.ndarray] = {}
    for part in sorted(kept, key=order.__getitem__):
        ids = kept[part]
        mask = labels == ids[0]
        for extra in ids[1:]:
            mask |= labels == extra
        parts[part] = mask
    hidden = sorted((p for p in drawn if p not in kept), key=order.__getitem__)
    object_mask = (labels >= lo) & (labels < hi)
    return Annotation(object_mask=object_mask, parts=parts, hidden_parts=hidden)


def draw_red_box(image: np.ndarray, box: tuple[int, int, int, int], width: int, pad: int) -> None:
    """Draw a red rectangle around ``box`` (inclusive ``x0, y0, x1, y1``), in place.

    The rectangle's inner edge lies ``pad`` pixels outside the box, so it never covers a pixel of
    the boxed object; parts of it past the image border are clipped.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    ox0, oy0 = x0 - pad - width, y0 - pad - width  # outer corners
    ox1, oy1 = x1 + pad + width, y1 + pad + width
    red = np.array([255, 0, 0], dtype=np.uint8)

    def fill(ya: int, yb: int, xa: int, xb: int) -> None:
        ya, yb, xa, xb = max(ya, 0), min(yb, h), max(xa, 0), min(xb, w)
        if ya < yb and xa < xb:
            image[ya:yb, xa:xb] = red

    fill(oy0, oy0 + width, ox0, ox1 + 1)  # top
    fill(oy1 - width + 1, oy1 + 1, ox0, ox1 + 1)  # bottom
    fill(oy0, oy1 + 1, ox0, ox0 + width)  # left
    fill(oy0, oy1 + 1, ox1 - width + 1, ox1 + 1)  # right
