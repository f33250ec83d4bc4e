"""``partonomy ls [models|question-types|metrics|sources]``: print the registries."""

from __future__ import annotations

import click

from partonomy.registries import ALL


@click.command(name="ls")
@click.argument("what", required=False, type=click.Choice(sorted(ALL)))
def command(what: str | None) -> None:
    """List registered models, question types, metrics and data sources."""
    for name, registry in ALL.items():
        if what is not None and name != what:
            continue
        click.echo(f"{name}:")
        for entry in registry.names():
            click.echo(f"  {entry}")
