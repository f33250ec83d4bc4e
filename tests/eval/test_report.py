"""Report tables: the paper's Table 2 / Table 3 layouts, checked against a snapshot."""

from __future__ import annotations

from partonomy.eval.report import NA, render_table2, render_table3, render_tables
from partonomy.eval.scoring import COUNT_KEYS, METRIC_KEYS


def m(**values: float | None) -> dict:
    out: dict = dict.fromkeys(METRIC_KEYS)
    out.update(dict.fromkeys(COUNT_KEYS, 0))
    out.update(values)
    return out


RESULTS = {
    "overall": m(accuracy=0.5, part_precision=0.8, part_recall=0.75, micro_giou=0.4,
                 macro_giou=0.45, object_accuracy=0.6),
    "by_type": {
        "identification": m(accuracy=0.6021, part_precision=0.866, part_recall=0.956,
                            micro_giou=0.145, macro_giou=0.274),
        "identification_with_label": m(accuracy=0.25, part_precision=1.0, part_recall=0.5),
        "whole_to_part": m(accuracy=0.709, part_precision=0.906, part_recall=0.959,
                           object_accuracy=0.593, micro_giou=0.154, macro_giou=0.275),
        "difference": m(accuracy=0.0, part_precision=None, part_recall=0.0, micro_giou=0.0,
                        macro_giou=0.0),
    },
    "config": {"matching": "paired", "missing": "strict"},
    "version": "0.1.0",
}  # fmt: skip

TABLE2 = """\
Table 2: segmentation, gIoU % (micro / macro); matching=paired, missing=strict

| method | Ident. | Ident. (label) | Intersection | Difference | Part2Whole | Whole2Part | Two-concept diff. | Overall |
|---|---|---|---|---|---|---|---|---|
| PLUM | 14.5 / 27.4 | – / – | – | – | – | 15.4 / 27.5 | 0.0 / 0.0 | 40.0 / 45.0 |"""

TABLE3 = """\
Table 3: text answer selection, % (P = part precision, R = part recall, A / PA = accuracy, OA = object accuracy); matching=paired, missing=strict

| method | Ident. P/R/A | Ident. (label) P/R/A | Intersection P/R/A | Difference P/R/A | Part2Whole P/R/PA/OA | Whole2Part P/R/PA/OA | Two-concept diff. P/R/A | Overall P/R/A |
|---|---|---|---|---|---|---|---|---|
| PLUM | 86.6/95.6/60.2 | 100.0/50.0/25.0 | – | – | – | 90.6/95.9/70.9/59.3 | –/0.0/0.0 | 80.0/75.0/50.0 |"""  # noqa: E501


def test_table2_snapshot():
    assert render_table2(RESULTS, method="PLUM") == TABLE2


def test_table3_snapshot():
    assert render_table3(RESULTS, method="PLUM") == TABLE3


def test_render_tables_joins_both():
    text = render_tables(RESULTS, method="PLUM")
    assert text == TABLE2 + "\n\n" + TABLE3 + "\n"


def test_minimal_results_show_the_five_paper_columns():
    results = {"overall": m(), "by_type": {}}
    table2 = render_table2(results).splitlines()
    assert table2[0] == "Table 2: segmentation, gIoU % (micro / macro)"
    assert table2[2] == (
        "| method | Ident. | Intersection | Difference | Part2Whole | Whole2Part | Overall |"
    )
    assert table2[4] == f"| model | {NA} | {NA} | {NA} | {NA} | {NA} | {NA} / {NA} |"
