"""The Hugging Face ``datasets`` form of a QA-pair file: parquet shards with the images embedded.

Layout of a dataset directory::

    DIR/partonomy_hf.json                          manifest: format version, counts, shards, source
    DIR/data/<split>-00000-of-0000N.parquet        the records, ``shard_size`` per shard

One row per QA record; the columns (``datasets`` features, stored in the parquet metadata, so
``datasets.load_dataset("parquet", data_files=...)`` decodes ``image`` as a PIL image)::

    question_id          string        the record's id (its own field, else its index)
    question_id_in_file  bool          whether the JSON record carried ``question_id`` itself
    image                Image()       {bytes: the image file's exact bytes, path: image_path}
    image_path           string        as written in the QA file (relative or absolute)
    image_label, question, question_type                      string
    answer_choices, answer_types      list<string>
    answer_parts                      list<list<string>>
    segmentations        string        JSON of {part: [RLE, ...]} (compressed RLE, part order kept)
    object_question      string | null
    object_answer_choices, object_answer_types, object_answer_classes   list<string> | null
    extra                string        JSON object of the record's other keys (e.g. answer_operations)
    key_order            list<string>  the record's keys in file order

The conversion is lossless both ways: JSON -> parquet -> JSON gives records equal to the input
(as parsed by :func:`partonomy.io.qa_pairs.load_qa_pairs`, which normalises masks to compressed
RLE) in the same key order, and images with identical bytes. Everything runs offline.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partonomy import __version__
from partonomy.errors import ConfigError, FormatError
from partonomy.io.atomic import atomic_write_bytes, atomic_write_json
from partonomy.io.images import image_size, record_label, resolve_image_path
from partonomy.io.qa_pairs import QAPair, load_qa_pairs, parse_qa_pair, save_qa_pairs

FORMAT_NAME = "partonomy-qa-hf"
FORMAT_VERSION = 1
MANIFEST_FILE = "partonomy_hf.json"
DATA_DIR = "data"
DEFAULT_SHARD_SIZE = 500
"""Records per parquet shard (each row embeds its image, so shards stay a few hundred MB)."""

COLUMNS = (
    "question_id",
    "question_id_in_file",
    "image",
    "image_path",
    "image_label",
    "question",
    "question_type",
    "answer_choices",
    "answer_types",
    "answer_parts",
    "segmentations",
    "object_question",
    "object_answer_choices",
    "object_answer_types",
    "object_answer_classes",
    "extra",
    "key_order",
)
"""The row columns, in order (the keys of :func:`hf_features`)."""
_STRING_LIST_FIELDS = ("object_answer_choices", "object_answer_types", "object_answer_classes")
_ROW_FIELDS = ("image_label", "question", "question_type", "answer_choices", "answer_types")


@dataclass
class HfSummary:
    """What a conversion wrote: record and distinct-image counts and the files."""

    n_records: int
    n_images: int
    files: list[Path] = field(default_factory=list)


def hf_features() -> Any:
    """The ``datasets.Features`` of the rows (imports ``datasets`` lazily)."""
    import datasets

    string = datasets.Value("string")
    strings = datasets.List(string)
    return datasets.Features(
        {
            "question_id": string,
            "question_id_in_file": datasets.Value("bool"),
            "image": datasets.Image(),
            "image_path": string,
            "image_label": string,
            "question": string,
            "question_type": string,
            "answer_choices": strings,
            "answer_types": strings,
            "answer_parts": datasets.List(strings),
            "segmentations": string,
            "object_question": string,
            "object_answer_choices": strings,
            "object_answer_types": strings,
            "object_answer_classes": strings,
            "extra": string,
            "key_order": strings,
        }
    )


def record_to_row(qa: QAPair, image_bytes: bytes, *, file: Path, record: int) -> dict[str, Any]:
    """One QA record and its image file's bytes as a row of :func:`hf_features`.

    Raises:
        FormatError: an ``object_*`` field that is neither null nor a list of strings (only
            possible on types without an object question, where the loader keeps them verbatim).
    """
    if qa.object_question is not None and not isinstance(qa.object_question, str):
        raise FormatError(
            "must be null or a string", file=file, record=record, field="object_question"
        )
    for key in _STRING_LIST_FIELDS:
        value = getattr(qa, key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise FormatError(
                "must be null or a list of strings to be stored in the HF form",
                file=file,
                record=record,
                field=key,
            )
    return {
        "question_id": qa.question_id,
        "question_id_in_file": qa.explicit_id,
        "image": {"bytes": image_bytes, "path": qa.image_path},
        "image_path": qa.image_path,
        **{key: getattr(qa, key) for key in _ROW_FIELDS},
        "answer_parts": qa.answer_parts,
        "segmentations": json.dumps(qa.segmentations, separators=(",", ":")),
        "object_question": qa.object_question,
        **{key: getattr(qa, key) for key in _STRING_LIST_FIELDS},
        "extra": json.dumps(qa.extra, separators=(",", ":"), allow_nan=False),
        "key_order": list(qa.key_order),
    }


def row_to_record(row: dict[str, Any], index: int, *, file: Path, row_index: int) -> QAPair:
    """Rebuild (and re-validate) a QA record from a row; ``index`` is its position in the JSON.

    Raises:
        FormatError: a missing column or a record that fails QA validation, naming the shard
            file and the row.
    """
    where = f"row {row_index}"
    missing = [k for k in COLUMNS if k not in row]
    if missing:
        raise FormatError(
            "missing column",
            file=file,
            record=where,
            field=missing[0],
            hint="this parquet was not written by 'partonomy convert --to-hf'",
        )
    try:
        segmentations = json.loads(row["segmentations"])
        extra = json.loads(row["extra"])
    except (TypeError, json.JSONDecodeError) as err:
        raise FormatError(f"invalid JSON string ({err})", file=file, record=where) from None
    raw: dict[str, Any] = {}
    qid = str(row["question_id"])
    # An implicit id is the record's index; if the row lands elsewhere, the id must be spelled out.
    if row["question_id_in_file"] or qid != str(index):
        raw["question_id"] = qid
    raw.update(
        image_path=row["image_path"],
        **{key: row[key] for key in _ROW_FIELDS},
        answer_parts=row["answer_parts"],
        segmentations=segmentations,
        object_question=row["object_question"],
        **{key: row[key] for key in _STRING_LIST_FIELDS},
    )
    raw.update(extra if isinstance(extra, dict) else {})
    order = {key: i for i, key in enumerate(row["key_order"] or [])}
    if "question_id" in raw and "question_id" not in order:
        order = {"question_id": -1, **order}
    raw = dict(sorted(raw.items(), key=lambda kv: order.get(kv[0], len(order))))
    try:
        return parse_qa_pair(raw, index, file)
    except FormatError as err:  # name the row of the shard, not the position in the JSON
        raise FormatError(
            err.message, file=file, record=f"{where} (question_id {qid!r})", field=err.field
        ) from None


def _check_target_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise ConfigError(f"{out_dir} exists and is not empty; pass --overwrite to replace it")


def qa_to_hf(
    qa_file: str | Path,
    out_dir: str | Path,
    *,
    image_root: str | Path | None = None,
    split: str = "test",
    shard_size: int = DEFAULT_SHARD_SIZE,
    overwrite: bool = False,
    progress: bool = True,
) -> HfSummary:
    """Convert a QA-pair JSON and its images to the HF parquet form in ``out_dir``.

    The directory is built in a temporary sibling and renamed into place, so an interrupted
    conversion leaves no half-written dataset.

    Args:
        qa_file: the QA JSON; relative image paths resolve against its directory.
        out_dir: the dataset directory to create.
        image_root: resolve relative image paths against this directory instead.
        split: the split name in the shard file names (``<split>-00000-of-00001.parquet``).
        shard_size: records per shard.
        overwrite: replace an existing non-empty ``out_dir``.
        progress: show a tqdm bar.

    Raises:
        FormatError: a malformed QA file, or a missing or unreadable image (names the record).
        ConfigError: ``out_dir`` exists and is not empty (without ``overwrite``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    if shard_size < 1:
        raise ConfigError(f"shard size must be at least 1, got {shard_size}")
    if not split or "/" in split or "-" in split:
        raise ConfigError(f"split name {split!r} must be non-empty, without '/' or '-'")
    qa_path, out_dir = Path(qa_file), Path(out_dir)
    _check_target_dir(out_dir, overwrite)
    records = load_qa_pairs(qa_path)
    root = Path(image_root) if image_root is not None else None
    schema = hf_features().arrow_schema
    n_shards = max(1, math.ceil(len(records) / shard_size))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        (tmp / DATA_DIR).mkdir()
        shards: list[str] = []
        images: dict[Path, bytes] = {}
        bar = tqdm(total=len(records), desc="convert to parquet", unit="q", disable=not progress)
        for shard in range(n_shards):
            rows = []
            for index in range(shard * shard_size, min(len(records), (shard + 1) * shard_size)):
                qa = records[index]
                image = resolve_image_path(qa.image_path, qa_path.parent, root)
                if image not in images:
                    label = record_label(index, qa)
                    image_size(image, file=qa_path, record=label)  # missing / not an image
                    # keep only the last image: records of one image come in runs
                    images = {image: image.read_bytes()}
                rows.append(record_to_row(qa, images[image], file=qa_path, record=index))
                bar.update(1)
            name = f"{DATA_DIR}/{split}-{shard:05d}-of-{n_shards:05d}.parquet"
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp / name)
            shards.append(name)
        bar.close()
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "partonomy_version": __version__,
            "n_records": len(records),
            "splits": {split: shards},
            "source": {"qa_file": qa_path.name},
        }
        atomic_write_json(tmp / MANIFEST_FILE, manifest)
        if out_dir.exists():
            shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    n_images = len({qa.image_path for qa in records})
    return HfSummary(len(records), n_images, [out_dir / s for s in shards])


def _shard_files(hf_dir: Path) -> list[Path]:
    manifest = hf_dir / MANIFEST_FILE
    if manifest.is_file():
        from partonomy.io.jsonfile import load_json

        data = load_json(manifest, what="HF dataset manifest")
        if not isinstance(data, dict) or not isinstance(data.get("splits"), dict):
            raise FormatError("missing or not a mapping", file=manifest, field="splits")
        names = [name for shards in data["splits"].values() for name in shards]
        return [hf_dir / name for name in names]
    shards = sorted(hf_dir.rglob("*.parquet"))
    if not shards:
        raise FormatError(
            "no parquet files found",
            file=hf_dir,
            hint="convert one with 'partonomy convert --to-hf'",
        )
    return shards


def iter_hf_records(hf_dir: str | Path) -> Iterator[tuple[QAPair, bytes]]:
    """Yield ``(record, image bytes)`` from an HF-form directory, in manifest (or name) order.

    Raises:
        FormatError: a missing or unreadable shard, a missing column, a row without embedded
            image bytes, or a record that fails validation (names the shard and the row).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = 0
    for shard in _shard_files(Path(hf_dir)):
        if not shard.is_file():
            raise FormatError("shard listed in the manifest is missing", file=shard)
        try:
            batches = pq.ParquetFile(shard).iter_batches(batch_size=64)
            row_index = 0
            for batch in batches:
                for row in batch.to_pylist():
                    qa = row_to_record(row, index, file=shard, row_index=row_index)
                    image = row["image"] or {}
                    if not isinstance(image.get("bytes"), bytes):
                        raise FormatError(
                            "the image is not embedded (no bytes)",
                            file=shard,
                            record=f"row {row_index}",
                            field="image",
                        )
                    yield qa, image["bytes"]
                    index += 1
                    row_index += 1
        except (OSError, pa.ArrowException) as err:
            raise FormatError(f"unreadable parquet ({err})", file=shard) from None


def image_target(images_dir: Path, image_path: str, *, file: Path, record: int) -> Path:
    """Where a record's image is written by :func:`hf_to_qa`: ``images_dir / image_path``.

    An absolute ``image_path`` is placed under ``images_dir`` with its anchor stripped (the
    record keeps the absolute path; see docs/formats.md).

    Raises:
        FormatError: the path would leave ``images_dir`` (e.g. ``../x.jpg``).
    """
    path = Path(image_path)
    relative = Path(*path.parts[1:]) if path.is_absolute() else path
    target = (images_dir / relative).resolve()
    if not target.is_relative_to(images_dir.resolve()):
        raise FormatError(
            f"image path {image_path!r} points outside the images directory",
            file=file,
            record=record,
            field="image_path",
            hint="convert with image paths relative to (and below) the QA file's directory",
        )
    return target


def hf_to_qa(
    hf_dir: str | Path,
    qa_file: str | Path,
    images_dir: str | Path,
    *,
    overwrite: bool = False,
    indent: int | None = 2,
    progress: bool = True,
) -> HfSummary:
    """Convert an HF-form directory back to a QA-pair JSON plus image files.

    Images are written to ``images_dir / image_path`` with their exact bytes; the JSON keeps
    every ``image_path`` as it was, so pass ``--image-root images_dir`` to ``partonomy eval``
    when ``images_dir`` is not the JSON's directory.

    Raises:
        FormatError: a malformed dataset, duplicate question ids, two different images for one
            path, or an image path outside ``images_dir``.
        ConfigError: ``qa_file`` or an image with other bytes exists (without ``overwrite``).
    """
    from tqdm import tqdm

    hf_dir, qa_path, images_dir = Path(hf_dir), Path(qa_file), Path(images_dir)
    if qa_path.exists() and not overwrite:
        raise ConfigError(f"{qa_path} exists; pass --overwrite to replace it")
    records: list[QAPair] = []
    # sha256 of each image written, not its bytes: a 74K-image split would hold gigabytes.
    written: dict[Path, str] = {}
    seen: dict[str, int] = {}
    for qa, data in tqdm(iter_hf_records(hf_dir), desc="convert to JSON", disable=not progress):
        index = len(records)
        if qa.question_id in seen:
            raise FormatError(
                f"duplicate question_id {qa.question_id!r} (first at record {seen[qa.question_id]})",
                file=hf_dir,
                record=index,
                field="question_id",
            )
        seen[qa.question_id] = index
        target = image_target(images_dir, qa.image_path, file=hf_dir, record=index)
        digest = hashlib.sha256(data).hexdigest()
        if target in written:
            if written[target] != digest:
                raise FormatError(
                    f"two different images are stored for {qa.image_path!r}",
                    file=hf_dir,
                    record=index,
                    field="image",
                )
        else:
            if target.exists() and not overwrite and target.read_bytes() != data:
                raise ConfigError(f"{target} exists with other content; pass --overwrite")
            atomic_write_bytes(target, data)
            written[target] = digest
        records.append(qa)
    save_qa_pairs(records, qa_path, indent=indent)
    return HfSummary(len(records), len(written), [qa_path, *sorted(written)])
