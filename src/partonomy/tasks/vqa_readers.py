"""Readers of the official TextVQA, GQA and POPE files (one function each, registered as tasks).

* TextVQA: ``TextVQA_0.5.1_{split}.json``: ``{"dataset_type"?: split, "data": [{"question_id",
  "question", "image_id", "answers": [10 strings]}, ...]}``; images ``{image_root}/{image_id}.jpg``
  (default ``train_images/`` beside the JSON: the val images are TextVQA's train images).
* GQA: ``{split}_balanced_questions.json``: ``{question_id: {"imageId", "question", "answer",
  "fullAnswer", ...}}`` in file order; images ``{image_root}/{imageId}.jpg`` (default
  ``../images`` from the questions folder, the official layout).
* POPE: ``coco_pope_{random,popular,adversarial}.json``, each JSONL: one ``{"question_id",
  "image", "text", "label": "yes"|"no"}`` per line; images ``{image_root}/{image}`` (default
  ``val2014/`` beside the files). Given a directory, all three files are read and ids become
  ``"{category}/{question_id}"`` (the official ids restart in each file); given one file, the ids
  are kept and the category comes from the file name.

DATA may be the file itself or the folder holding it (then the split picks the file).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from partonomy.errors import FormatError
from partonomy.io.jsonfile import load_json
from partonomy.tasks.base import TaskOptions, VqaSample

POPE_CATEGORIES = ("random", "popular", "adversarial")
_POPE_NAME = re.compile(r"coco_pope_(\w+)\.jsonl?$")


def _need_str(record: dict[str, Any], key: str, file: Path, where: str) -> str:
    value = record.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise FormatError("missing or not a string", file=file, record=where, field=key)
    return value


def _one_file(data: Path, pattern: str, splits: tuple[str, ...], task: str) -> tuple[Path, str]:
    if data.is_file():
        if len(splits) != 1:
            raise FormatError(f"{task}: one file holds one split; ask for one --split", file=data)
        return data, splits[0]
    if len(splits) != 1:
        raise FormatError(f"{task}: read one split at a time (got {', '.join(splits)})", file=data)
    for folder in (data, data / "questions"):
        path = folder / pattern.format(split=splits[0])
        if path.is_file():
            return path, splits[0]
    raise FormatError(
        f"no {pattern.format(split=splits[0])} here", file=data, hint=f"pass the {task} file itself"
    )


def read_textvqa(data: Path, splits: tuple[str, ...], options: TaskOptions) -> list[VqaSample]:
    path, split = _one_file(data, "TextVQA_0.5.1_{split}.json", splits, "textvqa")
    raw = load_json(path, what="TextVQA annotations")
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise FormatError('expected {"data": [...]}', file=path, field="data")
    declared = raw.get("dataset_type")
    if isinstance(declared, str) and declared != split:
        raise FormatError(
            f"the file is the {declared!r} split, not {split!r}", file=path, field="dataset_type"
        )
    root = Path(options.image_root) if options.image_root else path.parent / "train_images"
    out = []
    for k, item in enumerate(raw["data"]):
        if not isinstance(item, dict):
            raise FormatError("must be an object", file=path, record=f"data[{k}]")
        where = f"data[{k}]"
        qid = _need_str(item, "question_id", path, where)
        answers = item.get("answers")
        if (
            not isinstance(answers, list)
            or not answers
            or not all(isinstance(a, str) for a in answers)
        ):
            raise FormatError(
                "needs a non-empty list of answer strings (the test split has none)",
                file=path,
                record=f"question_id {qid}",
                field="answers",
            )
        image_id = _need_str(item, "image_id", path, where)
        out.append(
            VqaSample(
                question_id=qid,
                image=root / f"{image_id}.jpg",
                question=_need_str(item, "question", path, where),
                answers=tuple(answers),
            )
        )
    return out


def read_gqa(data: Path, splits: tuple[str, ...], options: TaskOptions) -> list[VqaSample]:
    path, _split = _one_file(data, "{split}_balanced_questions.json", splits, "gqa")
    raw = load_json(path, what="GQA questions")
    if not isinstance(raw, dict):
        raise FormatError("expected {question_id: {...}}", file=path)
    root = Path(options.image_root) if options.image_root else path.parent.parent / "images"
    out = []
    for qid, item in raw.items():
        where = f"question_id {qid}"
        if not isinstance(item, dict):
            raise FormatError("must be an object", file=path, record=where)
        full = item.get("fullAnswer")
        out.append(
            VqaSample(
                question_id=str(qid),
                image=root / f"{_need_str(item, 'imageId', path, where)}.jpg",
                question=_need_str(item, "question", path, where),
                answers=(_need_str(item, "answer", path, where),),
                full_answer=full if isinstance(full, str) else None,
            )
        )
    return out


def _pope_lines(path: Path, category: str | None, prefix: bool, root: Path) -> list[VqaSample]:
    out = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"line {lineno}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise FormatError(f"invalid JSON ({err.msg})", file=path, record=where) from None
            if not isinstance(item, dict):
                raise FormatError("must be an object", file=path, record=where)
            label = _need_str(item, "label", path, where).strip().lower()
            if label not in ("yes", "no"):
                raise FormatError(
                    f"label {label!r} is not yes/no", file=path, record=where, field="label"
                )
            qid = _need_str(item, "question_id", path, where)
            out.append(
                VqaSample(
                    question_id=f"{category}/{qid}" if prefix else qid,
                    image=root / _need_str(item, "image", path, where),
                    question=_need_str(item, "text", path, where),
                    answers=(label,),
                    group=category,
                )
            )
    return out


def read_pope(data: Path, splits: tuple[str, ...], options: TaskOptions) -> list[VqaSample]:
    if data.is_file():
        match = _POPE_NAME.search(data.name)
        root = Path(options.image_root) if options.image_root else data.parent / "val2014"
        return _pope_lines(data, match.group(1) if match else None, False, root)
    root = Path(options.image_root) if options.image_root else data / "val2014"
    out: list[VqaSample] = []
    for category in POPE_CATEGORIES:
        path = data / f"coco_pope_{category}.json"
        if not path.is_file():
            raise FormatError(f"missing coco_pope_{category}.json", file=data)
        out.extend(_pope_lines(path, category, True, root))
    return out
