"""LLaVA-Instruct-150k: stage-1 visual question answering (no masks).

Layout (seed README)::

    dataset/llava_dataset/llava_instruct_150k.json
    dataset/coco/train2017/000000033471.jpg

The JSON is a list of ``{"id", "image": "000000033471.jpg", "conversations": [{"from": "human",
"value": "<image>\\nWhat ...?"}, {"from": "gpt", "value": "..."}, ...]}``. Turns alternate human /
gpt; the ``<image>`` placeholder (and the newline next to it) is stripped, since the collator
places the image itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from partonomy.data.sample import TrainingSample, Turn
from partonomy.data.sources.base import (
    CheckResult,
    SourceInfo,
    Stage1Options,
    count_files,
    quick_json_check,
)
from partonomy.errors import FormatError
from partonomy.io.jsonfile import load_json

ANNOTATIONS = "llava_dataset/llava_instruct_150k.json"
IMAGES = "coco/train2017"
IMAGE_TOKEN = "<image>"
_IMAGE_RE = re.compile(r"\s*<image>\s*")


def strip_image_token(text: str) -> str:
    """Remove every ``<image>`` placeholder and the whitespace around it."""
    return _IMAGE_RE.sub(" ", text).strip()


def parse_conversation(record: Any, k: int, path: Path) -> list[Turn]:
    """The (human, gpt) turns of one record.

    Raises:
        FormatError: naming the file, the record's ``id`` and the field, when the record has no
            ``conversations`` list, a turn lacks ``from``/``value``, or the roles do not
            alternate human, gpt.
    """
    rid = f"id {record.get('id', k)!r}" if isinstance(record, dict) else str(k)
    convs = record.get("conversations") if isinstance(record, dict) else None
    if not isinstance(convs, list) or not convs:
        raise FormatError("missing or empty list", file=path, record=rid, field="conversations")
    turns: list[Turn] = []
    for t in range(0, len(convs) - 1, 2):
        human, gpt = convs[t], convs[t + 1]
        for j, msg in ((t, human), (t + 1, gpt)):
            if not isinstance(msg, dict) or not isinstance(msg.get("value"), str):
                raise FormatError(
                    "a turn needs 'from' and a string 'value'",
                    file=path,
                    record=rid,
                    field=f"conversations[{j}]",
                )
        if human.get("from") != "human" or gpt.get("from") != "gpt":
            raise FormatError(
                f"turns must alternate human, gpt; got {human.get('from')!r}, {gpt.get('from')!r}",
                file=path,
                record=rid,
                field=f"conversations[{t}]",
            )
        turns.append((strip_image_token(human["value"]), gpt["value"].strip()))
    if len(convs) % 2:
        raise FormatError(
            "odd number of turns: the last question has no answer",
            file=path,
            record=rid,
            field="conversations",
        )
    return turns


class LlavaInstructReader:
    """Stage-1 VQA samples from LLaVA-Instruct-150k (``masks`` is empty)."""

    def __init__(self, path: Path, images_dir: Path) -> None:
        self.name = "llava_instruct_150k"
        self.path = path
        self.images_dir = images_dir
        records = load_json(path, what="LLaVA-Instruct JSON")
        if not isinstance(records, list):
            raise FormatError("expected a JSON list of records", file=path)
        self.records: list[Any] = records

    def __len__(self) -> int:
        return len(self.records)

    def sample(self, index: int, rng: np.random.Generator) -> TrainingSample:
        record = self.records[index]
        turns = parse_conversation(record, index, self.path)
        image = record.get("image")
        if not isinstance(image, str):
            raise FormatError(
                "missing image file name",
                file=self.path,
                record=f"id {record.get('id')!r}",
                field="image",
            )
        return TrainingSample(
            image=self.images_dir / image,
            conversation=turns,
            masks={},
            source=self.name,
            meta={"file": str(self.path), "id": str(record.get("id", index))},
        )


def open_reader(root: Path, options: Stage1Options) -> LlavaInstructReader:
    return LlavaInstructReader(root / ANNOTATIONS, root / IMAGES)


def check(root: Path, deep: bool) -> CheckResult:
    result = CheckResult("llava_instruct_150k", "found", [ANNOTATIONS, f"{IMAGES}/*.jpg"])
    path = root / ANNOTATIONS
    n_images = count_files(root / IMAGES, ".jpg")
    result.counts["images"] = n_images
    if not path.is_file():
        result.status = "missing"
        result.problems.append(f"missing {ANNOTATIONS}")
    if not n_images:
        result.status = "missing"
        result.problems.append(f"no images in {IMAGES}")
    if result.status == "missing":
        return result
    problem = quick_json_check(path)
    if problem:
        result.status = "malformed"
        result.problems.append(f"{ANNOTATIONS}: {problem}")
        return result
    if deep:
        try:
            reader = LlavaInstructReader(path, root / IMAGES)
            for k, record in enumerate(reader.records):
                parse_conversation(record, k, path)
            result.counts["conversations"] = len(reader)
        except FormatError as err:
            result.status = "malformed"
            result.problems.append(str(err))
    return result


SOURCE = SourceInfo(
    name="llava_instruct_150k",
    description="LLaVA-Instruct-150k conversations (no masks), stage-1 VQA",
    group="vqa",
    needed_by=("stage1",),
    open_reader=open_reader,
    check=check,
)
