"""``partonomy convert-checkpoint``: a released LISA / GLaMM / PLUM directory -> our checkpoint.

    partonomy convert-checkpoint --from lisa SRC --out DST --vision-tower CLIP_DIR

Calls :func:`partonomy.models.convert.convert`. DST then loads with
``partonomy eval --model lisa --model-opt checkpoint=DST``, ``partonomy predict --model lisa
--checkpoint DST`` and ``partonomy train ... init_from=DST``. The key mappings are in
``docs/models.md`` ("Converting released checkpoints").
"""

from __future__ import annotations

from pathlib import Path

import click

from partonomy.models.convert import SOURCES


@click.command(name="convert-checkpoint")
@click.option(
    "--from",
    "family",
    type=click.Choice(SOURCES),
    required=True,
    help="The family whose released checkpoint SRC is.",
)
@click.argument("src", metavar="SRC", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "dst",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The checkpoint directory to write (written as DST.tmp, then renamed).",
)
@click.option(
    "--vision-tower",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Local HF CLIP directory (openai/clip-vit-large-patch14 for LISA and PLUM, "
    "-336 for GLaMM): the releases do not contain the CLIP weights.",
)
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
def command(family: str, src: Path, dst: Path, vision_tower: Path | None, overwrite: bool) -> None:
    """Convert the released checkpoint directory SRC into a partonomy checkpoint."""
    from partonomy.models.convert import convert

    out = convert(family, src, dst, vision_tower=vision_tower, overwrite=overwrite)
    click.echo(f"wrote {out} ({family}); load it with --model {family} --checkpoint {out}")
