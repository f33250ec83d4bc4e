"""The self-contained HTML evaluation report: typed content in, one HTML string out.

:func:`render_html` renders a :class:`ReportData` with the jinja2 template
``templates/report.html.j2`` (autoescaped). Everything is inline: CSS and the small script are in
the template, charts are SVG strings (:mod:`partonomy.viz.charts`) and images are PNGs as
``data:`` URIs, so the file opens offline and fetches nothing. Gathering the content from
``partonomy eval`` run directories is :mod:`partonomy.eval.html_report`'s job (viz sits below
eval and does not read scores itself).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Table:
    """A table of strings. ``headers[0]`` heads the row labels; each row is
    ``[label, cell, ...]`` with ``len(headers)`` entries."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass(frozen=True)
class Chart:
    """A chart's section heading and its ``<svg>`` markup (trusted: made by viz.charts)."""

    title: str
    svg: str
    note: str = ""


@dataclass(frozen=True)
class PartIoU:
    """One correct part of a gallery question: its name, colour (``#rrggbb``, the mask's) and
    IoU (None: the model gave no mask for it)."""

    part: str
    colour: str
    iou: float | None


@dataclass(frozen=True)
class GalleryItem:
    """One question of the best / worst gallery.

    Attributes:
        truth_png, predicted_png: the image with the ground-truth / predicted masks overlaid
            (PNG bytes, same size, same colour per part); None when there is nothing to draw.
        chosen: the text of the choice the model picked (None: no text scores).
        correct: the text of the correct choice.
        is_correct: whether ``chosen`` is the correct choice (None: no text scores).
        giou: the question's gIoU (mean IoU of its scored parts), or None.
        masks_scored: the run has masks (so ``parts`` carry IoUs).
        parts: the correct answer's parts, in mask-colour order.
    """

    question_id: str
    question_type: str
    question: str
    truth_png: bytes | None
    predicted_png: bytes | None
    chosen: str | None
    correct: str
    is_correct: bool | None
    giou: float | None
    masks_scored: bool = False
    parts: list[PartIoU] = field(default_factory=list)


@dataclass(frozen=True)
class RunSection:
    """One run: its name, directory, gallery, config and version, and notes on what is missing."""

    name: str
    path: str
    version: str
    config: dict[str, Any]
    best: list[GalleryItem] = field(default_factory=list)
    worst: list[GalleryItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, in page order: tables, charts, then one section per run."""

    title: str
    generated: str
    tables: list[Table]
    charts: list[Chart]
    runs: list[RunSection]
    notes: list[str] = field(default_factory=list)


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(data: ReportData) -> str:
    """The report as one HTML document (UTF-8 text; nothing external is referenced)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("partonomy.viz", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data_uri"] = data_uri
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f}"
    return env.get_template("report.html.j2").render(data=data)
