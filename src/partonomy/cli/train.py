"""``partonomy train CONFIG [key.sub=value ...]``: run the training recipe of any family.

Examples::

    partonomy train configs/tiny_synth.yaml run_dir=runs/tiny max_steps=50
    partonomy train configs/plum_stage2_13b.yaml resume=auto          # continue a stopped run
    torchrun --nproc_per_node 8 -m partonomy train configs/plum_stage1_13b.yaml
"""

from __future__ import annotations

import logging

import click


@click.command(name="train")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Load and validate the config, print it, and stop.")
@click.option("-v", "--verbose", is_flag=True, help="Log every trainable parameter name.")
def command(config: str, overrides: tuple[str, ...], dry_run: bool, verbose: bool) -> None:
    """Train a model (PLUM, LISA, GLaMM, PixelLM or SegLLM: CONFIG's family) with the recipe
    described by CONFIG (a YAML file, e.g. under configs/).

    OVERRIDES are key.sub=value pairs (values parsed as YAML), e.g. max_steps=10 data.limit=8.
    """
    from partonomy.training.config import dump_train_config, load_train_config

    cfg = load_train_config(config, list(overrides))
    if dry_run:
        click.echo(dump_train_config(cfg), nl=False)
        return
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from partonomy.training.recipe import run_training

    result = run_training(cfg)
    if result.records:
        last = result.records[-1]
        click.echo(
            f"done: {result.steps} steps in {result.seconds:.1f}s, last loss {last['total']:.4f}; "
            f"model in {result.final_checkpoint}"
        )
