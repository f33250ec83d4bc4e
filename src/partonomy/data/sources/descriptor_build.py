"""``build_descriptor``: the one library call behind ``partonomy build-descriptor``."""

from __future__ import annotations

from pathlib import Path

from partonomy.data.sources.part_coco import BuildResult
from partonomy.errors import FormatError
from partonomy.io.atomic import atomic_write_json
from partonomy.io.descriptor import save_descriptor
from partonomy.io.jsonfile import load_json

BUILD_SOURCES = ("paco_lvis", "pascal_part", "partimagenet", "partonomy_core")
"""The sources ``build-descriptor`` accepts."""


def load_object_names(path: str | Path) -> dict[str, str]:
    """An object-id -> natural-language-name mapping (``object_names_to_nl.json``).

    Raises:
        FormatError: the file is not a JSON object of strings (naming the bad key).
    """
    data = load_json(path, what="object-name mapping")
    if not isinstance(data, dict):
        raise FormatError("must be a JSON object {object id: natural-language name}", file=path)
    for key, value in data.items():
        if not isinstance(value, str):
            raise FormatError("the name must be a string", file=path, field=str(key))
    return {str(k): v for k, v in data.items()}


def skipped_report_path(out: Path) -> Path:
    """Where the list of skipped records goes: ``DESCRIPTOR.skipped.json`` next to the output."""
    return out.with_name(out.stem + ".skipped.json")


def build_descriptor(
    source: str,
    *,
    annotations: str | Path,
    images: str | Path,
    out: str | Path,
    object_names: str | Path | None = None,
    skip_bad: bool = False,
    absolute_paths: bool = False,
    progress: bool = True,
) -> BuildResult:
    """Build the PARTONOMY descriptor of a part dataset (see ``docs/data.md``).

    Args:
        source: one of :data:`BUILD_SOURCES`.
        annotations: the annotation JSON, or the ``masks/`` folder for ``partonomy_core``.
        images: the folder image file names resolve against.
        out: the descriptor to write (red-box images go next to it).
        object_names: optional JSON mapping object ids to natural-language names.
        skip_bad: skip corrupt records instead of failing; every skipped one is in
            ``result.skipped`` and written to ``DESCRIPTOR.skipped.json``.
        absolute_paths: write absolute image paths. By default they are relative to the
            descriptor's folder (portable when the dataset and the output move together; files
            derived from the descriptor, like QA pairs, must then stay in that folder).
        progress: show a progress bar.

    Raises:
        FormatError: a corrupt record (without ``skip_bad``), naming file and annotation id.
    """
    from partonomy.registries import SOURCES

    if source not in BUILD_SOURCES:
        raise FormatError(
            f"unknown source '{source}'", hint=f"choose one of {', '.join(BUILD_SOURCES)}"
        )
    info = SOURCES.get(source)
    names = load_object_names(object_names) if object_names is not None else None
    out = Path(out)
    result: BuildResult = info.build_descriptor(
        Path(annotations),
        Path(images),
        out,
        object_names=names,
        skip_bad=skip_bad,
        progress=progress,
    )
    if absolute_paths:
        for inst in result.descriptor.instances:
            inst.image_path = str((out.parent / inst.image_path).resolve())
        save_descriptor(result.descriptor, out)
    report = skipped_report_path(out)
    if result.skipped:
        atomic_write_json(report, [b.to_dict() for b in result.skipped])
        result.skipped_path = report
    elif report.exists():
        report.unlink()  # a stale list from an earlier run would mislead
    return result
