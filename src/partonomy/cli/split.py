"""``partonomy split QA.json --out-dir DIR [--val-fraction 0.2] [--seed 42]``."""

from __future__ import annotations

from pathlib import Path

import click

from partonomy.qa.split import DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTION


@click.command(name="split")
@click.argument("qa_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where <stem>_train.json and <stem>_val.json go.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_VAL_FRACTION,
    show_default=True,
    help="Share of images in val.",
)
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULT_SPLIT_SEED, show_default=True)
@click.option(
    "--indent", type=click.IntRange(min=0), default=None, help="Indent the JSON (default: compact)."
)
def command(
    qa_file: Path, out_dir: Path, val_fraction: float, seed: int, indent: int | None
) -> None:
    """Split QA pairs into train and val by image, stratified by object label."""
    from partonomy.io.qa_pairs import load_qa_pairs, rebase_image_paths, save_qa_pairs
    from partonomy.qa.split import split_records

    records = load_qa_pairs(qa_file)
    for qa in records:  # keep ids stable: an implicit id (the index) would change in the split
        qa.explicit_id = True
    train, val = split_records(records, val_fraction=val_fraction, seed=seed)
    for name, part in (("train", train), ("val", val)):
        path = out_dir / f"{qa_file.stem}_{name}.json"
        save_qa_pairs(rebase_image_paths(part, qa_file.parent, out_dir), path, indent=indent)
        n_images = len({qa.image_path for qa in part})
        images = "image" if n_images == 1 else "images"
        click.echo(f"wrote {len(part)} questions ({n_images} {images}) to {path}")
