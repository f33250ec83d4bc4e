"""``partonomy data check ROOT [--config stage1|stage2|all] [--deep]``: the dataset doctor."""

from __future__ import annotations

import sys

import click

from partonomy.data.doctor import CONFIGS, check_tree


@click.group(name="data")
def command() -> None:
    """Inspect the datasets on disk."""


@command.command(name="check")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option(
    "--config",
    type=click.Choice(CONFIGS),
    default="all",
    show_default=True,
    help="Which training stage's datasets must be present.",
)
@click.option("--deep", is_flag=True, help="Parse and validate the big annotation files too.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def check(root: str, config: str, deep: bool, no_progress: bool) -> None:
    """Walk the seed README's dataset/ tree at ROOT and report found / missing / malformed.

    Exits with status 1 when a dataset CONFIG needs is missing or malformed.
    """
    report = check_tree(root, config, deep=deep, progress=not no_progress)
    click.echo(report.render())
    if not report.ok:
        sys.exit(1)
