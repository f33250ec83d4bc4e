"""Validation during training (issue 11): every ``eval_every`` steps, evaluate the model being
trained on one or more tasks' val splits, log the metrics, keep the best checkpoint.

The evaluation is exactly ``partonomy eval`` (:func:`partonomy.eval.harness.run_eval` for the
``partonomy`` task, :func:`partonomy.tasks.harness.run_task_eval` otherwise) with the in-memory
model wrapped in a :class:`~partonomy.models.core.predictor.SegPredictor`, so the numbers equal
``partonomy eval --model plum --model-opt checkpoint=<that checkpoint>`` on the same data (tested).
Each evaluation is a normal run directory: ``<run_dir>/validation/step_<N>/<task>/``.

Outputs in the run directory:

* ``validation_log.jsonl``: one line per validation, ``{"step", "<task>/<metric>": value, ...}``
  (the ``overall`` rates of each task's results.json);
* ``validation/best.json``: ``{"metric", "mode", "step", "value", "checkpoint"}`` of the best so far;
* ``checkpoints/best``: the best checkpoint (written through the recipe's ``save_checkpoint``).

The recipe calls :func:`maybe_validate` once per optimiser step; with several processes only the
main one evaluates and the "is it the best" decision is broadcast, so every process takes part in
saving the checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from partonomy.errors import ConfigError
from partonomy.io.atomic import JsonlAppender, atomic_write_json

log = logging.getLogger(__name__)

VALIDATION_LOG = "validation_log.jsonl"
BEST_FILE = "best.json"
BEST_CHECKPOINT = "best"
COUNT_PREFIX = "n_"


@dataclass
class ValidationTask:
    """One task to validate on.

    Attributes:
        task: a :data:`partonomy.registries.TASKS` name.
        data: its files (``partonomy``: a QA.json; others: as ``partonomy eval --task``).
        splits: the splits to read (None: the task's default, its val split).
        limit: only the first ``limit`` questions (a quick validation).
        image_root: where the task's images are (None: the task's default).
    """

    task: str
    data: str
    splits: list[str] | None = None
    limit: int | None = None
    image_root: str | None = None


@dataclass
class ValidationConfig:
    """``validation:`` of the training config.

    Attributes:
        eval_every: validate every this many optimiser steps (0 = never).
        tasks: what to validate on.
        best_metric: ``"<task>/<metric>"`` of the ``overall`` results (e.g. ``reason_seg/giou``,
            ``partonomy/macro_giou``) whose best value keeps ``checkpoints/best``; None keeps none.
        mode: ``max`` (higher is better) or ``min``.
        batch_size: questions per model call.
    """

    eval_every: int = 0
    tasks: list[ValidationTask] = field(default_factory=list)
    best_metric: str | None = None
    mode: Literal["max", "min"] = "max"
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.eval_every < 0:
            raise ConfigError(f"validation.eval_every must be >= 0, got {self.eval_every}")
        if self.eval_every and not self.tasks:
            raise ConfigError("validation.eval_every is set but validation.tasks is empty")
        if self.best_metric is not None:
            task = self.best_metric.partition("/")[0]
            if "/" not in self.best_metric or task not in {t.task for t in self.tasks}:
                raise ConfigError(
                    f"validation.best_metric {self.best_metric!r} must be '<task>/<metric>' of a "
                    f"validation task ({', '.join(t.task for t in self.tasks) or 'none'})"
                )


@dataclass(frozen=True)
class ValidationOutcome:
    """One validation: the logged metrics and whether it was the best so far."""

    step: int
    metrics: dict[str, Any]
    is_best: bool


def _run_one(spec: ValidationTask, predictor: Any, out: Path, batch_size: int) -> dict[str, Any]:
    if spec.task == "partonomy":
        from partonomy.eval.harness import EvalConfig, run_eval

        if spec.splits:
            raise ConfigError("validation: the partonomy task takes a QA file, not splits")
        cfg = EvalConfig(
            model="plum",
            qa_file=spec.data,
            out=str(out),
            batch_size=batch_size,
            limit=spec.limit,
            image_root=spec.image_root,
            overwrite=True,
            progress=False,
        )
        return run_eval(cfg, model=predictor).results
    from partonomy.tasks.base import TaskOptions
    from partonomy.tasks.harness import TaskEvalConfig, run_task_eval

    options = TaskOptions(
        splits=tuple(spec.splits) if spec.splits else None,
        image_root=spec.image_root,
        limit=spec.limit,
    )
    task_cfg = TaskEvalConfig(
        task=spec.task,
        model="plum",
        data=spec.data,
        out=str(out),
        options=options,
        batch_size=batch_size,
        overwrite=True,
        progress=False,
    )
    return run_task_eval(task_cfg, model=predictor).results


def _rates(task: str, results: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{task}/{k}": v for k, v in results["overall"].items() if not k.startswith(COUNT_PREFIX)
    }


def _better(value: Any, best: Any, mode: str) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return bool(value > best) if mode == "max" else bool(value < best)


def evaluate_model(
    cfg: ValidationConfig, model: Any, processor: Any, out_dir: Path
) -> dict[str, Any]:
    """Every validation task's ``overall`` rates, keyed ``"<task>/<metric>"``."""
    from partonomy.models.core.predictor import SegPredictor

    was_training = model.training
    try:
        predictor = SegPredictor(model, processor, batch_size=cfg.batch_size)  # sets eval mode
        metrics: dict[str, Any] = {}
        for spec in cfg.tasks:
            results = _run_one(spec, predictor, out_dir / spec.task, cfg.batch_size)
            metrics.update(_rates(spec.task, results))
        return metrics
    finally:
        model.train(was_training)


def _broadcast_flag(flag: bool, device: Any) -> bool:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    tensor = torch.tensor([int(flag)], device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def maybe_validate(
    step: int,
    model: Any,
    processor: Any,
    cfg: ValidationConfig,
    run_dir: str | Path,
    *,
    save_best: Callable[[str], Path],
    is_main: bool = True,
    device: Any = "cpu",
) -> ValidationOutcome | None:
    """Validate at ``step`` if it is due; keep ``checkpoints/best`` if it is the best so far.

    Args:
        step: the optimiser step just finished.
        model: the (unwrapped) :class:`~partonomy.models.core.model.SegLMM`; put back in
            its train/eval mode afterwards.
        processor: its processor.
        cfg: the validation config.
        run_dir: the training run directory.
        save_best: the recipe's ``save_checkpoint`` (called with ``"best"`` on every process).
        is_main: whether this process evaluates and writes the logs.
        device: device of the broadcast tensor (the accelerator's).

    Returns:
        The outcome on the main process (None when not due, and on the other processes).
    """
    if not cfg.eval_every or step % cfg.eval_every:
        return None
    run_dir = Path(run_dir)
    metrics: dict[str, Any] = {}
    is_best = False
    best_path = run_dir / "validation" / BEST_FILE
    if is_main:
        metrics = evaluate_model(cfg, model, processor, run_dir / "validation" / f"step_{step:07d}")
        with JsonlAppender(run_dir / VALIDATION_LOG) as out:
            out.write({"step": step, **metrics})
        log.info("validation at step %d: %s", step, metrics)
        if cfg.best_metric is not None:
            if cfg.best_metric not in metrics:
                raise ConfigError(
                    f"validation.best_metric {cfg.best_metric!r} is not among the metrics "
                    f"({', '.join(sorted(metrics))})"
                )
            best = json.loads(best_path.read_text()) if best_path.exists() else {}
            is_best = _better(metrics[cfg.best_metric], best.get("value"), cfg.mode)
    if cfg.best_metric is not None:
        is_best = _broadcast_flag(is_best, device)
        if is_best:
            path = save_best(BEST_CHECKPOINT)
            if is_main:
                atomic_write_json(
                    best_path,
                    {
                        "metric": cfg.best_metric,
                        "mode": cfg.mode,
                        "step": step,
                        "value": metrics[cfg.best_metric],
                        "checkpoint": str(path),
                    },
                )
    return ValidationOutcome(step, metrics, is_best) if is_main else None


def example_overlays(cfg: ValidationConfig, run_dir: str | Path, step: int) -> dict[str, Any]:
    """Example overlays of a validation step, for the trackers: per ``partonomy`` task, the
    masks-beside-ground-truth sheet of its first questions (:mod:`partonomy.eval.examples`) as an
    ``(H, W, 3)`` uint8 array; empty when no task writes masks."""
    import numpy as np
    from PIL import Image

    from partonomy.eval.examples import write_examples
    from partonomy.io.predictions import load_predictions
    from partonomy.io.qa_pairs import load_qa_pairs

    out: dict[str, Any] = {}
    step_dir = Path(run_dir) / "validation" / f"step_{step:07d}"
    for spec in cfg.tasks:
        if spec.task != "partonomy":
            continue
        predictions = step_dir / spec.task / "predictions.jsonl"
        if not predictions.exists():
            continue
        sheet = write_examples(
            step_dir / spec.task / "examples.png",
            load_qa_pairs(spec.data),
            load_predictions(predictions),
            qa_file=spec.data,
            n=4,
            title=f"ground truth | step {step}",
        )
        if sheet is not None:
            with Image.open(sheet) as img:
                out[spec.task] = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return out
