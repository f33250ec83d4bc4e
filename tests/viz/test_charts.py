"""Inline SVG charts: valid XML, one bar per value, labels escaped and wrapped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from partonomy.viz.charts import bar_chart, histogram_counts, wrap_label
from partonomy.viz.palette import hex_colour

SVG = "{http://www.w3.org/2000/svg}"


def test_grouped_bars_are_valid_svg_with_one_rect_per_value() -> None:
    svg = bar_chart("gIoU <by> type", ["a & b", "c"], {"run1": [0.5, None], "run2": [1.0, 0.25]})
    root = ET.fromstring(svg)  # well-formed, labels escaped
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 3  # the None value draws no bar
    assert {b.get("fill") for b in bars} == {hex_colour(0), hex_colour(1)}
    heights = sorted(float(b.get("height")) for b in bars)
    assert heights[2] == pytest.approx(4 * heights[0], rel=0.02)  # 1.0 vs 0.25 on one axis
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "gIoU <by> type" in texts and "a & b" in texts and "run2" in texts


def test_a_series_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="series 'r' has 1 values for 2 categories"):
        bar_chart("t", ["a", "b"], {"r": [0.1]})


def test_histogram_counts_close_the_last_bin() -> None:
    assert histogram_counts([0.0, 0.05, 0.5, 1.0, 1.5], [0.0, 0.5, 1.0]) == [2, 2]


def test_wrap_label() -> None:
    assert wrap_label("Intersection (label)", 14) == ["Intersection", "(label)"]
    assert wrap_label("short", 14) == ["short"]
    assert wrap_label("a very long label indeed here", 6) == ["a very", "long …"]
