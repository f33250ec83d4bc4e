"""Sampling one Partonomy-Synth scene: what is drawn where, before any pixel is painted.

A :class:`Scene` is a textured background plus an ordered list of :class:`Drawable` layers (paint
order, first = furthest back). Each drawable is one copy of one part (or an occluder or clutter
blob) with its own label id, so the renderer can tell afterwards exactly which pixels of which part
copy stayed visible. Everything random is drawn from the ``np.random.Generator`` passed in.

Label ids: :data:`BACKGROUND` (0), :data:`CLUTTER` (1), :data:`OCCLUDER` (2), then one id per part
copy, the target object's ids forming one contiguous range ``[target_ids[0], target_ids[1])``.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from partonomy.data.synth.config import SynthConfig
from partonomy.data.synth.styles import OCCLUDER_STYLES, PART_STYLES, PartStyle
from partonomy.data.synth.taxonomy import ObjectSpec

BACKGROUND = 0
CLUTTER = 1
OCCLUDER = 2
FIRST_PART_ID = 3

MULTI_OBJECT_SCALE = 0.55
"""Objects of a multi-object image are drawn at this fraction of the single-object scale."""
OCCLUDER_MAX = 0.35
"""Largest occluder half-size, as a fraction of the target object's half-size in pixels."""
JITTER_POS = 0.04
JITTER_SIZE = 0.1
JITTER_ANGLE = 6.0
"""Per-part jitter in the object frame: position (+-), relative size (+-) and angle (+- degrees)."""


@dataclass
class Drawable:
    """One shape to paint.

    Attributes:
        style: shape, texture and texture frequency.
        matrix: ``(2, 2)`` float64 map from local ``(u, v)`` to image ``(x, y)`` offsets (pixels).
        center: ``(2,)`` float64 image position ``(x, y)`` of the local origin.
        base: ``(3,)`` float32 RGB base colour in ``[0, 255]``.
        accent: ``(3,)`` float32 RGB accent colour (texture value 1).
        label: the id written into the label map.
        shade: darken towards the local bottom (a hint of volume).
    """

    style: PartStyle
    matrix: np.ndarray
    center: np.ndarray
    base: np.ndarray
    accent: np.ndarray
    label: int
    shade: bool = True


@dataclass
class Scene:
    """Everything needed to render one image.

    Attributes:
        size: image side in pixels.
        background: ``(size, size, 3)`` float32 RGB in ``[0, 255]``.
        layers: drawables in paint order.
        target: the target object's spec.
        target_ids: ``[lo, hi)`` label ids of the target's part copies.
        part_of: label id -> part name, for the target's ids.
        n_objects: objects in the image (target included).
        red_box: whether the target is marked with a red box (multi-object images).
    """

    size: int
    background: np.ndarray
    layers: list[Drawable]
    target: ObjectSpec
    target_ids: tuple[int, int]
    part_of: dict[int, str] = field(default_factory=dict)
    n_objects: int = 1
    red_box: bool = False


# ----------------------------------------------------------------------------- colours


def _rgb(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def _palette(rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """Three HSV colours for one object: a base hue, a neighbour and a far hue."""
    h0 = rng.random()
    hues = (h0, h0 + rng.uniform(0.08, 0.2), h0 + rng.uniform(0.4, 0.6))
    return [(h, rng.uniform(0.35, 0.85), rng.uniform(0.5, 0.95)) for h in hues]


def _part_colours(
    rng: np.random.Generator, palette: list[tuple[float, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Base and accent for one part: any palette colour, and a clearly lighter or darker tone.

    The accent differs from the base in value by at least 0.35, so every texture stays visible.
    """
    h, s, v = palette[int(rng.integers(len(palette)))]
    if rng.random() < 0.5:
        h = palette[int(rng.integers(len(palette)))][0]
    av = v - 0.45 if v > 0.6 else v + 0.4
    return _rgb(h, s, v), _rgb(h, s * 0.8, min(av, 1.0))


def _muted(rng: np.random.Generator) -> np.ndarray:
    return _rgb(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.3, 0.85))


# ----------------------------------------------------------------------------- background


def _upsample(small: np.ndarray, size: int) -> np.ndarray:
    """Smoothly resize a ``(k, k, 3)`` float array in [0, 255] to ``(size, size, 3)`` float32."""
    img = Image.fromarray(np.clip(small, 0, 255).astype(np.uint8))
    return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured, muted background: blotches, waves, tiles or a speckled gradient.

    Returns:
        ``(size, size, 3)`` float32 RGB in ``[0, 255]``.
    """
    kind = int(rng.integers(4))
    c1, c2 = _muted(rng), _muted(rng)
    # Broadcasting (1, W) and (H, 1) grids keeps the per-pixel work to one pass per operation.
    xs = (np.arange(size, dtype=np.float32) / size)[None, :]
    ys = (np.arange(size, dtype=np.float32) / size)[:, None]
    if kind == 0:  # blotches: two octaves of smooth random colour
        k = int(rng.integers(3, 7))
        mix = rng.random((k, k, 1)).astype(np.float32)
        coarse = _upsample(c1 * (1 - mix) + c2 * mix, size)
        fine = _upsample(rng.normal(128.0, 18.0, (4 * k, 4 * k, 1)).repeat(3, 2), size)
        coarse += fine
        coarse -= 128.0
        return coarse
    if kind == 1:  # waves: warped stripes, like wood grain or sand
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(6, 16)
        phase = xs * np.float32(np.cos(theta)) + ys * np.float32(np.sin(theta))
        across = xs * np.float32(np.sin(theta)) - ys * np.float32(np.cos(theta))
        t = 0.5 + 0.5 * np.sin(
            np.float32(2 * np.pi * freq) * phase + 0.6 * np.sin(4 * np.pi * across)
        )
        return c1 + (c2 - c1) * t[..., None]
    if kind == 2:  # tiles with grout lines
        n = float(rng.integers(4, 12))
        checker = (np.floor(xs * n) + np.floor(ys * n)) % 2.0
        grout = ((xs * n % 1.0) < 0.06) | ((ys * n % 1.0) < 0.06)
        gain = np.where(grout, 0.6, 1.0).astype(np.float32)
        t = (0.3 * checker).astype(np.float32)
        return (c1 + (c2 - c1) * t[..., None]) * gain[..., None]
    # a gradient with speckle
    gx, gy = rng.uniform(-1, 1, 2)
    t = xs * np.float32(gx) + ys * np.float32(gy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    speck = np.where(rng.random((size, size)) < 0.08, 0.8, 1.0).astype(np.float32)
    return (c1 + (c2 - c1) * t[..., None]) * speck[..., None]


# ----------------------------------------------------------------------------- placement


def _rot(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s], [s, c]])


@dataclass
class _Pose:
    center: np.ndarray  # (2,) image (x, y) of the object-frame origin
    matrix: np.ndarray  # (2, 2) object frame -> image offsets


def _sample_pose(rng: np.random.Generator, cfg: SynthConfig, size: int, scale: float) -> np.ndarray:
    """An object-frame -> image ``(2, 2)`` linear map: rotation, mirror, aspect and scale."""
    aspect = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    flip = bool(rng.random() < 0.5)
    angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
    sx = scale * size * np.sqrt(aspect) * (-1.0 if flip else 1.0)
    sy = scale * size / np.sqrt(aspect)
    return _rot(angle) @ np.diag([sx, sy])


def _object_parts(
    rng: np.random.Generator, spec: ObjectSpec, cfg: SynthConfig, all_optional: bool
) -> list[tuple[str, int, np.ndarray, np.ndarray, int]]:
    """The part copies of one object in the object frame, jittered.

    Returns:
        ``[(part, copy_index, local_matrix (2, 2), object_frame_center (2,), z)]`` in paint order
        (by slot ``z``, then taxonomy order).
    """
    out = []
    for order, part in enumerate(spec.parts):
        if part in spec.optional and not all_optional and rng.random() >= cfg.optional_part_prob:
            continue
        slot = spec.slots[part]
        dpos = rng.uniform(-JITTER_POS, JITTER_POS, 2)
        dsize = rng.uniform(1 - JITTER_SIZE, 1 + JITTER_SIZE, 2)
        dangle = rng.uniform(-JITTER_ANGLE, JITTER_ANGLE)
        for k, (x, y, angle, scale) in enumerate(slot.copies()):
            local = _rot(angle + dangle) @ np.diag(
                [slot.w * scale * dsize[0], slot.h * scale * dsize[1]]
            )
            out.append((part, k, local, np.array([x, y]) + dpos, slot.z * 1000 + order))
    out.sort(key=lambda item: item[4])
    return out


def _extent(pose: _Pose, parts: list[tuple[str, int, np.ndarray, np.ndarray, int]]) -> np.ndarray:
    """``[[xmin, ymin], [xmax, ymax]]`` of every part copy's local square, in image pixels."""
    square = np.array([[-1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]])
    pts = [pose.matrix @ (local @ square + center[:, None]) for _, _, local, center, _ in parts]
    allp = np.concatenate(pts, axis=1) + pose.center[:, None]
    return np.stack([allp.min(axis=1), allp.max(axis=1)])


def _fit_in_frame(pose: _Pose, parts: list, size: int) -> _Pose:
    """Shrink (if needed) and shift the object so its parts' squares lie inside the image."""
    box = _extent(pose, parts)
    span = (box[1] - box[0]).max()
    room = size * 0.98
    if span > room:  # scale about the object origin
        factor = room / span
        pose = _Pose(pose.center, pose.matrix * factor)
        box = _extent(pose, parts)
    shift = np.zeros(2)
    for axis in range(2):
        lo, hi = box[0, axis], box[1, axis]
        if lo < 0:
            shift[axis] = -lo
        elif hi > size:
            shift[axis] = size - hi
    return _Pose(pose.center + shift, pose.matrix)


def _truncate(rng: np.random.Generator, pose: _Pose, parts: list, size: int) -> _Pose:
    """Push the object over one image edge so 15-45 % of its extent is outside the frame."""
    box = _extent(pose, parts)
    axis = int(rng.integers(2))
    side = int(rng.integers(2))
    span = box[1, axis] - box[0, axis]
    out = rng.uniform(0.15, 0.45) * span
    shift = np.zeros(2)
    shift[axis] = -out - box[0, axis] if side == 0 else size + out - box[1, axis]
    return _Pose(pose.center + shift, pose.matrix)


# ----------------------------------------------------------------------------- scene


def sample_scene(
    rng: np.random.Generator,
    target: ObjectSpec,
    others: tuple[ObjectSpec, ...],
    cfg: SynthConfig,
    *,
    canonical: bool = False,
) -> Scene:
    """Draw one scene around ``target``.

    Args:
        rng: the image's generator (everything random comes from it).
        target: the object the image is annotated for.
        others: objects that may be added as distractors in multi-object images.
        cfg: the world's knobs.
        canonical: the target alone, whole, with all optional parts, no occluder, no truncation.

    Returns:
        The scene; its target part ids map to part names in ``Scene.part_of``.
    """
    size = cfg.size
    multi = not canonical and rng.random() < cfg.multi_object_prob
    n_objects = int(rng.integers(2, cfg.max_objects + 1)) if multi else 1
    scale_mul = MULTI_OBJECT_SCALE if multi else 1.0
    truncate = not canonical and rng.random() < cfg.truncation_prob
    occlude = not canonical and rng.random() < cfg.occlusion_prob

    layers: list[Drawable] = []
    for _ in range(int(rng.integers(0, cfg.clutter + 1))):
        style = OCCLUDER_STYLES[int(rng.integers(len(OCCLUDER_STYLES)))]
        half = rng.uniform(0.04, 0.12, 2) * size
        matrix = _rot(rng.uniform(0, 180)) @ np.diag(half)
        center = rng.uniform(0, size, 2)
        layers.append(Drawable(style, matrix, center, _muted(rng), _muted(rng), CLUTTER))

    # Objects: the target first (ids contiguous), then distractors; paint order is shuffled.
    objects: list[tuple[ObjectSpec, bool]] = [(target, True)]
    for _ in range(n_objects - 1):
        objects.append((others[int(rng.integers(len(others)))], False))
    placed: list[list[Drawable]] = []
    part_of: dict[int, str] = {}
    next_id = FIRST_PART_ID
    target_copies: list[Drawable] = []
    target_half_px = 0.0
    for spec, is_target in objects:
        low, high = cfg.scale_range
        scale = float(rng.uniform(low, high)) * scale_mul
        matrix = _sample_pose(rng, cfg, size, scale)
        parts = _object_parts(rng, spec, cfg, all_optional=canonical)
        margin = scale * size
        center = rng.uniform(margin, max(size - margin, margin + 1e-3), 2)
        pose = _Pose(center, matrix)
        if is_target:
            pose = (
                _truncate(rng, pose, parts, size) if truncate else _fit_in_frame(pose, parts, size)
            )
        palette = _palette(rng)
        colours = {part: _part_colours(rng, palette) for part in spec.parts}
        drawables = []
        for part, _k, local, offset, _z in parts:
            base, accent = colours[part]
            drawables.append(
                Drawable(
                    PART_STYLES[part],
                    pose.matrix @ local,
                    pose.center + pose.matrix @ offset,
                    base,
                    accent,
                    next_id,
                )
            )
            if is_target:
                part_of[next_id] = part
            next_id += 1
        if is_target:
            target_copies = drawables
            target_half_px = scale * size
        placed.append(drawables)
    target_ids = (FIRST_PART_ID, FIRST_PART_ID + len(target_copies))
    for index in rng.permutation(len(placed)):
        layers.extend(placed[int(index)])

    if occlude and target_copies:
        victim = target_copies[int(rng.integers(len(target_copies)))]
        half = np.linalg.norm(victim.matrix, axis=0)  # the part's local half-axes, in pixels
        # About the part's size, but never more than a third of the object: an occluder hides
        # one part (fully or partly), not the whole object.
        cap = OCCLUDER_MAX * target_half_px
        side = min(max(float(half.max()), 3.0) * rng.uniform(0.6, 1.4), cap)
        offset = victim.matrix @ rng.uniform(-0.6, 0.6, 2)
        style = OCCLUDER_STYLES[int(rng.integers(len(OCCLUDER_STYLES)))]
        matrix = _rot(rng.uniform(0, 180)) @ np.diag([side, side * rng.uniform(0.6, 1.0)])
        h = rng.uniform(0.05, 0.35)
        base = _rgb(h, rng.uniform(0.2, 0.6), rng.uniform(0.25, 0.7))
        accent = _rgb(h, rng.uniform(0.2, 0.6), rng.uniform(0.25, 0.7))
        layers.append(
            Drawable(style, matrix, victim.center + offset, base, accent, OCCLUDER, False)
        )

    return Scene(
        size=size,
        background=background(rng, size),
        layers=layers,
        target=target,
        target_ids=target_ids,
        part_of=part_of,
        n_objects=n_objects,
        red_box=multi,
    )
