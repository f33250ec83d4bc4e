"""The typed config of ``partonomy train`` (every YAML in configs/ is an instance of it).

``family`` names the model family (``plum``, ``lisa``, ``glamm``; see ``partonomy ls families``),
which types the ``model`` section (its config, e.g.
:class:`~partonomy.models.plum.config.PlumConfig`), the ``trainable`` section (its
:class:`~partonomy.models.core.trainable.TrainableSpec` subclass) and the loss terms that
``loss.weights`` may set. Other sections: ``loss``, ``optim``
(:class:`~partonomy.training.schedule.OptimConfig`), ``data``
(:class:`~partonomy.training.data.DataConfig`), ``distributed``
(:class:`~partonomy.training.distributed.DistributedConfig`), ``checkpoint``, ``log``, plus the
run-level keys below. Unknown keys are errors; ``key.sub=value`` overrides are YAML-typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from partonomy.config import from_dict, load_config, to_dict
from partonomy.errors import ConfigError
from partonomy.training.data import DataConfig
from partonomy.training.distributed import DistributedConfig, Precision
from partonomy.training.schedule import OptimConfig
from partonomy.training.speed import SpeedConfig  # issue 12: opt-in speed paths
from partonomy.training.validation import ValidationConfig  # issue 11: validation during training


@dataclass
class LossConfig:
    """Loss weights and variants.

    Attributes:
        weights: term name -> weight, overriding the family's defaults (its published recipe:
            PLUM ``lm 1, bio 2, seg 8, bce 2, kl 0``; LISA / GLaMM ``lm 1, bce 2, seg 0.5``). The
            names are the family's loss terms (:mod:`partonomy.models.core.losses`); ``kl`` > 0
            uses the LM with its LoRA adapters switched off as the frozen teacher, so it needs
            ``trainable.language_model: lora``.
        seg_loss: the ``seg`` term: ``dice`` (stage 1, LISA, GLaMM) or ``focal_tversky`` (PLUM
            stage 2).
        dice_scale: divisor of the Dice loss's pixel sums: 1000 as in the original (made for
            1024-pixel SAM inputs); 1 is the plain soft Dice, which small images need (at 64
            pixels the original's +1 smoothing swamps the overlap term).
        lm_tokens: which tokens the LM loss covers: ``answer`` (assistant answers, the original)
            or ``conversation`` (every text token: system prompt, questions and answers).
    """

    weights: dict[str, float] = field(default_factory=dict)
    seg_loss: Literal["dice", "focal_tversky"] = "dice"
    dice_scale: float = 1000.0
    lm_tokens: Literal["answer", "conversation"] = "answer"

    def __post_init__(self) -> None:
        for name, value in self.weights.items():
            if value < 0:
                raise ConfigError(f"loss.weights.{name} must be >= 0, got {value}")
        if self.dice_scale <= 0:
            raise ConfigError(f"loss.dice_scale must be positive, got {self.dice_scale}")


@dataclass
class CheckpointConfig:
    """When and what to save.

    Attributes:
        every: save a resumable checkpoint every this many optimiser steps (0 = only at the end).
        keep_last: keep only the newest ``keep_last`` step checkpoints (0 = keep all).
        save_base: also save the frozen weights: ``auto`` = when a backbone is randomly
            initialised (so the checkpoint is self-contained), ``always`` or ``never``.
    """

    every: int = 500
    keep_last: int = 2
    save_base: Literal["auto", "always", "never"] = "auto"


@dataclass
class LogConfig:
    """Logging: per-step losses go to ``<run_dir>/train_log.jsonl`` and to the dashboards.

    Attributes:
        every: write a JSONL record (and log it to the trackers) every this many optimiser steps.
        progress: show a tqdm progress bar with the loss terms (rank 0 only).
        trackers: accelerate trackers (:mod:`partonomy.training.tracking`): ``tensorboard``
            (``<run_dir>/tensorboard``; ``tensorboard --logdir`` it) and/or ``wandb`` (needs the
            wandb package); ``[]`` for none.
        timing: add each step's time split to its record (``t_data``, ``t_forward``,
            ``t_backward``, ``t_step``: data, forward + losses, backward (with DDP's gradient
            all-reduce), clipping + optimiser step; main process). Synchronises the device at
            each phase, so it slows training a little; for finding where a step's time goes.
    """

    every: int = 1
    progress: bool = True
    timing: bool = False
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])

    def __post_init__(self) -> None:
        from partonomy.training.tracking import check_trackers

        self.trackers = check_trackers(self.trackers)


@dataclass
class TrainConfig:
    """One training run of a segmentation LMM.

    Attributes:
        family: the model family (typing ``model`` and ``trainable``).
        run_dir: output directory (log, checkpoints, final model).
        seed: seed of data order and of the torch RNG (dropout); model init has ``model.seed``.
        max_steps: optimiser steps to run in total (the schedule decays to 0 at this step).
        grad_accum: micro-batches per optimiser step (per process).
        precision: ``auto`` (bf16 autocast on a bf16-capable GPU, else fp32), ``bf16`` or ``fp32``.
        gradient_checkpointing: recompute the LM's activations in backward (saves memory).
        resume: ``null`` (fresh run; refuses a run_dir that already holds checkpoints),
            ``auto`` (continue from the newest checkpoint in run_dir if any) or a checkpoint dir.
        init_from: a checkpoint (or run) directory whose weights start this run, e.g. stage 2
            from stage 1. Only weights are taken (not the optimiser, schedule or step); saved
            tensors this model lacks are skipped with a warning. Ignored when resuming.
        span_source: spans that select SAM prompts in training: the ground-truth BIO spans
            (``target``, as the original) or the tagger's predictions.
        cpu: run on CPU even if a GPU is present.
        deterministic: ``true``: ``torch.use_deterministic_algorithms`` in warn-only mode (ops
            without a deterministic kernel still run) and a fixed cuBLAS workspace, so that reruns
            and resumed runs give the same losses on GPUs as far as the kernels allow.
            ``strict``: the same without warn-only, which also switches SDPA's attention backward
            to its deterministic algorithm (bit-exact resumes on GPUs); an op that has no
            deterministic kernel then raises. Slower; off by default.
        num_threads: intra-op CPU threads of torch in this process (None: torch's default).
            Tiny models are dominated by per-operation overhead, and with more threads than
            free cores OpenMP barriers can slow each step tenfold, so the tiny config uses 1.
        stop_after: end this invocation once this many optimiser steps are done in total, with
            a resumable checkpoint (e.g. to fit a job time limit); the schedule still runs to
            ``max_steps`` when resumed. None = run to ``max_steps``.
    """

    family: str = "plum"
    run_dir: str = "runs/plum"
    seed: int = 0
    max_steps: int = 100
    grad_accum: int = 1
    precision: Precision = "auto"
    gradient_checkpointing: bool = False
    resume: str | None = None
    init_from: str | None = None
    span_source: Literal["target", "predicted"] = "target"
    cpu: bool = False
    deterministic: bool | Literal["strict"] = False
    num_threads: int | None = None
    stop_after: int | None = None
    model: Any = None
    trainable: Any = None
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)  # issue 11
    speed: SpeedConfig = field(default_factory=SpeedConfig)  # issue 12

    def __post_init__(self) -> None:
        from partonomy.models.core.family import get_family
        from partonomy.models.core.losses import resolve_weights

        family = get_family(self.family)
        self.model = _section(family.config_type, self.model, "model")
        self.trainable = _section(family.trainable_type, self.trainable, "trainable")
        resolve_weights(family.loss_terms, self.loss.weights)  # unknown term names are errors
        if self.max_steps <= 0:
            raise ConfigError(f"max_steps must be positive, got {self.max_steps}")
        if self.grad_accum <= 0:
            raise ConfigError(f"grad_accum must be positive, got {self.grad_accum}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1, got {self.num_threads}")
        if self.checkpoint.every < 0 or self.log.every <= 0:
            raise ConfigError("checkpoint.every must be >= 0 and log.every > 0")
        if self.speed.bf16_weights and self.precision == "fp32":
            raise ConfigError(
                "speed.bf16_weights trains bf16 weights, but precision is fp32; set precision "
                "to auto or bf16, or drop speed.bf16_weights"
            )
        if self.speed.bf16_weights and self.distributed.engine == "deepspeed_zero2":
            raise ConfigError(
                "speed.bf16_weights is not supported with distributed.engine: deepspeed_zero2 "
                "(its bf16 mode keeps fp32 master weights of its own); use ddp or fsdp"
            )


def _section(cls: type, value: Any, where: str) -> Any:
    """A family-typed section from a dict (YAML), an instance, or None (the type's defaults)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: expected a mapping or a {cls.__name__}, got {type(value).__name__}"
        )
    return from_dict(cls, value, source=where)


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a training YAML and apply ``key.sub=value`` overrides.

    Raises:
        ConfigError: unknown key, wrong type or invalid value (the message names the key).
        FormatError: the file is not valid YAML (names the line).
    """
    return load_config(TrainConfig, path, overrides)


def dump_train_config(cfg: TrainConfig) -> str:
    """The config as YAML text (what a checkpoint stores; loads back to an equal config)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
