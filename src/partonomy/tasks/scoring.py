"""Task samples + predictions -> ``results.json`` (the same shape as PARTONOMY's).

``results.json``::

    {"overall": M, "<group_key>": {group: M}, "config": {...}, "version": "<partonomy>"}

``group_key`` is ``by_subset`` (ReasonSeg short/long, POPE categories) or ``by_split`` (refCOCO
family); TextVQA and GQA have ``overall`` only. ``M`` holds the task's metrics (fractions in
[0, 1], null when nothing was scored) and the counts ``n_questions`` (in the group),
``n_scored`` and ``n_unanswered``:

* segmentation: ``giou``, ``ciou`` (:func:`partonomy.tasks.metrics.reduce_masks`);
* TextVQA, GQA: ``accuracy``;
* POPE: ``accuracy``, ``precision``, ``recall``, ``f1``, ``yes_ratio`` (under ``rule: original``
  only ``accuracy``, the original script's score; the others are null).

Missing predictions (``missing``): ``strict`` scores them as an empty mask / a wrong answer (POPE:
the opposite of the label); ``lenient`` leaves them out. Either way they count in ``n_unanswered``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from partonomy import __version__
from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.atomic import atomic_write_json
from partonomy.tasks.base import Sample, SegSample, TaskOptions, TaskSpec, VqaSample
from partonomy.tasks.metrics import (
    EMPTY_UNION_IOU,
    IGNORE_VALUE,
    MaskStats,
    PopeOutcome,
    exact_match,
    mask_stats,
    original_vqa_eval,
    pope_reads_yes,
    reduce_masks,
    reduce_pope,
    soft_vqa_accuracy,
)
from partonomy.tasks.predictions import TaskPrediction, load_predictions

TASK_SCORING_VERSION = 1
"""Bumped whenever a rule below changes a number."""


@dataclass(frozen=True)
class _Scored:
    group: str | None
    answered: bool
    value: Any  # MaskStats | float | PopeOutcome | None (left out under lenient)


def _where(pred: TaskPrediction) -> str:
    return f"line {pred.line} (question_id {pred.question_id!r})"


def _seg_value(
    sample: SegSample, pred: TaskPrediction | None, missing: str, file: str | Path | None
) -> MaskStats | None:
    if pred is None and missing == "lenient":
        return None
    target = sample.load_target()
    if target.shape != sample.size:
        raise FormatError(
            f"target mask is {target.shape}, the annotation says {sample.size}",
            record=f"question_id {sample.question_id!r}",
        )
    if pred is None:
        return mask_stats(np.zeros(sample.size, dtype=bool), target)
    assert pred.mask is not None
    size = tuple(int(x) for x in pred.mask["size"])
    if size != sample.size:
        raise FormatError(
            f"mask is {size[0]}x{size[1]} but the image is {sample.size[0]}x{sample.size[1]}",
            file=file,
            record=_where(pred),
            field="mask",
            hint="predict masks at the image's original resolution",
        )
    return mask_stats(mask_io.decode(pred.mask), target)


def _vqa_value(
    task: TaskSpec, sample: VqaSample, pred: TaskPrediction | None, options: TaskOptions
) -> float | PopeOutcome | None:
    if pred is None and options.missing == "lenient":
        return None
    label_yes = task.metric == "pope" and sample.answers[0] == "yes"
    if pred is None:  # strict: a wrong answer
        return PopeOutcome(not label_yes, label_yes) if task.metric == "pope" else 0.0
    answer = pred.answer or ""
    if task.metric == "soft_vqa":
        return soft_vqa_accuracy(answer, sample.answers)
    if task.metric == "exact_match":
        if options.rule == "original":
            truth = [sample.answers[0], *([sample.full_answer] if sample.full_answer else [])]
            return original_vqa_eval(answer, truth)
        return exact_match(answer, sample.answers[0])
    if options.rule == "original":
        return original_vqa_eval(answer, sample.answers[0])
    return PopeOutcome(pope_reads_yes(answer), label_yes)


def _summarise(task: TaskSpec, scored: Sequence[_Scored], rule: str) -> dict[str, Any]:
    values = [s.value for s in scored if s.value is not None]
    out: dict[str, Any]
    if task.kind == "segmentation":
        out = dict(reduce_masks(values))
    elif task.metric == "pope" and rule == "official":
        out = {k: v for k, v in reduce_pope(values).items() if k != "n_questions"}
    elif task.metric == "pope":
        acc = float(np.mean(values)) if values else None
        out = {"accuracy": acc, "precision": None, "recall": None, "f1": None, "yes_ratio": None}
    else:
        out = {"accuracy": float(np.mean(values)) if values else None}
    out.update(
        n_questions=len(scored),
        n_scored=len(values),
        n_unanswered=sum(not s.answered for s in scored),
    )
    return out


def score_task(
    task: TaskSpec,
    samples: Sequence[Sample],
    predictions: Mapping[str, TaskPrediction],
    options: TaskOptions,
    *,
    annotations: str | Path | None = None,
    predictions_file: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score ``predictions`` (by question id) on ``samples``; returns the results dict."""
    scored: list[_Scored] = []
    for sample in tqdm(samples, desc=f"scoring {task.name}", disable=not progress, delay=1.0):
        pred = predictions.get(sample.question_id)
        value: Any
        if isinstance(sample, SegSample):
            value = _seg_value(sample, pred, options.missing, predictions_file)
        else:
            value = _vqa_value(task, sample, pred, options)
        scored.append(_Scored(sample.group, pred is not None, value))
    results: dict[str, Any] = {"overall": _summarise(task, scored, options.rule)}
    if task.group_key is not None:
        groups = list(dict.fromkeys(s.group for s in scored if s.group is not None))
        results[task.group_key] = {
            g: _summarise(task, [s for s in scored if s.group == g], options.rule) for g in groups
        }
    results["config"] = {
        "task": task.name,
        "splits": list(task.resolve_splits(options)),
        "missing": options.missing,
        "rule": options.rule,
        "limit": options.limit,
        "protocol_version": TASK_SCORING_VERSION,
        "metric": task.metric,
        "empty_union_iou": EMPTY_UNION_IOU if task.kind == "segmentation" else None,
        "ignore_value": IGNORE_VALUE if task.kind == "segmentation" else None,
        "annotations": None if annotations is None else str(annotations),
        "predictions_file": None if predictions_file is None else str(predictions_file),
    }
    results["version"] = __version__
    return results


def score_task_files(
    task: TaskSpec,
    annotations: str | Path,
    predictions_path: str | Path,
    out_path: str | Path,
    options: TaskOptions,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """``partonomy score --task``: read the official files and a predictions JSONL, write results."""
    samples = task.load(annotations, options)
    if task.kind == "partonomy":
        raise FormatError("use score_files of partonomy.eval.scoring for the partonomy task")
    predictions = load_predictions(
        predictions_path,
        task.kind,
        {s.question_id for s in samples},  # type: ignore[arg-type]
    )
    results = score_task(
        task,
        samples,
        predictions,
        options,
        annotations=annotations,
        predictions_file=predictions_path,
        progress=progress,
    )
    atomic_write_json(out_path, results)
    return results
