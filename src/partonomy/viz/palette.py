"""The one colour palette of every overlay, legend, highlighted answer and chart.

A high-contrast qualitative palette without yellow (white label text stays readable on every
colour). The ``k``-th mask, part or span takes :func:`colour` ``(k)``, cycling after
``len(PALETTE)``.
"""

from __future__ import annotations

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
    """The RGB colour of the ``k``-th mask (``k >= 0``)."""
    return PALETTE[k % len(PALETTE)]


def hex_colour(k: int) -> str:
    """The ``k``-th colour as a CSS hex string, ``"#rrggbb"``."""
    r, g, b = colour(k)
    return f"#{r:02x}{g:02x}{b:02x}"
