"""The demo's model-independent logic: checking inputs and colouring an answer. No gradio here.

* Uploads are refused above a byte cap and unless their *content* is PNG, JPEG or WebP (magic
  bytes, then Pillow must decode the same format); a file name or extension proves nothing.
* Questions and highlight phrases are capped in characters.
* An answer's part spans become ``(text, label)`` segments for a highlighted-text view, each span's
  label coloured like its mask: span ``k`` (in text order) takes ``palette.colour(k)``, in the
  highlighted text, the overlay and its legend alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from partonomy.errors import PartonomyError
from partonomy.viz.answer_files import AnswerLike, SpanLike
from partonomy.viz.overlay import display_overlay
from partonomy.viz.palette import hex_colour

MB = 1024 * 1024
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
"""Pillow format names the demo accepts."""


class InputError(PartonomyError):
    """A request the demo refuses (bad upload, oversized question); the message is shown in the
    page and logged, and the app keeps serving."""


@dataclass(frozen=True)
class DemoLimits:
    """What one request may bring.

    Attributes:
        max_upload_bytes: largest accepted image file (default 20 MB).
        max_pixels: largest accepted image, width x height (guards against decompression bombs).
        max_question_chars: longest accepted question.
        max_highlight_chars: longest accepted "segment these phrases" text.
    """

    max_upload_bytes: int = 20 * MB
    max_pixels: int = 40_000_000
    max_question_chars: int = 1000
    max_highlight_chars: int = 500

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_question_chars", "max_highlight_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"DemoLimits.{name} must be at least 1, got {getattr(self, name)}")


def sniff_image_format(head: bytes) -> str | None:
    """The image format that a file's first bytes announce: ``"PNG"``, ``"JPEG"``, ``"WEBP"``,
    or None for anything else (at least 12 bytes are needed to recognise WebP)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def load_upload(path: str | Path, limits: DemoLimits) -> np.ndarray:
    """Check an uploaded file and decode it.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Raises:
        InputError: the file is missing, empty, larger than ``limits.max_upload_bytes``, not a
            PNG / JPEG / WebP by content, larger than ``limits.max_pixels``, or does not decode.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise InputError("the uploaded file is gone; upload the image again") from None
    if size == 0:
        raise InputError("the uploaded file is empty; upload a PNG, JPEG or WebP image")
    if size > limits.max_upload_bytes:
        raise InputError(
            f"the upload is {size / MB:.1f} MB, over the {limits.max_upload_bytes / MB:.0f} MB "
            "limit; upload a smaller image"
        )
    with open(path, "rb") as handle:
        announced = sniff_image_format(handle.read(16))
    if announced is None:
        raise InputError(
            "the upload is not a PNG, JPEG or WebP image (checked by content, not by name); "
            "upload one of those"
        )
    try:
        with Image.open(path) as img:
            if img.format != announced:
                raise InputError(
                    f"the upload starts like {announced} but decodes as {img.format}; "
                    "upload a PNG, JPEG or WebP image"
                )
            if img.width * img.height > limits.max_pixels:
                raise InputError(
                    f"the image is {img.width} x {img.height} pixels, over the "
                    f"{limits.max_pixels:,}-pixel limit; upload a smaller image"
                )
            img.load()
            rgb = img.convert("RGB")
    except InputError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(
            f"the {announced} image does not decode ({err}); upload it again"
        ) from None
    return np.asarray(rgb, dtype=np.uint8)


def check_question(text: str | None, limits: DemoLimits) -> str:
    """The question, stripped.

    Raises:
        InputError: empty, or longer than ``limits.max_question_chars``.
    """
    question = (text or "").strip()
    if not question:
        raise InputError("type a question about the image")
    if len(question) > limits.max_question_chars:
        raise InputError(
            f"the question is {len(question):,} characters, over the "
            f"{limits.max_question_chars:,}-character limit; shorten it"
        )
    return question


def parse_highlight(text: str | None, limits: DemoLimits) -> list[str] | None:
    """``"wing, tail"`` -> ``["wing", "tail"]``; None when the box is empty (use the tagger).

    Raises:
        InputError: longer than ``limits.max_highlight_chars``.
    """
    raw = (text or "").strip()
    if len(raw) > limits.max_highlight_chars:
        raise InputError(
            f"the phrases to segment are {len(raw):,} characters, over the "
            f"{limits.max_highlight_chars:,}-character limit"
        )
    phrases = [p.strip() for p in raw.split(",") if p.strip()]
    return phrases or None


def span_labels(spans: Sequence[SpanLike]) -> list[str]:
    """One distinct label per span: its text, with `` (2)``, `` (3)``... on repeats."""
    seen: dict[str, int] = {}
    labels = []
    for span in spans:
        seen[span.text] = seen.get(span.text, 0) + 1
        labels.append(span.text if seen[span.text] == 1 else f"{span.text} ({seen[span.text]})")
    return labels


def answer_segments(
    text: str, spans: Sequence[SpanLike]
) -> tuple[list[tuple[str, str | None]], dict[str, str]]:
    """The answer cut into ``(piece, label or None)`` segments, and ``label -> "#rrggbb"``.

    Spans must be in text order and not overlap (as :class:`AnswerLike` promises); the text
    between spans is kept with label None, so the pieces join back to ``text``.
    """
    labels = span_labels(spans)
    segments: list[tuple[str, str | None]] = []
    at = 0
    for span, label in zip(spans, labels, strict=True):
        if span.start < at or span.end < span.start or span.end > len(text):
            raise ValueError(f"span {span.start}:{span.end} is out of order or outside the text")
        if span.start > at:
            segments.append((text[at : span.start], None))
        segments.append((text[span.start : span.end], label))
        at = span.end
    if at < len(text):
        segments.append((text[at:], None))
    return segments, {label: hex_colour(k) for k, label in enumerate(labels)}


def answer_overlay(image: np.ndarray, answer: AnswerLike) -> np.ndarray:
    """The image with each span's mask in its colour, labelled and with a legend (enlarged for
    display when small; see :func:`partonomy.viz.overlay.display_overlay`)."""
    return display_overlay(image, list(answer.masks), span_labels(answer.spans))
