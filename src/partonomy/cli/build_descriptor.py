"""``partonomy build-descriptor``: convert a part dataset into a PARTONOMY descriptor."""

from __future__ import annotations

from pathlib import Path

import click

from partonomy.data.sources.descriptor_build import BUILD_SOURCES, build_descriptor


@click.command(name="build-descriptor")
@click.option("--source", required=True, type=click.Choice(BUILD_SOURCES), help="Dataset format.")
@click.option(
    "--annotations",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The annotation JSON (COCO-style sources) or the masks/ folder (partonomy_core).",
)
@click.option(
    "--images",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder the annotations' image file names resolve against.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--object-names",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON mapping object ids to natural-language names (object_names_to_nl.json).",
)
@click.option("--skip-bad", is_flag=True, help="Skip corrupt records and report each one.")
@click.option(
    "--absolute-paths",
    is_flag=True,
    help="Write absolute image paths (default: relative to the descriptor's folder).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(
    source: str,
    annotations: Path,
    images: Path,
    out: Path,
    object_names: Path | None,
    skip_bad: bool,
    absolute_paths: bool,
    quiet: bool,
) -> None:
    """Write DESCRIPTOR.json (and red-box images next to it) from a part dataset."""
    result = build_descriptor(
        source,
        annotations=annotations,
        images=images,
        out=out,
        object_names=object_names,
        skip_bad=skip_bad,
        absolute_paths=absolute_paths,
        progress=not quiet,
    )
    for bad in result.skipped:
        click.echo(f"skipped: {bad}", err=True)
    if result.skipped:
        click.echo(
            f"skipped {len(result.skipped)} bad record(s); listed in {result.skipped_path}",
            err=True,
        )
    d = result.descriptor
    click.echo(
        f"wrote {out}: {len(d.instances)} instances, {len(d.part_graph)} objects, "
        f"{sum(len(v) for v in d.part_graph.values())} object-part labels, "
        f"{result.boxed_images} red-box images"
    )
