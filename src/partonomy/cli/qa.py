"""``partonomy generate-qa DESCRIPTOR --out QA.json --seed N [--graph graph.yaml] [--types ...]``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import click


def _split_types(values: tuple[str, ...]) -> list[str] | None:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``; nothing given -> None (all types)."""
    names = [n for value in values for n in re.split(r"[,\s]+", value) if n]
    return names or None


@click.command(name="generate-qa")
@click.argument("descriptor", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="QA-pair JSON to write.",
)
@click.option(
    "--seed",
    required=True,
    type=click.IntRange(min=0),
    help="Seed; the same seed gives the same file, byte for byte.",
)
@click.option(
    "--graph",
    "graph_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Concept graph YAML (default: the descriptor's part_graph / instance_graph).",
)
@click.option(
    "--types",
    "types",
    multiple=True,
    help="Question types, comma-separated or repeated (default: all; see "
    "`partonomy ls question-types`).",
)
@click.option(
    "--embedder",
    type=click.Choice(["default", "none"]),
    default="default",
    show_default=True,
    help="Text embedder weighting object distractors ('none': uniform).",
)
@click.option(
    "--with-operations",
    is_flag=True,
    help="Store the mutation log of each choice as 'answer_operations'.",
)
@click.option(
    "--correct-first",
    is_flag=True,
    help="Put the correct choice first, as the original (default: shuffled).",
)
@click.option(
    "--indent", type=click.IntRange(min=0), default=None, help="Indent the JSON (default: compact)."
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def command(
    descriptor: Path,
    out: Path,
    seed: int,
    graph_path: Path | None,
    types: tuple[str, ...],
    embedder: str,
    with_operations: bool,
    correct_first: bool,
    indent: int | None,
    no_progress: bool,
) -> None:
    """Generate explanatory-part-segmentation questions from a dataset descriptor."""
    from partonomy.io.descriptor import load_descriptor
    from partonomy.io.graph import load_graph
    from partonomy.io.qa_pairs import rebase_image_paths, save_qa_pairs
    from partonomy.qa.generate import GenerationOptions, generate_qa, resolve_types

    # notes are printed below; keep the library's logged warnings from printing them twice
    logging.getLogger("partonomy").addHandler(logging.NullHandler())
    names = _split_types(types)
    resolve_types(names)  # fail on a typo before reading a large descriptor
    desc = load_descriptor(descriptor)
    graph = load_graph(graph_path) if graph_path is not None else None
    result = generate_qa(
        desc,
        graph,
        seed=seed,
        types=names,
        embedder="default" if embedder == "default" else None,
        progress=not no_progress,
        options=GenerationOptions(correct_first=correct_first, include_operations=with_operations),
        source=descriptor,
    )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    # image paths name files relative to the descriptor; the QA file may live elsewhere
    records = rebase_image_paths(result.records, desc.root, out.parent)
    save_qa_pairs(records, out, indent=indent)
    click.echo(f"wrote {len(result.records)} questions to {out}")
    for name in result.n_dropped:
        click.echo(
            f"  {name}: {sum(r.question_type == name for r in result.records)} written, "
            f"{result.n_dropped[name]} dropped (no 4 distinct wrong answers in "
            f"{GenerationOptions().max_tries} tries), {result.n_skipped[name]} images not eligible"
        )
