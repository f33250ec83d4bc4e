"""Markdown tables in the paper's layouts, from a results dict (:mod:`partonomy.eval.scoring`).

* Table 2 (segmentation): gIoU in %, ``micro / macro``, per question type.
* Table 3 (text answer selection): ``P/R/A`` (part precision, part recall, accuracy) and, for
  Part2Whole / Whole2Part, ``P/R/PA/OA`` (PA = part accuracy, OA = object accuracy), in %.

Columns: the paper's five (Ident. = ``identification``, Intersection = ``positive``,
Difference = ``negative``, Part2Whole, Whole2Part) are always shown, ``–`` when the type is absent.
The ``X_with_label`` variants are *their own columns*, ``"<X> (label)"``, placed right after
``X`` and shown only when present: the variants ask different questions (the object is named or
not), and a pooled number cannot be rebuilt exactly from per-type results (micro rates need the
per-type denominators). The two-concept ``difference`` types, which the paper's tables leave
out, come after Whole2Part when present; ``Overall`` is last. A null metric prints ``–``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NA = "–"
"""What a null (not applicable) metric or an absent question type prints as (as in the paper)."""

_PAPER_COLUMNS = (
    ("identification", "Ident."),
    ("positive", "Intersection"),
    ("negative", "Difference"),
    ("part_to_whole", "Part2Whole"),
    ("whole_to_part", "Whole2Part"),
)
_EXTRA_COLUMNS = (("difference", "Two-concept diff."),)
_OBJECT_TYPES = ("part_to_whole", "whole_to_part")
_OVERALL = "overall"


def _columns(by_type: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, header)`` pairs; key is a question type or :data:`_OVERALL`."""
    cols: list[tuple[str, str]] = []
    for qtype, header in _PAPER_COLUMNS:
        cols.append((qtype, header))
        if f"{qtype}_with_label" in by_type:
            cols.append((f"{qtype}_with_label", f"{header} (label)"))
    for qtype, header in _EXTRA_COLUMNS:
        for key, head in ((qtype, header), (f"{qtype}_with_label", f"{header} (label)")):
            if key in by_type:
                cols.append((key, head))
    cols.append((_OVERALL, "Overall"))
    return cols


def _pct(value: float | None) -> str:
    return NA if value is None else f"{100 * value:.1f}"


TABLE2_TITLE = "Table 2: segmentation, gIoU % (micro / macro)"
TABLE3_TITLE = (
    "Table 3: text answer selection, % (P = part precision, R = part recall, "
    "A / PA = accuracy, OA = object accuracy)"
)


def layout_columns(by_types: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The tables' ``(key, header)`` columns for several runs at once: the layout of the union
    of their question types (see the module docstring); key ``"overall"`` is last."""
    merged: dict[str, Any] = {}
    for by_type in by_types:
        merged.update(by_type)
    return _columns(merged)


def metrics_for(results: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """``M`` of column ``key`` (a question type or ``"overall"``), None when the run lacks it."""
    if key == _OVERALL:
        return results.get(_OVERALL)  # type: ignore[no-any-return]
    return (results.get("by_type") or {}).get(key)  # type: ignore[no-any-return]


def giou_cell(m: Mapping[str, Any] | None) -> str:
    """Table 2's cell: ``"micro / macro"`` gIoU in %, or :data:`NA`."""
    return NA if m is None else f"{_pct(m['micro_giou'])} / {_pct(m['macro_giou'])}"


def is_object_type(key: str) -> bool:
    """Whether column ``key`` is Part2Whole / Whole2Part (with or without label)."""
    return key.removesuffix("_with_label") in _OBJECT_TYPES


def table3_header(key: str, header: str) -> str:
    """Table 3's column header: ``header`` and ``P/R/A`` (``P/R/PA/OA`` for object types)."""
    return f"{header} {'P/R/PA/OA' if is_object_type(key) else 'P/R/A'}"


def text_cell(m: Mapping[str, Any] | None, key: str) -> str:
    """Table 3's cell of column ``key``: ``P/R/A`` (``P/R/PA/OA``) in %, or :data:`NA`."""
    if m is None:
        return NA
    values = [m["part_precision"], m["part_recall"], m["accuracy"]]
    if is_object_type(key):
        values.append(m["object_accuracy"])
    return "/".join(_pct(v) for v in values)


def _table(title: str, headers: list[str], row: list[str], method: str) -> str:
    lines = [
        title,
        "",
        "| " + " | ".join(["method", *headers]) + " |",
        "|" + "---|" * (len(headers) + 1),
        "| " + " | ".join([method, *row]) + " |",
    ]
    return "\n".join(lines)


def render_table2(results: Mapping[str, Any], *, method: str = "model") -> str:
    """Table 2: ``micro / macro`` gIoU (%) per question type, one row for ``method``."""
    cols = _columns(results["by_type"])
    row = [giou_cell(metrics_for(results, key)) for key, _ in cols]
    return _table(
        TABLE2_TITLE + _caption(results),
        [h for _, h in cols],
        row,
        method,
    )


def render_table3(results: Mapping[str, Any], *, method: str = "model") -> str:
    """Table 3: ``P/R/A`` per type, ``P/R/PA/OA`` for the part-whole types (%)."""
    cols = _columns(results["by_type"])
    headers = [table3_header(key, header) for key, header in cols]
    row = [text_cell(metrics_for(results, key), key) for key, _ in cols]
    return _table(
        TABLE3_TITLE + _caption(results),
        headers,
        row,
        method,
    )


def _caption(results: Mapping[str, Any]) -> str:
    cfg = results.get("config") or {}
    if "matching" not in cfg:
        return ""
    return f"; matching={cfg['matching']}, missing={cfg['missing']}"


def render_tables(results: Mapping[str, Any], *, method: str = "model") -> str:
    """Markdown for Tables 2 and 3 (see the module docstring for the column layout).

    Args:
        results: a results dict from :func:`partonomy.eval.scoring.score` (or a loaded
            ``results.json``).
        method: the row label.

    Returns:
        Two markdown tables separated by a blank line, ending with a newline.
    """
    return (
        render_table2(results, method=method)
        + "\n\n"
        + render_table3(results, method=method)
        + "\n"
    )
