"""Small inline SVG charts for the HTML report: grouped bars, nothing fetched, nothing scripted.

Hand-written SVG rather than a plotting library: the report's charts are a handful of grouped bar
charts, an SVG string embeds in HTML as it is (crisp at any zoom, text selectable, no base64),
and it keeps the report free of a plotting dependency. Colours come from
:mod:`partonomy.viz.palette`: series ``k`` (a run) takes ``hex_colour(k)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from partonomy.viz.palette import hex_colour

WIDTH = 640
HEIGHT = 260
MARGIN_LEFT = 48
MARGIN_RIGHT = 12
MARGIN_TOP = 28
MARGIN_BOTTOM = 56
"""Chart geometry in SVG user units (the chart scales with its container)."""
CHAR_WIDTH = 6.2
"""Approximate width of one tick-label character (11 px sans-serif), for wrapping and legends."""


def wrap_label(label: str, max_chars: int, max_lines: int = 2) -> list[str]:
    """Split ``label`` at spaces into at most ``max_lines`` lines of about ``max_chars``; the
    last line takes the rest, cut with an ellipsis when it is still too long."""
    words = label.split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if len(candidate) <= max_chars or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    lines.append(current)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], " ".join(lines[max_lines - 1 :])]
    return [line if len(line) <= max_chars else line[: max_chars - 1] + "…" for line in lines]


def _fmt(value: float, percent: bool) -> str:
    return f"{100 * value:.1f}" if percent else f"{value:g}"


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    y_max: float | None = 1.0,
    percent: bool = True,
    y_label: str = "",
) -> str:
    """A grouped bar chart as an ``<svg>`` element string.

    Args:
        title: drawn at the top (escaped).
        categories: the x groups, in order (labels escaped, rotated when crowded).
        series: series name -> one value per category (None: no bar, a grey "–" is drawn).
            Series ``k`` is drawn in ``hex_colour(k)``; a legend names them when there are
            several.
        y_max: top of the y axis; None takes the largest value (at least 1e-9).
        percent: label the axis and the bar tooltips in % (values are fractions).
        y_label: the y axis title.

    Returns:
        An ``<svg role="img">`` string with a ``<title>`` per bar (hover shows the value).

    Raises:
        ValueError: a series whose length is not ``len(categories)``.
    """
    names = list(series)
    for name in names:
        if len(series[name]) != len(categories):
            raise ValueError(
                f"series {name!r} has {len(series[name])} values for {len(categories)} categories"
            )
    values = [v for name in names for v in series[name] if v is not None]
    top = y_max if y_max is not None else max([*values, 1e-9])
    top = top if top > 0 else 1.0
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="chart-title">'
        f"{escape(title)}</text>",
    ]
    for tick in range(5):  # y grid and labels
        frac = tick / 4
        y = MARGIN_TOP + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{WIDTH - MARGIN_RIGHT}" y2="{y:.1f}" '
            'class="grid"/>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{_fmt(top * frac, percent)}</text>"
        )
    if y_label:
        cy = MARGIN_TOP + plot_h / 2
        parts.append(
            f'<text x="12" y="{cy:.1f}" transform="rotate(-90 12 {cy:.1f})" '
            f'text-anchor="middle" class="tick">{escape(y_label)}</text>'
        )
    n_cat = max(len(categories), 1)
    group_w = plot_w / n_cat
    bar_w = group_w * 0.8 / max(len(names), 1)
    max_chars = max(4, int(group_w / CHAR_WIDTH))
    for c, category in enumerate(categories):
        x0 = MARGIN_LEFT + c * group_w + group_w * 0.1
        for k, name in enumerate(names):
            value = series[name][c]
            x = x0 + k * bar_w
            if value is None:
                parts.append(
                    f'<text x="{x + bar_w / 2:.1f}" y="{MARGIN_TOP + plot_h - 3:.1f}" '
                    f'text-anchor="middle" class="na">–</text>'
                )
                continue
            h = plot_h * min(max(value, 0.0), top) / top
            y = MARGIN_TOP + plot_h - h
            tip = f"{name} · {category}: {_fmt(value, percent)}{'%' if percent else ''}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{hex_colour(k)}"><title>{escape(tip)}</title></rect>'
            )
        cx = MARGIN_LEFT + (c + 0.5) * group_w
        for line, text in enumerate(wrap_label(category, max_chars)):
            ly = MARGIN_TOP + plot_h + 14 + 12 * line
            parts.append(
                f'<text x="{cx:.1f}" y="{ly:.1f}" text-anchor="middle" class="tick">'
                f"{escape(text)}</text>"
            )
    parts.append(
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP + plot_h}" x2="{WIDTH - MARGIN_RIGHT}" '
        f'y2="{MARGIN_TOP + plot_h}" class="axis"/>'
    )
    if len(names) > 1:
        x = MARGIN_LEFT
        for k, name in enumerate(names):
            parts.append(
                f'<rect x="{x:.0f}" y="{HEIGHT - 13}" width="10" height="10" '
                f'fill="{hex_colour(k)}"/>'
                f'<text x="{x + 14:.0f}" y="{HEIGHT - 4}" class="tick">{escape(name)}</text>'
            )
            x += 24 + CHAR_WIDTH * len(name)
    parts.append("</svg>")
    return "".join(parts)


def histogram_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts of ``values`` in the bins ``[edges[i], edges[i+1])``, the last bin closed.

    Values outside ``[edges[0], edges[-1]]`` are not counted.
    """
    counts = [0] * (len(edges) - 1)
    for v in values:
        for i in range(len(counts)):
            last = i == len(counts) - 1
            if edges[i] <= v < edges[i + 1] or (last and v == edges[-1]):
                counts[i] += 1
                break
    return counts
