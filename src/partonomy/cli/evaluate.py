"""``partonomy eval --model NAME QA.json --out DIR``: run a model on the benchmark, resumably.

Calls :func:`partonomy.eval.harness.run_eval`, then prints the paper's Tables 2 and 3
(:func:`partonomy.eval.report.render_tables`). Semantics: ``docs/evaluation.md``.
"""

from __future__ import annotations

from pathlib import Path

import click

from partonomy.cli.score import scoring_options


@click.command(name="eval")
@click.argument("qa_file", metavar="QA.json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "-m", required=True, help="Model name (see 'partonomy ls models').")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory: config.json, predictions.jsonl, results.json.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Questions per model call.",
)
@click.option(
    "--limit", type=click.IntRange(min=0), default=None, help="Only the first N questions."
)
@click.option(
    "--model-opt",
    "model_opts",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option for the model builder (value parsed as YAML); repeatable.",
)
@scoring_options
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse ground-truth masks whose size differs from the image (default: resize, warn).",
)
@click.option(
    "--image-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Resolve relative image paths against this directory (default: the QA file's).",
)
@click.option("--overwrite", is_flag=True, help="Discard an earlier run in --out.")
@click.option("--method", default=None, help="Row label of the tables (default: the model name).")
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also draw the first N questions' masks beside the ground truth into OUT/examples.png.",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def command(
    qa_file: Path,
    model: str,
    out: Path,
    batch_size: int,
    limit: int | None,
    model_opts: tuple[str, ...],
    matching: str,
    missing: str,
    strict: bool,
    image_root: Path | None,
    overwrite: bool,
    method: str | None,
    examples: int,
    no_progress: bool,
) -> None:
    """Evaluate a model on QA.json; rerun the same command to resume an interrupted run."""
    from partonomy.eval.harness import EvalConfig, parse_model_options, run_eval
    from partonomy.eval.report import render_tables

    cfg = EvalConfig(
        model=model,
        qa_file=str(qa_file),
        out=str(out),
        model_options=parse_model_options(model_opts),
        batch_size=batch_size,
        limit=limit,
        matching=matching,
        missing=missing,
        strict=strict,
        image_root=None if image_root is None else str(image_root),
        overwrite=overwrite,
        progress=not no_progress,
    )
    outcome = run_eval(cfg)
    click.echo(render_tables(outcome.results, method=method or model))
    click.echo(
        f"{outcome.n_questions} questions: {outcome.n_resumed} resumed, "
        f"{outcome.n_computed} computed; wrote {outcome.out_dir / 'results.json'}"
    )
    if examples:
        from partonomy.eval.examples import write_examples
        from partonomy.io.predictions import load_predictions
        from partonomy.io.qa_pairs import load_qa_pairs

        sheet = write_examples(
            outcome.out_dir / "examples.png",
            load_qa_pairs(qa_file)[:limit],
            load_predictions(outcome.out_dir / "predictions.jsonl"),
            qa_file=qa_file,
            image_root=image_root,
            n=examples,
            title=f"ground truth | {method or model}",
        )
        click.echo(f"wrote {sheet}" if sheet else "no question with parts to draw")
