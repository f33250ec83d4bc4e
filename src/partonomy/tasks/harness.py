"""``partonomy eval --task TASK`` for the non-PARTONOMY tasks: the same resumable run directory.

The run directory holds ``config.json`` (first), ``predictions.jsonl`` (one fsynced line per
question, the task's prediction line of :mod:`partonomy.tasks.predictions`) and ``results.json``
(atomically, once every selected question is predicted), with the semantics of
:mod:`partonomy.eval.harness`: rerunning the same command resumes; another model, other model
options or other data (task, splits and the content of every question, by digest) in the same
directory is refused unless ``overwrite``; ``limit``, ``missing``, ``rule`` and ``batch_size`` may
change between runs (results are re-scored from the predictions).

VQA tasks call the model's ``answer_vqa`` (:class:`~partonomy.eval.protocol.VqaModel`),
segmentation tasks its ``segment_referring``
(:class:`~partonomy.eval.protocol.ReferringSegmenter`); outputs are checked before they are
written (a mask of the wrong shape or dtype, a non-string answer: :class:`ModelOutputError`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from partonomy import __version__
from partonomy.errors import ConfigError, FormatError
from partonomy.eval.answers import ModelOutputError
from partonomy.eval.harness import EvalOutcome, batch_size_for, build_model, check_batch_size
from partonomy.eval.protocol import ReferQuery, VqaQuery
from partonomy.eval.run_dir import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    locked_out_dir,
    prepare_out_dir,
)
from partonomy.eval.sharding import Shard, merge_shards
from partonomy.io import masks as mask_io
from partonomy.io.atomic import JsonlAppender, atomic_write_json
from partonomy.io.images import load_image
from partonomy.tasks.base import Sample, SegSample, TaskOptions, TaskSpec, VqaSample
from partonomy.tasks.predictions import TaskPrediction, load_run_predictions
from partonomy.tasks.prompts import refer_answer, refer_question, vqa_question
from partonomy.tasks.scoring import score_task


@dataclass
class TaskEvalConfig:
    """One ``partonomy eval --task`` invocation (a non-PARTONOMY task).

    Attributes:
        task: registry name (:data:`partonomy.registries.TASKS`).
        model: registry name of the model; ``model_options`` its builder's options.
        data: the task's official file or folder (``TaskSpec.data``).
        out: the run directory.
        options: splits, image root, limit, missing policy and scoring rule.
        batch_size: queries per model call (None: the model's own batch size, see
            :func:`~partonomy.eval.harness.model_batch_size`).
        overwrite: discard an earlier run in ``out``.
        progress: show a tqdm bar.
    """

    task: str
    model: str
    data: str
    out: str
    model_options: dict[str, Any] = field(default_factory=dict)
    options: TaskOptions = field(default_factory=TaskOptions)
    batch_size: int | None = None
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)


def get_task(name: str) -> TaskSpec:
    """The registered task (did-you-mean on typos)."""
    from partonomy.registries import TASKS

    return TASKS.get(name)  # type: ignore[no-any-return]


def samples_digest(task: TaskSpec, splits: Sequence[str], samples: Sequence[Sample]) -> str:
    """sha256 over the task, its splits and every question's identity (ids, texts, truth, image)."""
    digest = hashlib.sha256(json.dumps([task.name, list(splits)]).encode())
    for s in samples:
        if isinstance(s, VqaSample):
            key: list[Any] = [s.question_id, s.image.name, s.question, list(s.answers), s.group]
        else:
            key = [s.question_id, s.image.name, s.expression, list(s.size), s.group]
        digest.update(json.dumps(key, ensure_ascii=False).encode())
    return digest.hexdigest()


def _query(task: TaskSpec, sample: Sample, image: np.ndarray) -> VqaQuery | ReferQuery:
    if isinstance(sample, VqaSample):
        return VqaQuery(sample.question_id, image, vqa_question(task.name, sample.question), sample)
    answer, span = refer_answer(sample.expression, sample.is_sentence)
    return ReferQuery(
        question_id=sample.question_id,
        image=image,
        expression=sample.expression,
        is_sentence=sample.is_sentence,
        question=refer_question(sample.expression, sample.is_sentence),
        answer=answer,
        span=span,
        record=sample,
    )


def _to_prediction(model: str, query: Any, output: Any) -> TaskPrediction:
    qid = query.question_id
    if isinstance(query, VqaQuery):
        if not isinstance(output, str):
            raise ModelOutputError(
                f"model '{model}' answered question_id {qid!r} with a {type(output).__name__}; "
                "expected a string"
            )
        return TaskPrediction(qid, answer=output)
    arr = np.asarray(output)
    size = (int(query.image.shape[0]), int(query.image.shape[1]))
    if arr.shape != size:
        raise ModelOutputError(
            f"model '{model}' returned a mask of shape {tuple(arr.shape)} for question_id {qid!r}; "
            f"expected the image's (H, W) = {size}"
        )
    if arr.dtype != bool:
        raise ModelOutputError(
            f"model '{model}' returned a {arr.dtype} mask for question_id {qid!r}; masks must be "
            "bool (threshold logits first)"
        )
    return TaskPrediction(qid, mask=mask_io.encode(arr))


def predict_batch(
    task: TaskSpec, model: Any, name: str, queries: list[Any]
) -> list[TaskPrediction]:
    """Run the model's task method on one batch and check its outputs."""
    method = "answer_vqa" if task.kind == "vqa" else "segment_referring"
    fn = getattr(model, method, None)
    if fn is None:
        what = "answer VQA questions" if task.kind == "vqa" else "segment referring expressions"
        raise ConfigError(
            f"model '{name}' does not {what} (it has no {method}); task {task.name!r}"
        )
    outputs = fn(queries)
    if not isinstance(outputs, list) or len(outputs) != len(queries):
        n = len(outputs) if isinstance(outputs, list) else type(outputs).__name__
        raise ModelOutputError(
            f"model '{name}' returned {n} outputs for a batch of {len(queries)} queries "
            f"(first question_id {queries[0].question_id!r}); expected one each"
        )
    return [_to_prediction(name, q, o) for q, o in zip(queries, outputs, strict=True)]


def load_sample_image(sample: Sample, data: str | Path) -> np.ndarray:
    """The sample's image, ``(H, W, 3)`` uint8; a size that disagrees with the annotation is an error."""
    record = f"question_id {sample.question_id!r}"
    image = load_image(sample.image, file=Path(data), record=record)
    if isinstance(sample, SegSample) and tuple(image.shape[:2]) != sample.size:
        raise FormatError(
            f"the image is {image.shape[0]}x{image.shape[1]}, the annotation says "
            f"{sample.size[0]}x{sample.size[1]}",
            file=sample.image,
            record=record,
        )
    return image


def run_task_eval(
    cfg: TaskEvalConfig, *, model: Any = None, shard: Shard | None = None
) -> EvalOutcome:
    """Evaluate a model on a task, resuming an earlier run in ``cfg.out``.

    Args:
        cfg: the run.
        model: an already-built model (training's validation passes its own); else built from the
            registry by ``cfg.model``.
        shard: this process's share of a sharded run (:mod:`partonomy.eval.sharding`: whole
            batches per process, rank 0 merges in data order); None is a single process.

    Returns:
        The results (also in ``out/results.json``) and how many questions were resumed / computed
        (rank 0; the other ranks of a sharded run return empty results).
    """
    from tqdm import tqdm

    shard = shard or Shard()
    task = get_task(cfg.task)
    if task.kind == "partonomy":
        raise ConfigError("the partonomy task runs through partonomy.eval.harness.run_eval")
    splits = task.resolve_splits(cfg.options)
    every = task.load(cfg.data, replace(cfg.options, limit=None))
    limit = cfg.options.limit
    selection = every if limit is None else every[:limit]
    if model is None:
        from partonomy.registries import MODELS

        MODELS.get(cfg.model)  # a typo fails before any file is touched
    out = Path(cfg.out)
    run_config = {
        "task": task.name,
        "model": cfg.model,
        "model_options": json.loads(json.dumps(cfg.model_options, default=str)),
        "qa_file": str(Path(cfg.data).resolve()),
        "qa_sha256": samples_digest(task, splits, every),
        "version": __version__,
        "splits": list(splits),
        "limit": limit,
        "missing": cfg.options.missing,
        "rule": cfg.options.rule,
        "batch_size": cfg.batch_size,
        "image_root": cfg.options.image_root,
    }
    predictions_path = out / PREDICTIONS_FILE
    known = {s.question_id for s in every}
    order = [s.question_id for s in every]

    def read(path: Path) -> dict[str, TaskPrediction]:
        return load_run_predictions(path, task.kind, known)  # type: ignore[arg-type]

    with locked_out_dir(out) if shard.is_main else nullcontext():
        if shard.is_main:
            prepare_out_dir(out, run_config, cfg.overwrite)
            merge_shards(out, predictions_path, order, read)  # a killed sharded run's lines
        shard.barrier()
        done = read(predictions_path)
        pending = [s for s in selection if s.question_id not in done]
        n_resumed = len(selection) - len(pending)
        batch_size = 1  # nothing to predict: a resumed run that is complete builds no model
        if pending:
            batch_size, model = batch_size_for(cfg.batch_size, model, cfg.model, cfg.model_options)
        batches = shard.batches(pending, batch_size)
        n_mine = sum(len(b) for b in batches)
        if pending and shard.is_main:
            (out / RESULTS_FILE).unlink(missing_ok=True)
        if batches and model is None:
            model = build_model(cfg.model, cfg.model_options)
        shard.barrier()  # every process has its model: the timing below is prediction only
        start = time.perf_counter()
        if batches:
            single = shard.world == 1
            with (
                JsonlAppender(shard.predictions_file(out, predictions_path)) as appender,
                tqdm(
                    total=len(selection) if single else n_mine,
                    initial=n_resumed if single else 0,
                    desc=f"{task.name} {cfg.model}",
                    unit="q",
                    disable=not (cfg.progress and shard.is_main),
                ) as bar,
            ):
                for batch in batches:
                    queries = [_query(task, s, load_sample_image(s, cfg.data)) for s in batch]
                    for pred in predict_batch(task, model, cfg.model, queries):
                        appender.write(pred.to_dict())
                        done[pred.question_id] = pred
                    bar.update(len(batch))
        shard.barrier()
        seconds = time.perf_counter() - start
        if not shard.is_main:
            return EvalOutcome({}, out, len(selection), n_resumed, n_mine, seconds)
        if merge_shards(out, predictions_path, order, read):
            done = read(predictions_path)
        selected = {s.question_id for s in selection}
        results = score_task(
            task,
            selection,
            {q: p for q, p in done.items() if q in selected},
            cfg.options,
            annotations=cfg.data,
            predictions_file=predictions_path,
        )
        atomic_write_json(out / RESULTS_FILE, results)
    return EvalOutcome(results, out, len(selection), n_resumed, len(pending), seconds)
