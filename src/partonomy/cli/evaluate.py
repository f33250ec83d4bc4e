"""``partonomy eval [--task TASK] --model NAME DATA --out DIR``: run a model, resumably.

The default task, ``partonomy`` (DATA = a QA.json), calls :func:`partonomy.eval.harness.run_eval`
and prints the paper's Tables 2 and 3 (:func:`partonomy.eval.report.render_tables`); semantics:
``docs/evaluation.md``. Other tasks (``partonomy ls tasks``; DATA = their official files) call
:func:`partonomy.tasks.harness.run_task_eval` (``docs/tasks.md``). ``--num-processes N`` shards the
questions over N processes (one per GPU, launched through accelerate; see
:mod:`partonomy.eval.sharding`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from partonomy.cli.score import (
    build_task_options,
    check_partonomy_flags,
    scoring_options,
    task_options,
)
from partonomy.errors import ConfigError

if TYPE_CHECKING:
    from partonomy.eval.harness import EvalOutcome
    from partonomy.eval.sharding import Shard


@click.command(name="eval")
@click.argument("qa_file", metavar="DATA", type=click.Path(path_type=Path))
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
    default=None,
    help="Questions per model call (default: the model's own batch size: its --model-opt "
    "batch_size, 8 by default for the segmentation families and hf_vlm / vlm_sam3; 1 for "
    "models without one).",
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
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="The model's checkpoint directory: the same as --model-opt checkpoint=DIR (e.g. "
    "--model hf_vlm --checkpoint DIR, a local HF VLM).",
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
@click.option(
    "--num-processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Shard the questions over this many processes (one per GPU, through accelerate); "
    "results.json is identical to one process's.",
)
@task_options
def command(
    qa_file: Path,
    model: str,
    out: Path,
    batch_size: int | None,
    limit: int | None,
    model_opts: tuple[str, ...],
    checkpoint: Path | None,
    matching: str,
    missing: str,
    strict: bool,
    image_root: Path | None,
    overwrite: bool,
    method: str | None,
    examples: int,
    no_progress: bool,
    num_processes: int,
    task: str,
    splits: tuple[str, ...],
    rule: str,
) -> None:
    """Evaluate a model on DATA (a QA.json, or a task's files); rerun the same command to resume."""
    from partonomy.eval.harness import EvalConfig, run_eval
    from partonomy.eval.sharding import current_shard

    if num_processes > 1 and "WORLD_SIZE" not in os.environ:
        _launch(num_processes)
        return
    options = model_options(model_opts, checkpoint)
    shard = current_shard()
    if num_processes > 1 and shard.world != num_processes:
        raise ConfigError(
            f"--num-processes {num_processes}, but the launcher started {shard.world} process(es); "
            "drop --num-processes under torchrun / accelerate launch"
        )

    if task != "partonomy":
        _run_task(
            task,
            qa_file,
            model,
            out,
            batch_size,
            options,
            overwrite,
            no_progress,
            method,
            build_task_options(task, splits, rule, missing, matching, limit, image_root),
            strict=strict,
            examples=examples,
            shard=shard,
        )
        return
    check_partonomy_flags(splits, rule)
    from partonomy.eval.report import render_tables

    cfg = EvalConfig(
        model=model,
        qa_file=str(qa_file),
        out=str(out),
        model_options=options,
        batch_size=batch_size,
        limit=limit,
        matching=matching,
        missing=missing,
        strict=strict,
        image_root=None if image_root is None else str(image_root),
        overwrite=overwrite,
        progress=not no_progress,
    )
    outcome = run_eval(cfg, shard=shard)
    if not shard.is_main:
        return
    click.echo(render_tables(outcome.results, method=method or model))
    _summary(outcome)
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


def _run_task(
    task: str,
    data: Path,
    model: str,
    out: Path,
    batch_size: int | None,
    options: dict[str, Any],
    overwrite: bool,
    no_progress: bool,
    method: str | None,
    task_opts: object,
    *,
    strict: bool,
    examples: int,
    shard: Shard,
) -> None:
    from partonomy.tasks.harness import TaskEvalConfig, get_task, run_task_eval
    from partonomy.tasks.report import render_task_results

    if strict or examples:
        raise ConfigError("--strict and --examples apply to the partonomy task only")
    get_task(task)  # did-you-mean before anything else
    cfg = TaskEvalConfig(
        task=task,
        model=model,
        data=str(data),
        out=str(out),
        model_options=options,
        options=task_opts,  # type: ignore[arg-type]
        batch_size=batch_size,
        overwrite=overwrite,
        progress=not no_progress,
    )
    outcome = run_task_eval(cfg, shard=shard)
    if not shard.is_main:
        return
    click.echo(render_task_results(outcome.results, method or model))
    _summary(outcome)


def model_options(pairs: tuple[str, ...], checkpoint: Path | None) -> dict[str, Any]:
    """The model builder's options: ``--model-opt`` pairs, with ``--checkpoint DIR`` as the
    ``checkpoint`` option (one option, two spellings).

    Raises:
        ConfigError: a malformed pair, or the checkpoint given both ways.
    """
    from partonomy.eval.harness import parse_model_options

    options = parse_model_options(pairs)
    if checkpoint is not None:
        if "checkpoint" in options:
            raise ConfigError(
                "the checkpoint is given twice (--checkpoint and --model-opt checkpoint=); keep one"
            )
        options["checkpoint"] = str(checkpoint)
    return options


def _launch(num_processes: int) -> None:
    """Run this same command in ``num_processes`` processes (accelerate / torchrun) and exit
    with their status. The command line is this process's, minus ``--num-processes``."""
    import torch

    from partonomy.eval.sharding import launch_command

    argv = list(sys.argv[1:])
    if "eval" not in argv:
        raise ConfigError("--num-processes works from the `partonomy eval` command line only")
    argv = argv[argv.index("eval") :]
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--num-processes":
            skip = True
        elif not arg.startswith("--num-processes="):
            kept.append(arg)
    cmd = launch_command(num_processes, kept, gpus=torch.cuda.device_count())
    click.echo(f"launching {num_processes} processes: {' '.join(cmd)}", err=True)
    sys.exit(subprocess.run(cmd, check=False).returncode)


def _summary(outcome: EvalOutcome) -> None:
    click.echo(
        f"{outcome.n_questions} questions: {outcome.n_resumed} resumed, "
        f"{outcome.n_computed} computed; wrote {outcome.out_dir / 'results.json'}"
    )
    if outcome.n_computed and outcome.seconds > 0:
        click.echo(
            f"prediction: {outcome.seconds:.2f} s, "
            f"{outcome.n_computed / outcome.seconds:.2f} questions/s"
        )
