"""``partonomy convert``: QA-pair JSON <-> the Hugging Face parquet form (images embedded).

    partonomy convert QA.json --to-hf DIR
    partonomy convert DIR --to-json QA.json --images-dir IMGDIR

Calls :func:`partonomy.io.hf_dataset.qa_to_hf` / :func:`~partonomy.io.hf_dataset.hf_to_qa`.
The layout is documented in ``docs/formats.md``.
"""

from __future__ import annotations

from pathlib import Path

import click

from partonomy.io.hf_dataset import DEFAULT_SHARD_SIZE


@click.command(name="convert")
@click.argument("source", metavar="SOURCE", type=click.Path(path_type=Path))
@click.option(
    "--to-hf",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write SOURCE (a QA JSON) as parquet shards with images embedded into this directory.",
)
@click.option(
    "--to-json",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write SOURCE (an HF-form directory) back as this QA JSON.",
)
@click.option(
    "--images-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --to-json: where the images are written (at their image_path).",
)
@click.option(
    "--image-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --to-hf: resolve relative image paths here (default: the QA file's directory).",
)
@click.option("--split", default="test", show_default=True, help="With --to-hf: split name.")
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=DEFAULT_SHARD_SIZE,
    show_default=True,
    help="With --to-hf: records per parquet shard.",
)
@click.option(
    "--indent",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="With --to-json: JSON indent, 0 for compact (the original generator uses 2).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
def command(
    source: Path,
    to_hf: Path | None,
    to_json: Path | None,
    images_dir: Path | None,
    image_root: Path | None,
    split: str,
    shard_size: int,
    indent: int,
    overwrite: bool,
) -> None:
    """Convert QA-pair JSON to the HF parquet form (--to-hf) or back (--to-json)."""
    from partonomy.io.hf_dataset import hf_to_qa, qa_to_hf

    if (to_hf is None) == (to_json is None):
        raise click.UsageError("give exactly one of --to-hf DIR or --to-json QA.json")
    if to_hf is not None:
        if images_dir is not None:
            raise click.UsageError("--images-dir goes with --to-json (images are embedded)")
        summary = qa_to_hf(
            source,
            to_hf,
            image_root=image_root,
            split=split,
            shard_size=shard_size,
            overwrite=overwrite,
        )
        click.echo(
            f"wrote {summary.n_records} records ({summary.n_images} images) in "
            f"{len(summary.files)} shard(s) to {to_hf}"
        )
        return
    assert to_json is not None
    if images_dir is None:
        raise click.UsageError("--to-json needs --images-dir IMGDIR (where images are written)")
    if image_root is not None:
        raise click.UsageError("--image-root goes with --to-hf")
    summary = hf_to_qa(source, to_json, images_dir, overwrite=overwrite, indent=indent or None)
    click.echo(
        f"wrote {summary.n_records} records to {to_json} and {summary.n_images} images to {images_dir}"
    )
