"""``partonomy <command>``: a click group whose commands are imported only when used.

Each command lives in its own module under :mod:`partonomy.cli` as a click command named
``command``; it parses arguments and calls one library function. Errors the user can fix
(:class:`~partonomy.errors.PartonomyError`) are printed without a traceback, exit status 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from partonomy import __version__
from partonomy.errors import PartonomyError

COMMANDS: dict[str, str] = {
    "synth": "partonomy.cli.synth",
    "generate-qa": "partonomy.cli.qa",
    "split": "partonomy.cli.split",
    "convert": "partonomy.cli.convert",
    "convert-checkpoint": "partonomy.cli.convert_checkpoint",
    "score": "partonomy.cli.score",
    "eval": "partonomy.cli.evaluate",
    "build-descriptor": "partonomy.cli.build_descriptor",
    "data": "partonomy.cli.data",
    "train": "partonomy.cli.train",
    "predict": "partonomy.cli.predict",
    "quickstart": "partonomy.cli.quickstart",
    "ls": "partonomy.cli.ls",
    "report": "partonomy.cli.report",
    "demo": "partonomy.cli.demo",
    "cache-embeddings": "partonomy.cli.cache_embeddings",
}
"""Command name -> module holding a click command called ``command``."""


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, mod in COMMANDS.items() if importlib.util.find_spec(mod))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMANDS.get(cmd_name)
        if module_name is None or importlib.util.find_spec(module_name) is None:
            return None
        return importlib.import_module(module_name).command  # type: ignore[no-any-return]

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PartonomyError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="partonomy")
def cli() -> None:
    """PARTONOMY: explanatory part segmentation benchmark, the PLUM model and baselines."""
