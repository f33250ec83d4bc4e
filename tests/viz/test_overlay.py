"""The overlay PNG: masks blended in their palette colour, outlined and labelled; the rest untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from partonomy.viz.overlay import (
    display_scale,
    enlarge,
    overlay_masks,
    save_overlay,
)
from partonomy.viz.palette import PALETTE


def _image() -> np.ndarray:
    return np.full((60, 80, 3), 100, dtype=np.uint8)


def test_fill_outline_and_untouched_background() -> None:
    mask = np.zeros((60, 80), dtype=bool)
    mask[30:50, 40:70] = True
    out = overlay_masks(_image(), [mask], ["wing"], alpha=0.5, legend=False)
    assert out.shape == (60, 80, 3) and out.dtype == np.uint8
    # interior pixel, below the label: 0.5 * 100 + 0.5 * colour, rounded
    expected = np.rint(0.5 * 100 + 0.5 * np.array(PALETTE[0])).astype(np.uint8)
    assert out[45, 55].tolist() == expected.tolist()
    assert out[49, 55].tolist() == list(PALETTE[0])  # outline row
    assert out[5, 5].tolist() == [100, 100, 100]  # background untouched without a legend
    assert out[20, 10].tolist() == [100, 100, 100]
    # the label is drawn at the mask's top-left corner: white text on the mask colour
    patch = out[30:40, 40:60].reshape(-1, 3)
    assert (patch > 235).all(1).any()  # anti-aliased white glyph pixels


def test_two_masks_two_colours_and_legend() -> None:
    a = np.zeros((60, 80), dtype=bool)
    a[40:55, 5:30] = True
    b = np.zeros((60, 80), dtype=bool)  # empty: listed in the legend only
    out = overlay_masks(_image(), [a, b], ["left wing", "tail"], alpha=1.0)
    assert out[50, 20].tolist() == list(PALETTE[0])
    assert out[2:8, 2:11].reshape(-1, 3).tolist().count(list(PALETTE[0])) > 0  # swatch 1
    assert out[12:22, 2:11].reshape(-1, 3).tolist().count(list(PALETTE[1])) > 0  # swatch 2
    assert out[58, 78].tolist() == [100, 100, 100]


def test_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        overlay_masks(_image(), [np.zeros((10, 10), bool)], ["x"])
    with pytest.raises(ValueError, match="labels"):
        overlay_masks(_image(), [np.zeros((60, 80), bool)], [])


def test_save_overlay_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "overlay.png"
    save_overlay(path, _image(), [np.ones((60, 80), bool)], ["body"], min_side=0)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (80, 60)


def test_small_images_are_enlarged_for_display(tmp_path: Path) -> None:
    assert (
        display_scale(60, 80) == 5 and display_scale(64, 64) == 4 and display_scale(512, 300) == 1
    )
    mask = np.zeros((60, 80), bool)
    mask[10:20, 30:50] = True
    path = tmp_path / "overlay.png"
    save_overlay(path, _image(), [mask], ["wing"])
    with Image.open(path) as img:
        big = np.asarray(img.convert("RGB"))
    assert big.shape == (300, 400, 3)
    # Nearest-neighbour: the enlarged overlay equals the overlay of the enlarged inputs.
    expected = overlay_masks(enlarge(_image(), 5), [enlarge(mask, 5)], ["wing"])
    assert np.array_equal(big, expected)
