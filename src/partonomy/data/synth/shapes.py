"""Vectorised shape and texture primitives in a part's own (local) coordinate frame.

Every part, occluder and clutter blob is drawn the same way: an affine map sends the local square
``(u, v) in [-1, 1]^2`` (``u`` to the right, ``v`` downwards, like image axes) onto the image, and
each pixel centre is mapped back to ``(u, v)``. A *shape* is a predicate on ``(u, v)`` (inside or
not), a *texture* a value in ``[0, 1]`` that blends the part's base colour (0) into its accent
colour (1). Because textures live in local coordinates they turn, stretch and flip with the part,
so "the striped trapezoid" stays recognisable under any pose.

All functions take ``float32`` arrays of one broadcastable shape (typically ``(h, 1)`` and
``(1, w)`` or ``(h, w)``) and return ``bool`` (shapes) or ``float32`` (textures) arrays of the
broadcast shape. None of them allocate more than a few temporaries of that shape.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import numpy as np

Array = np.ndarray
ShapeFn = Callable[[Array, Array], Array]
TextureFn = Callable[[Array, Array, float], Array]


# ----------------------------------------------------------------------------- shapes


def _ellipse(u: Array, v: Array) -> Array:
    return u * u + v * v <= 1.0


def _rect(u: Array, v: Array) -> Array:
    return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)


def _roundrect(u: Array, v: Array) -> Array:
    # Corner radius 0.4 of the half-size; corners become elliptic when the part is stretched.
    du = np.maximum(np.abs(u) - 0.6, 0.0)
    dv = np.maximum(np.abs(v) - 0.6, 0.0)
    return _rect(u, v) & (du * du + dv * dv <= 0.16)


def _capsule(u: Array, v: Array) -> Array:
    # A stadium along u: a rectangle with elliptic caps taking 30 % of the half-length each.
    cap = (np.abs(u) - 0.7) / 0.3
    return (np.abs(v) <= 1.0) & ((np.abs(u) <= 0.7) | (cap * cap + v * v <= 1.0))


def _triangle(u: Array, v: Array) -> Array:
    # Apex at the top centre (0, -1), base along v = 1.
    return (v <= 1.0) & (np.abs(u) <= (v + 1.0) * 0.5)


def _trapezoid(u: Array, v: Array) -> Array:
    # Half as wide at the top (v = -1) as at the bottom (v = 1).
    return (np.abs(v) <= 1.0) & (np.abs(u) <= 0.5 + 0.25 * (v + 1.0))


def _diamond(u: Array, v: Array) -> Array:
    return np.abs(u) + np.abs(v) <= 1.0


def _ring(u: Array, v: Array) -> Array:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.3)


def _dome(u: Array, v: Array) -> Array:
    # Half an ellipse standing on its flat side (v = 1), top at v = -1.
    w = (v - 1.0) * 0.5
    return (v <= 1.0) & (u * u + w * w <= 1.0)


def _star(u: Array, v: Array) -> Array:
    # Five rounded blades around a hub (a propeller or a rotor seen from above).
    theta = np.arctan2(v, u)
    r = np.sqrt(u * u + v * v)
    lobe = 0.5 * (1.0 + np.cos(5.0 * theta))
    return r <= 0.3 + 0.7 * lobe * lobe


def _cross(u: Array, v: Array) -> Array:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 1.0)) | ((au <= 1.0) & (av <= 0.3))


def _crescent(u: Array, v: Array) -> Array:
    # A disc with a bite taken out of its right side (a "C" opening towards +u).
    bite = (u - 0.55) ** 2 + v * v
    return (u * u + v * v <= 1.0) & (bite >= 0.42)


def _hexagon(u: Array, v: Array) -> Array:
    au, av = np.abs(u), np.abs(v)
    return (av <= 0.87) & (au + 0.577 * av <= 1.0)


def _chevron(u: Array, v: Array) -> Array:
    # An arrowhead pointing towards +u with a notched tail.
    av = np.abs(v)
    return (av <= 1.0) & (u <= 1.0 - av) & (u >= -0.4 - av * 0.6)


def _hollow_triangle(u: Array, v: Array) -> Array:
    # A triangle outline (bicycle-like frame): the outer triangle minus a smaller inner one.
    outer = _triangle(u, v)
    inner = _triangle(u * 1.9, (v - 0.3) * 1.9 + 0.15)
    return outer & ~inner


def _comb(u: Array, v: Array) -> Array:
    # A bar along the top with five teeth hanging down (tines, a rake head).
    frac = (u + 1.0) * 2.5 % 1.0
    tooth = np.abs(frac - 0.5) <= 0.22
    return _rect(u, v) & ((v <= -0.5) | tooth)


def _serrated(u: Array, v: Array) -> Array:
    # A strip whose lower edge is a saw-tooth line (saw teeth).
    frac = (u + 1.0) * 4.0 % 1.0
    edge = 1.0 - 1.6 * np.abs(frac - 0.5) * 2.0
    return _rect(u, v) & (v <= np.maximum(edge, -0.6))


def _hook(u: Array, v: Array) -> Array:
    # The right half of a ring (a handle loop, a hook).
    return _ring(u * 0.5 + 0.5, v) & (u >= -1.0)


SHAPES: MappingProxyType[str, ShapeFn] = MappingProxyType(
    {
        "ellipse": _ellipse,
        "rect": _rect,
        "roundrect": _roundrect,
        "capsule": _capsule,
        "triangle": _triangle,
        "trapezoid": _trapezoid,
        "diamond": _diamond,
        "ring": _ring,
        "dome": _dome,
        "star": _star,
        "cross": _cross,
        "crescent": _crescent,
        "hexagon": _hexagon,
        "chevron": _chevron,
        "hollow_triangle": _hollow_triangle,
        "comb": _comb,
        "serrated": _serrated,
        "hook": _hook,
    }
)
"""Shape name -> predicate ``(u, v) -> bool array`` on the local square ``[-1, 1]^2``."""


# ----------------------------------------------------------------------------- textures
# ``freq`` is the number of texture periods across the local square (so it scales with the part).


def _solid(u: Array, v: Array, freq: float) -> Array:
    return np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)


def _bands(x: Array, freq: float) -> Array:
    return (np.floor((x + 1.0) * (0.5 * freq)) % 2.0).astype(np.float32)


def _stripes_u(u: Array, v: Array, freq: float) -> Array:
    # Bands that alternate along u (they look vertical on an unrotated part).
    return np.broadcast_to(_bands(u, freq), np.broadcast_shapes(u.shape, v.shape))


def _stripes_v(u: Array, v: Array, freq: float) -> Array:
    return np.broadcast_to(_bands(v, freq), np.broadcast_shapes(u.shape, v.shape))


def _diagonal(u: Array, v: Array, freq: float) -> Array:
    return _bands((u + v) * 0.7, freq)


def _checker(u: Array, v: Array, freq: float) -> Array:
    return (_bands(u, freq) + _bands(v, freq)) % 2.0


def _dots(u: Array, v: Array, freq: float) -> Array:
    fu = (u + 1.0) * (0.5 * freq) % 1.0 - 0.5
    fv = (v + 1.0) * (0.5 * freq) % 1.0 - 0.5
    return (fu * fu + fv * fv <= 0.09).astype(np.float32)


def _rings(u: Array, v: Array, freq: float) -> Array:
    return _bands(np.sqrt(u * u + v * v) * 2.0 - 1.0, freq)


def _spokes(u: Array, v: Array, freq: float) -> Array:
    theta = np.arctan2(v, u)
    return (np.floor((theta / np.pi + 1.0) * freq) % 2.0).astype(np.float32)


def _grid(u: Array, v: Array, freq: float) -> Array:
    fu = (u + 1.0) * (0.5 * freq) % 1.0
    fv = (v + 1.0) * (0.5 * freq) % 1.0
    return ((fu < 0.28) | (fv < 0.28)).astype(np.float32)


def _gradient(u: Array, v: Array, freq: float) -> Array:
    ramp = np.clip((u + 1.0) * 0.5, 0.0, 1.0).astype(np.float32)
    return np.broadcast_to(ramp, np.broadcast_shapes(u.shape, v.shape))


def _rim(u: Array, v: Array, freq: float) -> Array:
    # An accent border band around a plain core (a frame, a tyre, a lid's lip).
    return (np.maximum(np.abs(u), np.abs(v)) >= 0.62).astype(np.float32)


def _zigzag(u: Array, v: Array, freq: float) -> Array:
    tri = np.abs((u + 1.0) * freq % 2.0 - 1.0)
    return _bands(v + 0.35 * tri, freq)


def _spot(u: Array, v: Array, freq: float) -> Array:
    # One accent disc in the middle (a lens, a hub cap).
    return (u * u + v * v <= 0.2).astype(np.float32)


def _speckle(u: Array, v: Array, freq: float) -> Array:
    # A hash of the local coordinates: deterministic "noise" for occluders and clutter.
    h = np.sin(
        np.floor((u + 1.0) * freq * 4.0) * 12.9898 + np.floor((v + 1.0) * freq * 4.0) * 78.233
    )
    return ((h * 43758.5453) % 1.0 > 0.55).astype(np.float32)


TEXTURES: MappingProxyType[str, TextureFn] = MappingProxyType(
    {
        "solid": _solid,
        "stripes_u": _stripes_u,
        "stripes_v": _stripes_v,
        "diagonal": _diagonal,
        "checker": _checker,
        "dots": _dots,
        "rings": _rings,
        "spokes": _spokes,
        "grid": _grid,
        "gradient": _gradient,
        "rim": _rim,
        "zigzag": _zigzag,
        "spot": _spot,
        "speckle": _speckle,
    }
)
"""Texture name -> ``(u, v, freq) -> float32 array in [0, 1]`` (0 = base colour, 1 = accent)."""


def local_grid(
    matrix: Array, center: Array, height: int, width: int
) -> tuple[tuple[int, int, int, int], Array, Array]:
    """The pixel window covering a part and the local coordinates of its pixel centres.

    Args:
        matrix: ``(2, 2)`` float affine map from local ``(u, v)`` to image ``(x, y)`` offsets.
        center: ``(2,)`` image position ``(x, y)`` of the local origin, in pixels.
        height: image height (only used to report the window; the window is NOT clipped).
        width: image width.

    Returns:
        ``((y0, y1, x0, x1), u, v)``: the unclipped integer window (may extend past the image or
        be empty) and ``float32`` arrays ``u``, ``v`` of shape ``(y1 - y0, x1 - x0)``. The window is
        unclipped so that the caller can count the part's full area, cut-off pixels included.
    """
    del height, width  # the window is deliberately not clipped
    corners = matrix @ np.array([[-1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]]) + center[:, None]
    x0, y0 = np.floor(corners.min(axis=1)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=1)).astype(int)
    inv = np.linalg.inv(matrix)
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - center[0])[None, :]
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - center[1])[:, None]
    u = (inv[0, 0] * xs + inv[0, 1] * ys).astype(np.float32)
    v = (inv[1, 0] * xs + inv[1, 1] * ys).astype(np.float32)
    return (int(y0), int(y1), int(x0), int(x1)), u, v
