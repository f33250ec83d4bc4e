"""The three files of a free-form answer (``partonomy predict``): text, spans with masks, overlay.

The answer is taken structurally (:class:`AnswerLike`: ``text``, ``spans`` with ``start`` /
``end`` / ``text``, one mask per span), so this module needs no model or evaluation code;
:class:`partonomy.eval.protocol.FreeFormAnswer` fits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from partonomy.viz.overlay import save_overlay


class SpanLike(Protocol):
    """A part span of an answer: character offsets into its text (end exclusive) and the text."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def text(self) -> str: ...


class AnswerLike(Protocol):
    """An answer text, its part spans in text order and one bool ``(H, W)`` mask per span."""

    @property
    def text(self) -> str: ...
    @property
    def spans(self) -> Sequence[SpanLike]: ...
    @property
    def masks(self) -> Sequence[np.ndarray]: ...


ANSWER_FILE = "answer.txt"
SPANS_FILE = "spans.json"
OVERLAY_FILE = "overlay.png"


def write_answer(
    out: str | Path,
    image: np.ndarray,
    question: str,
    answer: AnswerLike,
    *,
    highlight: Sequence[str] | None = None,
    image_path: str | None = None,
) -> dict[str, Path]:
    """Write a free-form answer as ``partonomy predict`` does, each file atomically.

    Files in ``out`` (created if needed):

    * ``answer.txt``: the answer text and a newline.
    * ``spans.json``: ``{"image", "question", "answer", "highlight", "spans": [{"start", "end",
      "text", "area", "mask"}]}``; offsets are characters of ``answer`` (end exclusive), ``mask``
      a COCO RLE of the ``(H, W)`` image and ``area`` its pixel count.
    * ``overlay.png``: :func:`overlay_masks` with each span's text as its label, enlarged for
      display when the image's short side is under :data:`MIN_DISPLAY_SIDE` pixels.

    Returns:
        ``{"answer": path, "spans": path, "overlay": path}``.
    """
    from partonomy.io import masks as mask_io
    from partonomy.io.atomic import atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"answer": out / ANSWER_FILE, "spans": out / SPANS_FILE, "overlay": out / OVERLAY_FILE}
    atomic_write_text(paths["answer"], answer.text + "\n")
    record = {
        "image": image_path,
        "question": question,
        "answer": answer.text,
        "highlight": None if highlight is None else list(highlight),
        "spans": [
            {
                "start": span.start,
                "end": span.end,
                "text": span.text,
                "area": int(np.count_nonzero(mask)),
                "mask": mask_io.encode(mask),
            }
            for span, mask in zip(answer.spans, answer.masks, strict=True)
        ],
    }
    atomic_write_json(paths["spans"], record)
    save_overlay(paths["overlay"], image, answer.masks, [s.text for s in answer.spans])
    return paths
