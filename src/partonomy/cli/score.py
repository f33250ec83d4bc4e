"""``partonomy score [--task TASK] ANNOTATIONS PREDICTIONS.jsonl --out results.json``.

The default task, ``partonomy``, calls :func:`partonomy.eval.scoring.score_files` and prints the
paper's Tables 2 and 3 (:func:`partonomy.eval.report.render_tables`); the contract is
``docs/scoring.md``. Any other task (``partonomy ls tasks``) calls
:func:`partonomy.tasks.scoring.score_task_files` on its official files (``docs/tasks.md``).
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


def task_options(func: F) -> F:
    """``--task``, ``--split``, ``--rule`` (shared with ``partonomy eval``)."""
    func = click.option(
        "--rule",
        type=click.Choice(("official", "original")),
        default="official",
        show_default=True,
        help="gqa/pope: 'original' scores as the original PLUM script did (docs/tasks.md).",
    )(func)
    func = click.option(
        "--split",
        "splits",
        multiple=True,
        help="Split(s) of the task to read (repeatable; default: the task's, e.g. val).",
    )(func)
    func = click.option(
        "--task",
        default="partonomy",
        show_default=True,
        help="What to evaluate (see 'partonomy ls tasks').",
    )(func)
    return func


def build_task_options(
    task: str,
    splits: tuple[str, ...],
    rule: str,
    missing: str,
    matching: str,
    limit: int | None,
    image_root: Path | None,
) -> Any:
    """The :class:`~partonomy.tasks.base.TaskOptions` of a non-partonomy task (checks flags that
    only the partonomy task takes)."""
    from partonomy.errors import ConfigError
    from partonomy.tasks.base import TaskOptions

    if matching != DEFAULT_MATCHING:
        raise ConfigError(f"--matching applies to the partonomy task only, not {task!r}")
    return TaskOptions(
        splits=splits or None,
        image_root=None if image_root is None else str(image_root),
        limit=limit,
        missing=missing,
        rule=rule,
    )


def check_partonomy_flags(splits: tuple[str, ...], rule: str) -> None:
    from partonomy.errors import ConfigError

    if splits:
        raise ConfigError("--split does not apply to the partonomy task: the QA file is the split")
    if rule != "official":
        raise ConfigError("--rule applies to the gqa and pope tasks only")


@click.command(name="score")
@click.argument("qa_path", metavar="ANNOTATIONS", type=click.Path(path_type=Path))
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
@task_options
@click.option(
    "--limit", type=click.IntRange(min=0), default=None, help="Only the first N questions (tasks)."
)
@click.option(
    "--image-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the task's images are (tasks whose sizes come from image headers).",
)
def command(
    qa_path: Path,
    predictions_path: Path,
    out_path: Path,
    matching: str,
    missing: str,
    resize_mismatched: bool,
    method: str,
    task: str,
    splits: tuple[str, ...],
    rule: str,
    limit: int | None,
    image_root: Path | None,
) -> None:
    """Score PREDICTIONS.jsonl against ANNOTATIONS (QA.json, or the task's official files) and
    write results.json."""
    if task != "partonomy":
        from partonomy.tasks.harness import get_task
        from partonomy.tasks.report import render_task_results
        from partonomy.tasks.scoring import score_task_files

        spec = get_task(task)
        options = build_task_options(task, splits, rule, missing, matching, limit, image_root)
        results = score_task_files(
            spec, qa_path, predictions_path, out_path, options, progress=True
        )
        click.echo(render_task_results(results, method))
        click.echo(f"wrote {out_path}")
        return
    check_partonomy_flags(splits, rule)
    if limit is not None or image_root is not None:
        from partonomy.errors import ConfigError

        raise ConfigError("--limit and --image-root of `partonomy score` apply to tasks only")
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
