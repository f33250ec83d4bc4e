"""``partonomy quickstart [--model plum|lisa|glamm|pixellm|all] [--out DIR]``: Synth world -> QA -> train
a tiny model -> evaluate.

The main job of the README: everything on CPU, in minutes, ending with the paper's tables for the
trained model(s) beside the random, whole-object and oracle baselines (see docs/quickstart.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click


@click.command(name="quickstart")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/quickstart"),
    show_default=True,
    help="Output directory (an existing run there is continued).",
)
@click.option(
    "--model",
    default="plum",
    show_default=True,
    help="Family to train: plum, lisa, glamm, pixellm, segllm, or all (one table row each).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Training config (default: configs/tiny_synth.yaml, or configs/<model>_tiny_synth.yaml).",
)
@click.option("--n-images", type=click.IntRange(min=10), default=None, help="Synth images.")
@click.option("--size", type=click.IntRange(min=16), default=None, help="Image side (px).")
@click.option("--seed", type=int, default=None, help="Seed of world, questions and split.")
@click.option("--eval-limit", type=click.IntRange(min=1), default=None, help="Val questions.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override of the training config (e.g. --set max_steps=100); repeatable. "
    "--set backbone=NAME picks a backbone preset instead (configs/<model>_<NAME>_tiny_synth.yaml, "
    "e.g. qwen2_5_vl: a tiny Qwen2.5-VL-shaped LMM with a tiny SAM 2).",
)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def command(
    out: Path,
    model: str,
    config_path: Path | None,
    n_images: int | None,
    size: int | None,
    seed: int | None,
    eval_limit: int | None,
    overrides: tuple[str, ...],
    no_progress: bool,
) -> None:
    """Run the whole pipeline on Partonomy-Synth and print Tables 2 and 3."""
    from partonomy.training.quickstart import QuickstartConfig, run_quickstart, take_backbone

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    backbone, train_overrides = take_backbone(overrides)
    cfg = QuickstartConfig(
        model=model, backbone=backbone, train_overrides=train_overrides, eval_limit=eval_limit
    )
    if n_images is not None:
        cfg.n_images = n_images
    if size is not None:
        cfg.size = size
    if seed is not None:
        cfg.seed = seed
    result = run_quickstart(
        out, cfg, config_path=config_path, progress=not no_progress, echo=click.echo
    )
    failed = [name for name, floors in result.floors.items() if floors["passed"] is False]
    if failed:
        click.secho(
            f"did not reach the learning floors: {', '.join(failed)}", fg="yellow", err=True
        )
