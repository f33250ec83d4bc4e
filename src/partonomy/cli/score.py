"""``partonomy score QA.json PREDICTIONS.jsonl --out results.json``: compute the benchmark metrics.

Calls :func:`partonomy.eval.scoring.score_files`, then prints the paper's Tables 2 and 3
(:func:`partonomy.eval.report.render_tables`). The contract is ``docs/scoring.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from partonomy.eval.metrics.conventions import (
    DEFAULT_MATCHING,
    DEFAULT_MISSING,
    MATCHINGS,
    MISSING_POLICIES,
)

F = TypeVar("F", bound=Callable[..., Any])


def scoring_options(func: F) -> F:
    """The ``--matching`` and ``--missing`` options (shared with ``partonomy eval``)."""
    func = click.option(
        "--missing",
        type=click.Choice(MISSING_POLICIES),
        default=DEFAULT_MISSING,
        show_default=True,
        help="strict: a missing mask is empty and an unanswered question wrong; lenient: skip them.",
    )(func)
    func = click.option(
        "--matching",
        type=click.Choice(MATCHINGS),
        default=DEFAULT_MATCHING,
        show_default=True,
        help="How predicted masks are paired with ground-truth parts.",
    )(func)
    return func


@click.command(name="score")
@click.argument("qa_path", metavar="QA.json", type=click.Path(dir_okay=False, path_type=Path))
@click.argument(
    "predictions_path", metavar="PREDICTIONS.jsonl", type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write results.json (atomically).",
)
@scoring_options
@click.option(
    "--resize-mismatched",
    is_flag=True,
    help="Resize predicted masks whose size differs from the ground truth (with a warning) "
    "instead of failing.",
)
@click.option("--method", default="model", show_default=True, help="Row label of the tables.")
def command(
    qa_path: Path,
    predictions_path: Path,
    out_path: Path,
    matching: str,
    missing: str,
    resize_mismatched: bool,
    method: str,
) -> None:
    """Score PREDICTIONS.jsonl against QA.json, write results.json and print Tables 2 and 3."""
    from partonomy.eval.report import render_tables
    from partonomy.eval.scoring import score_files

    results = score_files(
        qa_path,
        predictions_path,
        out_path,
        matching=matching,
        missing=missing,
        resize_mismatched=resize_mismatched,
        progress=True,
    )
    click.echo(render_tables(results, method=method))
    overall = results["overall"]
    click.echo(
        f"{overall['n_questions']} questions, {overall['n_unanswered']} unanswered, "
        f"{overall['n_ties']} tied, {overall['n_masks']} masks scored, "
        f"{overall['n_missing_masks']} missing; wrote {out_path}"
    )
