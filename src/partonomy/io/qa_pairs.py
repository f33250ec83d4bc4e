"""The QA-pair JSON: a list of question records, as the original generator writes them.

One record::

    image_path, image_label, question, question_type,
    answer_choices[5], answer_types[5] ('correct' | 'incorrect'), answer_parts[5][...],
    segmentations {part: [mask, ...]},
    object_question, object_answer_choices[5], object_answer_types[5], object_answer_classes[5]
    # object_* are null except for part_to_whole / whole_to_part
    # optional: question_id, answer_operations, and any other key (kept verbatim)

The correct choice is found through ``answer_types``, never assumed to be first.
A record's id is its ``question_id`` field when present, else its 0-based index, as a string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.atomic import atomic_write_json
from partonomy.io.jsonfile import load_json

N_CHOICES = 5
CORRECT = "correct"
INCORRECT = "incorrect"

BASE_QUESTION_TYPES = ("identification", "positive", "negative", "difference")
QUESTION_TYPES: tuple[str, ...] = (
    *BASE_QUESTION_TYPES,
    *(f"{t}_with_label" for t in BASE_QUESTION_TYPES),
    "part_to_whole",
    "whole_to_part",
)
"""Every question type of the format (the generator's registry uses these names)."""

OBJECT_QUESTION_TYPES = ("part_to_whole", "whole_to_part")
"""Types that chain an object question to the part question (their object_* fields are set)."""

_OBJECT_FIELDS = (
    "object_question",
    "object_answer_choices",
    "object_answer_types",
    "object_answer_classes",
)
RECORD_KEYS = (
    "image_path",
    "image_label",
    "question",
    "question_type",
    "answer_choices",
    "answer_types",
    "answer_parts",
    "segmentations",
    *_OBJECT_FIELDS,
)
"""A record's documented keys in canonical (the original generator's) order, ``question_id``
aside; they are :class:`QAPair`'s attributes of the same names."""


@dataclass
class QAPair:
    """One explanatory-part-segmentation question.

    Attributes:
        question_id: the record's id (see module docstring).
        answer_parts: per choice, the part names that choice lists; the correct choice's parts are
            the keys of ``segmentations`` (bare part names).
        segmentations: part name -> RLE masks; the ground truth of a part is their union.
        extra: keys beyond the documented ones (e.g. ``answer_operations``), kept verbatim.
        explicit_id: whether ``question_id`` came from the record (it is then written back).
        key_order: the record's keys in file order, so that :meth:`to_dict` writes a loaded record
            back in the same order (e.g. ``answer_operations`` between ``answer_parts`` and
            ``segmentations``, where the original generator puts it). Empty: canonical order.
    """

    question_id: str
    image_path: str
    image_label: str
    question: str
    question_type: str
    answer_choices: list[str]
    answer_types: list[str]
    answer_parts: list[list[str]]
    segmentations: dict[str, list[mask_io.Rle]]
    object_question: str | None = None
    object_answer_choices: list[str] | None = None
    object_answer_types: list[str] | None = None
    object_answer_classes: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    explicit_id: bool = False
    key_order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def correct_index(self) -> int:
        """Index of the one correct choice (validated on load)."""
        return self.answer_types.index(CORRECT)

    @property
    def correct_parts(self) -> list[str]:
        """The parts named by the correct answer, in ``answer_parts`` order (the mask order)."""
        return self.answer_parts[self.correct_index]

    @property
    def object_correct_index(self) -> int | None:
        """Index of the correct object choice, or None for types without an object question."""
        if self.object_answer_types is None:
            return None
        return self.object_answer_types.index(CORRECT)

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-safe dict (``question_id`` only if it was given).

        Keys follow ``key_order`` (the order of the file it was loaded from); keys not in it come
        after, in the canonical order of the module docstring, then ``extra`` (except a
        ``question_id`` given after loading, which comes first).
        """
        out: dict[str, Any] = {}
        if self.explicit_id:
            out["question_id"] = self.question_id
        out.update({key: getattr(self, key) for key in RECORD_KEYS})
        out.update(self.extra)
        if self.key_order:
            rank = {key: i for i, key in enumerate(self.key_order)}
            rank.setdefault("question_id", -1)  # an id given later still goes first
            out = dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(rank))))
        return out


def _check_choices(
    raw: dict[str, Any], key: str, path: Path, rec: int | str, *, strings: bool = True
) -> list[Any]:
    value = raw.get(key)
    if not isinstance(value, list):
        raise FormatError("missing or not a list", file=path, record=rec, field=key)
    if len(value) != N_CHOICES:
        raise FormatError(
            f"has {len(value)} entries; every question has exactly {N_CHOICES} choices",
            file=path,
            record=rec,
            field=key,
        )
    if strings and not all(isinstance(v, str) for v in value):
        raise FormatError("must hold strings", file=path, record=rec, field=key)
    return list(value)


def _check_types(raw: dict[str, Any], key: str, path: Path, rec: int | str) -> list[str]:
    types = _check_choices(raw, key, path, rec)
    bad = [t for t in types if t not in (CORRECT, INCORRECT)]
    if bad:
        raise FormatError(
            f"unknown answer type {bad[0]!r} (use 'correct' or 'incorrect')",
            file=path,
            record=rec,
            field=key,
        )
    n_correct = types.count(CORRECT)
    if n_correct != 1:
        raise FormatError(
            f"has {n_correct} 'correct' entries; exactly one is required",
            file=path,
            record=rec,
            field=key,
        )
    return types


def parse_qa_pair(raw: Any, index: int, path: Path) -> QAPair:
    """Validate one raw record and build a :class:`QAPair`.

    Raises:
        FormatError: naming ``path``, the record (index and id) and the field.
    """
    if not isinstance(raw, dict):
        raise FormatError("a QA record must be a JSON object", file=path, record=index)
    explicit = "question_id" in raw and raw["question_id"] is not None
    qid = str(raw["question_id"]) if explicit else str(index)
    rec: int | str = index if not explicit else f"{index} (question_id {qid!r})"
    for key in ("image_path", "image_label", "question", "question_type"):
        if not isinstance(raw.get(key), str):
            raise FormatError("missing or not a string", file=path, record=rec, field=key)
    qtype = raw["question_type"]
    if qtype not in QUESTION_TYPES:
        import difflib

        close = difflib.get_close_matches(qtype, QUESTION_TYPES, n=1)
        hint = (
            f"did you mean '{close[0]}'?" if close else f"known types: {', '.join(QUESTION_TYPES)}"
        )
        raise FormatError(
            f"unknown question type {qtype!r}",
            file=path,
            record=rec,
            field="question_type",
            hint=hint,
        )
    choices = _check_choices(raw, "answer_choices", path, rec)
    types = _check_types(raw, "answer_types", path, rec)
    parts = _check_choices(raw, "answer_parts", path, rec, strings=False)
    for k, plist in enumerate(parts):
        if not isinstance(plist, list) or not all(isinstance(p, str) for p in plist):
            raise FormatError(
                "must be a list of part names", file=path, record=rec, field=f"answer_parts[{k}]"
            )
    segs_raw = raw.get("segmentations")
    if not isinstance(segs_raw, dict):
        raise FormatError(
            "missing or not a mapping part -> masks", file=path, record=rec, field="segmentations"
        )
    segmentations: dict[str, list[mask_io.Rle]] = {}
    for part, masks in segs_raw.items():
        masks = [masks] if isinstance(masks, dict) else masks
        if not isinstance(masks, list):
            raise FormatError(
                "must be a list of masks", file=path, record=rec, field=f"segmentations.{part}"
            )
        rles = []
        for k, mask in enumerate(masks):
            try:
                rles.append(mask_io.to_rle(mask))
            except (ValueError, TypeError, KeyError, IndexError) as err:
                raise FormatError(
                    str(err), file=path, record=rec, field=f"segmentations.{part}[{k}]"
                ) from None
        segmentations[str(part)] = rles
    correct = parts[types.index(CORRECT)]
    missing = [p for p in correct if p not in segmentations]
    if missing:
        raise FormatError(
            f"the correct answer names part {missing[0]!r} but it has no masks",
            file=path,
            record=rec,
            field="segmentations",
        )
    object_values: dict[str, Any] = {k: raw.get(k) for k in _OBJECT_FIELDS}
    if qtype in OBJECT_QUESTION_TYPES:
        if not isinstance(raw.get("object_question"), str):
            raise FormatError(
                f"{qtype} needs an object question", file=path, record=rec, field="object_question"
            )
        object_values["object_answer_choices"] = _check_choices(
            raw, "object_answer_choices", path, rec
        )
        object_values["object_answer_types"] = _check_types(raw, "object_answer_types", path, rec)
        if raw.get("object_answer_classes") is not None:
            object_values["object_answer_classes"] = _check_choices(
                raw, "object_answer_classes", path, rec
            )
    extra = {k: v for k, v in raw.items() if k not in RECORD_KEYS and k != "question_id"}
    return QAPair(
        question_id=qid,
        image_path=raw["image_path"],
        image_label=raw["image_label"],
        question=raw["question"],
        question_type=qtype,
        answer_choices=choices,
        answer_types=types,
        answer_parts=[list(p) for p in parts],
        segmentations=segmentations,
        extra=extra,
        explicit_id=explicit,
        key_order=tuple(str(k) for k in raw),
        **object_values,
    )


def load_qa_pairs(path: str | Path) -> list[QAPair]:
    """Read and validate a QA-pair JSON file (a list of records).

    Raises:
        FormatError: a truncated file, a malformed record, or a duplicate question id.
    """
    path = Path(path)
    raw = load_json(path, what="QA-pair file")
    if not isinstance(raw, list):
        raise FormatError("a QA-pair file must be a JSON list of records", file=path)
    records = [parse_qa_pair(r, i, path) for i, r in enumerate(raw)]
    seen: dict[str, int] = {}
    for i, qa in enumerate(records):
        if qa.question_id in seen:
            raise FormatError(
                f"duplicate question_id {qa.question_id!r} (first at record {seen[qa.question_id]})",
                file=path,
                record=i,
                field="question_id",
                hint="question ids must be unique",
            )
        seen[qa.question_id] = i
    return records


def save_qa_pairs(records: list[QAPair], path: str | Path, *, indent: int | None = None) -> None:
    """Write a QA-pair JSON atomically."""
    atomic_write_json(path, [qa.to_dict() for qa in records], indent=indent)


def rebase_image_paths(
    records: Sequence[QAPair], source_dir: str | Path, target_dir: str | Path
) -> list[QAPair]:
    """``records`` for a file in ``target_dir``: a relative ``image_path``, which resolves from
    ``source_dir``, is rewritten to resolve from ``target_dir`` (in copies of the records).

    Absolute paths stay as they are, and when the directories are the same the records are
    returned unchanged (:func:`partonomy.io.paths.rebase_path`).
    """
    from partonomy.io.paths import rebase_path

    source, target = Path(source_dir).resolve(), Path(target_dir).resolve()
    if source == target:
        return list(records)
    rebased: dict[str, str] = {}  # once per image: several questions share one
    out = []
    for qa in records:
        if qa.image_path not in rebased:
            rebased[qa.image_path] = rebase_path(qa.image_path, source, target)
        out.append(replace(qa, image_path=rebased[qa.image_path]))
    return out
