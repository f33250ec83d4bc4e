"""Shape and texture primitives, checked against hand-computed pixel counts and values."""

from __future__ import annotations

import numpy as np
import pytest

from partonomy.data.synth.scene import _rot
from partonomy.data.synth.shapes import SHAPES, TEXTURES, local_grid
from partonomy.data.synth.styles import PartStyle


def test_local_grid_of_an_axis_aligned_square() -> None:
    # Half-size 4 around (10, 6): pixel centres 6.5 .. 13.5 map to u = -0.875 .. 0.875.
    (y0, y1, x0, x1), u, v = local_grid(np.diag([4.0, 4.0]), np.array([10.0, 6.0]), 32, 32)
    assert (y0, y1, x0, x1) == (2, 10, 6, 14)
    assert u.shape == v.shape == (8, 8)
    np.testing.assert_allclose(u[0], np.arange(-0.875, 1.0, 0.25))
    np.testing.assert_allclose(v[:, 0], np.arange(-0.875, 1.0, 0.25))
    assert SHAPES["rect"](u, v).sum() == 64


def test_window_is_not_clipped_so_cut_off_pixels_can_be_counted() -> None:
    (y0, y1, x0, x1), u, v = local_grid(np.diag([4.0, 4.0]), np.array([1.0, 1.0]), 8, 8)
    assert (y0, y1, x0, x1) == (-3, 5, -3, 5)
    assert SHAPES["rect"](u, v).sum() == 64


def test_ellipse_and_ring_areas() -> None:
    radius = 40.0
    _, u, v = local_grid(np.diag([radius, radius]), np.array([50.0, 50.0]), 100, 100)
    disc = SHAPES["ellipse"](u, v).sum()
    assert disc == pytest.approx(np.pi * radius**2, rel=0.01)
    ring = SHAPES["ring"](u, v).sum()  # outer radius 1, inner radius sqrt(0.3)
    assert ring == pytest.approx(np.pi * radius**2 * 0.7, rel=0.02)
    assert not SHAPES["ring"](np.float32([0.0]), np.float32([0.0]))[0]  # the hole


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_fills_a_sensible_part_of_its_square(name: str) -> None:
    _, u, v = local_grid(np.diag([30.0, 30.0]), np.array([30.0, 30.0]), 60, 60)
    inside = np.broadcast_to(SHAPES[name](u, v), u.shape)
    fill = inside.mean()
    assert 0.15 < fill <= 1.0, (name, fill)
    assert (fill == 1.0) == (name == "rect")  # only the rectangle fills its whole square


@pytest.mark.parametrize("name", sorted(TEXTURES))
def test_textures_lie_in_unit_interval(name: str) -> None:
    _, u, v = local_grid(np.diag([20.0, 12.0]), np.array([20.0, 12.0]), 40, 24)
    t = np.broadcast_to(TEXTURES[name](u, v, 3.0), u.shape)
    assert t.dtype == np.float32
    assert t.min() >= 0.0 and t.max() <= 1.0


def test_stripes_follow_the_local_axes() -> None:
    u = np.float32([-0.9, -0.1, 0.1, 0.9])
    v = np.zeros(4, dtype=np.float32)
    # freq 2: one band over u < 0 and one over u >= 0.
    np.testing.assert_array_equal(TEXTURES["stripes_u"](u, v, 2.0), [0, 0, 1, 1])
    np.testing.assert_array_equal(TEXTURES["stripes_v"](u, v, 2.0), [1, 1, 1, 1])
    np.testing.assert_array_equal(TEXTURES["solid"](u, v, 2.0), [0, 0, 0, 0])


def test_rotation_is_clockwise_on_screen() -> None:
    # Image y points down, so +90 degrees turns "up" (0, -1) into "right" (1, 0).
    np.testing.assert_allclose(_rot(90) @ np.array([0.0, -1.0]), [1.0, 0.0], atol=1e-12)


def test_part_style_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown shape"):
        PartStyle("blob", "solid")
    with pytest.raises(ValueError, match="unknown texture"):
        PartStyle("rect", "plaid")
