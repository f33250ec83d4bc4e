"""The demo's pure logic: upload checks by content, question caps, answer colouring."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from partonomy.viz.demo_logic import (
    DemoLimits,
    InputError,
    answer_overlay,
    answer_segments,
    check_question,
    load_upload,
    parse_highlight,
    sniff_image_format,
    span_labels,
)
from partonomy.viz.palette import PALETTE, hex_colour


def _write(path: Path, fmt: str, size: tuple[int, int] = (20, 10)) -> Path:
    Image.new("RGB", size, (10, 200, 30)).save(path, format=fmt)
    return path


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepts_the_three_formats_by_content(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path / "upload.bin", fmt)  # the name says nothing
    image = load_upload(path, DemoLimits())
    assert image.shape == (10, 20, 3) and image.dtype == np.uint8
    assert sniff_image_format(path.read_bytes()[:16]) == fmt


def test_refuses_other_content_whatever_the_name(tmp_path: Path) -> None:
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    with pytest.raises(InputError, match="not a PNG, JPEG or WebP image"):
        load_upload(fake, DemoLimits())
    gif = _write(tmp_path / "anim.png", "GIF")
    with pytest.raises(InputError, match="checked by content"):
        load_upload(gif, DemoLimits())
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_upload(empty, DemoLimits())
    with pytest.raises(InputError, match="gone"):
        load_upload(tmp_path / "missing.png", DemoLimits())


def test_refuses_truncated_oversized_and_huge_images(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    torn = tmp_path / "torn.png"
    torn.write_bytes(buffer.getvalue()[:60])
    with pytest.raises(InputError, match="does not decode"):
        load_upload(torn, DemoLimits())
    big = _write(tmp_path / "big.png", "PNG", (200, 200))
    with pytest.raises(InputError, match="over the 0 MB limit"):
        load_upload(big, DemoLimits(max_upload_bytes=100))
    with pytest.raises(InputError, match="39,999-pixel limit"):
        load_upload(big, DemoLimits(max_pixels=39_999))


def test_question_and_highlight_caps() -> None:
    limits = DemoLimits(max_question_chars=10, max_highlight_chars=12)
    assert check_question("  wings? ", limits) == "wings?"
    with pytest.raises(InputError, match="type a question"):
        check_question("   ", limits)
    with pytest.raises(InputError, match="11 characters, over the 10-character limit"):
        check_question("x" * 11, limits)
    assert parse_highlight(" wing, ,tail ", limits) == ["wing", "tail"]
    assert parse_highlight("", limits) is None
    with pytest.raises(InputError, match="over the 12-character limit"):
        parse_highlight("wing, tail, mast", limits)
    with pytest.raises(ValueError, match="max_pixels"):
        DemoLimits(max_pixels=0)


@dataclass
class _Span:
    start: int
    end: int
    text: str


@dataclass
class _Answer:
    text: str
    spans: list[_Span]
    masks: list[np.ndarray]


def test_segments_cover_the_text_and_colour_each_span_like_its_mask() -> None:
    text = "It has a wing, a tail and a wing."
    spans = [_Span(9, 13, "wing"), _Span(17, 21, "tail"), _Span(28, 32, "wing")]
    assert span_labels(spans) == ["wing", "tail", "wing (2)"]
    segments, colours = answer_segments(text, spans)
    assert "".join(piece for piece, _ in segments) == text
    assert [label for _, label in segments if label] == ["wing", "tail", "wing (2)"]
    assert colours == {"wing": hex_colour(0), "tail": hex_colour(1), "wing (2)": hex_colour(2)}
    with pytest.raises(ValueError, match="out of order"):
        answer_segments(text, [spans[1], spans[0]])


def test_overlay_uses_the_span_colours() -> None:
    image = np.full((300, 300, 3), 0, np.uint8)
    masks = [np.zeros((300, 300), bool), np.zeros((300, 300), bool)]
    masks[0][200:280, 20:100] = True
    masks[1][200:280, 200:280] = True
    answer = _Answer("a wing and a tail", [_Span(2, 6, "wing"), _Span(13, 17, "tail")], masks)
    out = answer_overlay(image, answer)
    assert out.shape == (300, 300, 3)
    assert out[279, 60].tolist() == list(PALETTE[0])  # outline of the first span's mask
    assert out[279, 240].tolist() == list(PALETTE[1])
