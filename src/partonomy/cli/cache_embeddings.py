"""``partonomy cache-embeddings DATA --out DIR``: compute the frozen SAM encoder's image embeddings
once and keep them on disk (:mod:`partonomy.models.core.embedding_cache`); evaluation reads them
with ``--model-opt embedding_cache=DIR``. Rerunning resumes (cached images are skipped)."""

from __future__ import annotations

from pathlib import Path

import click

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def data_images(data: Path, image_root: Path | None) -> list[Path]:
    """The images of DATA: a QA file's records' images (each once, in file order), or every image
    file under a directory (sorted)."""
    if data.is_dir():
        return sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    from partonomy.io.images import resolve_image_path
    from partonomy.io.qa_pairs import load_qa_pairs

    paths = [
        resolve_image_path(qa.image_path, data.parent, image_root) for qa in load_qa_pairs(data)
    ]
    return list(dict.fromkeys(paths))


@click.command(name="cache-embeddings")
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache directory (one subdirectory per encoder).",
)
@click.option("--model", "family", default="plum", show_default=True, help="Model family.")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Training checkpoint or run directory whose SAM encoder to use.",
)
@click.option(
    "--preset", default="tiny", show_default=True, help="Preset used without --checkpoint."
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--dtype", default="auto", show_default=True, help="auto, float32, bfloat16, ...")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--image-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Resolve a QA file's relative image paths against this directory.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(
    data: Path,
    out: Path,
    family: str,
    checkpoint: Path | None,
    preset: str,
    device: str,
    dtype: str,
    batch_size: int,
    image_root: Path | None,
    no_progress: bool,
) -> None:
    """Cache the SAM image embeddings of DATA (a QA file, or a directory of images) in --out."""
    from partonomy.models.core.embedding_cache import EmbeddingCache, fill_cache
    from partonomy.models.core.loading import load_model

    images = data_images(data, image_root)
    model, processor = load_model(
        family, None if checkpoint is None else str(checkpoint), preset, device, dtype
    )
    cache = EmbeddingCache.for_mask_head(out, model.mask_head)
    computed, skipped = fill_cache(
        model,
        processor.sam_image_size,
        images,
        cache,
        batch_size=batch_size,
        progress=not no_progress,
    )
    click.echo(
        f"{computed} embedding(s) computed, {skipped} already cached, in {cache.dir} "
        f"(use --model-opt embedding_cache={out})"
    )
