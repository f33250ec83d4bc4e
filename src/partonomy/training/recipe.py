"""The training recipe behind ``partonomy train``: setup / train / save_checkpoint / cleanup.

Every family (PLUM, LISA, GLaMM...) trains through this one recipe: the config's ``family`` gives
the builder, the trainable spec and the loss terms. One visible loop in :meth:`TrainRecipe.train`::

    for each optimiser step:
        for each of grad_accum micro-batches:
            forward -> the family's loss terms -> backward
        clip -> optimizer.step -> scheduler.step (once) -> log (JSONL + progress bar)
        every checkpoint.every steps: save_checkpoint

Stage 1 and stage 2 (and the tiny Synth run) are configs of this same recipe. Single process or
one process per device (``torchrun``); DDP / FSDP / DeepSpeed come from accelerate
(:mod:`partonomy.training.distributed`). A run is resumable exactly: weights, optimiser and
schedule state, RNG states and the data position are in every checkpoint, and a resumed run
reproduces the per-step losses of an uninterrupted one.

Run directory::

    <run_dir>/config.yaml          the resolved config
    <run_dir>/train_log.jsonl      one record per logged step: step, lr, loss terms, grad_norm, ...
    <run_dir>/checkpoints/step_*/  resumable checkpoints (newest ``keep_last`` kept)
    <run_dir>/checkpoints/final/   the last step (``partonomy eval --model-opt checkpoint=...``)
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from partonomy.config import to_dict
from partonomy.data.sample import TrainingSample
from partonomy.errors import ConfigError
from partonomy.io.atomic import atomic_write_text
from partonomy.models.core.family import get_family
from partonomy.models.core.losses import compute_losses, resolve_weights, teacher_hidden_states
from partonomy.models.core.model import SegLMM
from partonomy.models.core.trainable import log_trainable, set_trainable
from partonomy.training import checkpoint as ckpt
from partonomy.training.batches import Batches, touch_outputs
from partonomy.training.config import TrainConfig, dump_train_config
from partonomy.training.data import load_samples, sample_lengths
from partonomy.training.distributed import engine_autocast, engine_in_use, make_accelerator
from partonomy.training.engine_state import full_params, load_optimizer, save_optimizer
from partonomy.training.model import (
    build_model,
    embedding_row_subsets,
    init_from_checkpoint,
    master_weights_fp32,
    random_init_backbone,
)
from partonomy.training.resume import (
    FINAL,
    check_same_model,
    check_same_trainable,
    check_same_world,
    resume_source,
    truncate_log,
)
from partonomy.training.sampler import BatchPlan
from partonomy.training.schedule import build_optimizer, build_scheduler
from partonomy.training.speed import TrainingSpeed
from partonomy.training.step_log import StepLog
from partonomy.training.step_stats import PhaseTimer, reduce_mean, step_usage
from partonomy.training.tracking import TrainTrackers
from partonomy.training.validation import maybe_validate

log = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "config.yaml"


@dataclass
class TrainResult:
    """What a finished run returns.

    Attributes:
        run_dir: the run directory.
        final_checkpoint: ``<run_dir>/checkpoints/final``, or the step checkpoint this
            invocation stopped at (``stop_after``).
        steps: optimiser steps done in total (including those before a resume).
        records: the per-step log records written by this invocation (rank 0; else empty).
        seconds: wall time of :meth:`TrainRecipe.train`.
    """

    run_dir: Path
    final_checkpoint: Path
    steps: int
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class TrainRecipe:
    """Train a segmentation LMM as ``cfg`` says.

    Features: LoRA through peft (or a fully trained LM for tiny random models), the trainable
    rule of :func:`~partonomy.models.core.trainable.set_trainable`, AdamW with warmup and linear
    decay stepped once per update, gradient accumulation and clipping, bf16 autocast on GPUs,
    DDP / FSDP / DeepSpeed ZeRO-2 through accelerate, atomic checkpoints of the trained weights
    with exact resume, a JSONL loss log and a tqdm bar.

    Raises:
        ConfigError: an invalid combination of settings, a run directory that already holds
            checkpoints without ``resume``, missing data, or a missing optional engine.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.step = 0
        self.data_pos = 0  # global micro-batches consumed
        self._prior_determinism: tuple[bool, bool] | None = None  # restored by cleanup()
        self.family = get_family(cfg.family)
        self.loss_terms = self.family.loss_terms
        self.weights = resolve_weights(self.loss_terms, cfg.loss.weights)
        self.needs_teacher = any(
            term.needs_teacher and self.weights[name] > 0 for name, term in self.loss_terms.items()
        )

    @property
    def log_terms(self) -> list[str]:
        """The logged loss names: ``total`` and every term of the family."""
        return ["total", *self.loss_terms]

    # ---------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        """Build the accelerator, model, data, optimiser and schedule; restore a checkpoint.

        The cheap steps come first, so that a mistake in the config or the data fails in seconds
        rather than after a 7B/13B model is built: config checks, the data index (images and
        masks are read only when a batch needs them), the runtime (accelerator, determinism);
        then the model, the batches, the optimiser, and the run directory (resumed or new).
        """
        self._check_config()
        self.samples: Sequence[TrainingSample] = load_samples(self.cfg.data)
        self._setup_runtime()
        resume_from = resume_source(self.cfg, self.ckpt_dir)
        model = self._setup_model(resume_from)
        self.batches = self._setup_batches(model)
        self._setup_optimizer(model)
        self._start_or_resume(resume_from)

    def _check_config(self) -> None:
        if self.needs_teacher and self.cfg.trainable.language_model != "lora":
            raise ConfigError(
                "loss.weights.kl > 0 uses the LM without its LoRA adapters as the teacher, so it "
                "needs trainable.language_model: lora"
            )

    def _setup_runtime(self) -> None:
        """Threads, the accelerator (engine, precision, this process's rank) and determinism."""
        cfg = self.cfg
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        self.accelerator = acc = make_accelerator(
            cfg.distributed,
            # With speed.bf16_weights every parameter is bf16: nothing is left for autocast to do.
            precision="fp32" if cfg.speed.bf16_weights else cfg.precision,
            grad_accum=cfg.grad_accum,
            micro_batch=cfg.data.micro_batch_size,
            max_grad_norm=cfg.optim.max_grad_norm,
            cpu=cfg.cpu,
        )
        self.rank, self.world = acc.process_index, acc.num_processes
        self.is_main = acc.is_main_process
        if cfg.distributed.engine == "fsdp" and engine_in_use(acc) != "fsdp" and self.world > 1:
            log.warning("accelerate did not enable FSDP; running DDP instead")
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            # Process-wide torch state: cleanup() puts back what was there before.
            self._prior_determinism = (
                torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
            )
            torch.use_deterministic_algorithms(True, warn_only=cfg.deterministic != "strict")

    def _setup_model(self, resume_from: Path | None) -> SegLMM:
        """The model on this process's device: trainable parameters chosen, master weights,
        gradient checkpointing, and the weights of ``init_from`` or of the resumed checkpoint."""
        cfg, acc = self.cfg, self.accelerator
        # Built where it trains: no host copy of a 7B/13B model, and the random initialisation
        # (seeded by model.seed) is the same in every process. The builders reseed every device,
        # so this process's own seed (dropout) is set after the build.
        with torch.device(acc.device):
            model, self.processor = build_model(cfg)
        torch.manual_seed(cfg.seed + self.rank)
        self.new_token_ids = ckpt.processor_new_token_ids(self.processor)
        self.trainable = set_trainable(model, cfg.trainable, new_token_ids=self.new_token_ids)
        log_trainable(model, self.trainable)
        fsdp = engine_in_use(acc) == "fsdp"
        if cfg.speed.bf16_weights:  # the trained parameters too: no fp32 master weights
            model.to(torch.bfloat16)
        else:
            master_weights_fp32(
                model, self.trainable, fsdp_wrap=cfg.distributed.fsdp_wrap if fsdp else None
            )
        self.row_subsets = embedding_row_subsets(cfg, self.trainable, self.new_token_ids)
        if cfg.gradient_checkpointing:
            model.llava.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        if cfg.init_from is not None and resume_from is None:
            init_from_checkpoint(model, cfg.init_from)
        if resume_from is not None:
            check_same_model(resume_from, cfg)
            check_same_trainable(resume_from, self.trainable)
            ckpt.load_weights(model, resume_from)
        model.train()
        self.speed = TrainingSpeed(cfg.speed, model, acc.device)  # issue 12: opt-in speed paths
        return model

    def _setup_batches(self, model: SegLMM) -> Any:
        """The batch plan (a pure function of position: resume and rank slicing need nothing
        else) and this process's micro-batches, prefetched when ``speed`` says so."""
        cfg = self.cfg
        self.plan = BatchPlan(
            n_samples=len(self.samples),
            micro_batch_size=cfg.data.micro_batch_size,
            world_size=self.world,
            seed=cfg.seed,
            shuffle=cfg.data.shuffle,
            lengths=tuple(sample_lengths(self.samples)) if cfg.data.group_by_length else None,
            group_window=cfg.data.group_window,
        )
        batches = Batches(
            self.samples,
            self.processor,
            self.plan,
            rank=self.rank,
            cache=cfg.data.cache_encoded,
            all_occurrences=cfg.data.all_occurrences,
            lm_tokens=cfg.loss.lm_tokens,
            image_token_id=model.image_token_id,
            content_keys=self.speed.content_keys,
        )
        return self.speed.batches(batches)  # issue 12: prefetching, when on

    def _setup_optimizer(self, model: SegLMM) -> None:
        """Optimiser and schedule; the accelerator wraps the model for its engine."""
        cfg = self.cfg
        optimizer = build_optimizer(model.parameters(), cfg.optim, fused=cfg.speed.fused_adam)
        self.scheduler = build_scheduler(optimizer, cfg.optim, cfg.max_steps)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.engine = engine_in_use(self.accelerator)
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def _start_or_resume(self, resume_from: Path | None) -> None:
        """Restore the stopped run's state, or start a fresh log; write the run's config."""
        cfg = self.cfg
        if resume_from is not None:
            self.restore_state(resume_from)
        elif self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / LOG_FILE).unlink(missing_ok=True)
        if self.is_main:
            atomic_write_text(self.run_dir / CONFIG_FILE, dump_train_config(cfg))
        self.accelerator.wait_for_everyone()
        log.info(
            "engine %s, %d process(es), %d samples, %d batches/epoch, steps %d -> %d",
            self.engine,
            self.world,
            len(self.samples),
            self.plan.batches_per_epoch,
            self.step,
            cfg.max_steps,
        )

    def restore_state(self, path: Path) -> None:
        """Continue from checkpoint ``path``: optimiser, schedule position, step, data position,
        every process's RNG state; drop the stopped run's log records after that step."""
        state = ckpt.read_resume(path)
        check_same_world(path, state, self.world)
        load_optimizer(
            self.engine,
            self.accelerator,
            self.model,
            self.optimizer,
            path / ckpt.ENGINE_STATE,
            state.get("optimizer"),
        )
        # Keep this config's schedule function (a changed max_steps extends the decay); take
        # only the position (last step, base rates) from the checkpoint.
        scheduler_state = dict(state["scheduler"])
        scheduler_state["lr_lambdas"] = [None] * len(scheduler_state["lr_lambdas"])
        self.scheduler.load_state_dict(scheduler_state)
        self.step = int(state["step"])
        self.data_pos = int(state["data_position"])
        ckpt.restore_rng(path, self.rank)
        if self.is_main:
            truncate_log(self.run_dir / LOG_FILE, self.step)
        log.info("resumed from %s at step %d", path, self.step)

    # ----------------------------------------------------------------------------------- data
    def next_batch(self) -> Any:
        """This process's next micro-batch (advances the data position), on the device."""
        batch = self.batches.batch(self.data_pos)
        self.data_pos += 1
        return self.speed.attach(batch.to(self.accelerator.device))

    # ---------------------------------------------------------------------------------- train
    def train(self) -> TrainResult:
        """The loop: forward -> loss terms -> backward -> step -> log, until ``max_steps``."""
        cfg, acc = self.cfg, self.accelerator
        unwrapped = acc.unwrap_model(self.model)
        steps = StepLog(
            self.run_dir / LOG_FILE,
            every=cfg.log.every,
            shown=[k for k in self.log_terms if k == "total" or self.weights[k] > 0],
            trackers=(
                TrainTrackers(
                    cfg.log.trackers, self.run_dir, config=to_dict(cfg), loss_terms=self.log_terms
                )
                if self.is_main and cfg.log.trackers
                else None
            ),
            initial=self.step,
            total=cfg.max_steps,
            progress=cfg.log.progress,
            active=self.is_main,
        )
        timer = PhaseTimer(acc.device, cfg.log.timing)
        start = time.perf_counter()
        target = cfg.max_steps if cfg.stop_after is None else min(cfg.max_steps, cfg.stop_after)
        last: Path | None = None
        try:
            while self.step < target:
                lr = self.scheduler.get_last_lr()[0]
                if acc.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(acc.device)
                timer.start()
                sums, n_masks, norm, tokens = self._accumulate(unwrapped, timer, target)
                self.scheduler.step()  # once per optimiser step (the original stepped twice)
                self.step += 1
                record = self._step_record(sums, n_masks, norm, tokens, lr, started=start)
                steps.step({**record, **timer.record()})
                every = cfg.checkpoint.every
                periodic = bool(every) and self.step % every == 0
                if self.step < cfg.max_steps and (periodic or self.step == target):
                    last = self.save_checkpoint(ckpt.step_dir_name(self.step))
                # Validation during training (partonomy.training.validation), also to trackers.
                validated = maybe_validate(
                    self.step,
                    unwrapped,
                    self.processor,
                    cfg.validation,
                    self.run_dir,
                    save_best=self.save_checkpoint,
                    is_main=self.is_main,
                    device=acc.device,
                )
                if validated is not None:
                    steps.validation(self.step, validated.metrics, cfg.validation, self.run_dir)
            if self.step >= cfg.max_steps:
                last = self.save_checkpoint(FINAL)
            elif last is None:  # stop_after was already reached by the run we resumed
                last = self.save_checkpoint(ckpt.step_dir_name(self.step))
        finally:
            steps.close()
        assert last is not None  # the loop above always saves one
        return TrainResult(
            run_dir=self.run_dir,
            final_checkpoint=last,
            steps=self.step,
            records=steps.records,
            seconds=time.perf_counter() - start,
        )

    def _accumulate(
        self, unwrapped: Any, timer: PhaseTimer, target: int
    ) -> tuple[dict[str, float], int, Any, torch.Tensor]:
        """One optimiser step over ``grad_accum`` micro-batches.

        Returns:
            The loss terms' means over the micro-batches (host floats), the number of masks,
            the clipped gradient norm (None when not clipped) and the count of real tokens
            (a device scalar: read once, at the step's end).
        """
        cfg, acc = self.cfg, self.accelerator
        sums = dict.fromkeys(self.log_terms, 0.0)
        n_masks, norm = 0, None
        tokens = torch.zeros((), dtype=torch.long, device=acc.device)
        for micro in range(cfg.grad_accum):
            batch = self.next_batch()
            tokens += batch.attention_mask.sum()  # no host sync until the step's end
            timer.mark("data")
            with acc.accumulate(self.model), self.speed.kernels():
                output = self.model(batch, span_source=cfg.span_source, lm_rows="labelled")
                with self.autocast():
                    teacher = (
                        teacher_hidden_states(unwrapped, batch) if self.needs_teacher else None
                    )
                losses = compute_losses(
                    self.loss_terms,
                    self.weights,
                    output,
                    batch,
                    seg_loss=cfg.loss.seg_loss,
                    teacher_hidden=teacher,
                    dice_scale=cfg.loss.dice_scale,
                )
                timer.mark("forward")
                acc.backward(losses.total + touch_outputs(output))
                timer.mark("backward")
                if acc.sync_gradients and cfg.optim.max_grad_norm > 0:
                    norm = acc.clip_grad_norm_(self.params, cfg.optim.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                timer.mark("step")
            if cfg.speed.prepare_ahead and (micro + 1 < cfg.grad_accum or self.step + 1 < target):
                # encode the next batch while the device works; as_floats below waits for it
                self.batches.prepare(self.data_pos)
            for name, value in losses.as_floats().items():
                sums[name] += value / cfg.grad_accum
            n_masks += losses.n_masks
        return sums, n_masks, norm, tokens

    def _step_record(
        self,
        sums: dict[str, float],
        n_masks: int,
        norm: Any,
        tokens: torch.Tensor,
        lr: float | torch.Tensor,
        *,
        started: float,
    ) -> dict[str, Any]:
        """The step's log record: loss means over every process, rate, memory and throughput.

        Raises:
            FloatingPointError: the mean total loss is not finite.
        """
        means = reduce_mean(self.accelerator, sums)
        usage = step_usage(self.accelerator, int(tokens))
        grad_norm = float(norm) if norm is not None else float("nan")
        if not math.isfinite(means["total"]):
            raise FloatingPointError(
                f"step {self.step}: the loss is {means['total']} (lower optim.lr, or check "
                "the data); the last good checkpoint is in " + str(self.ckpt_dir)
            )
        return {
            "step": self.step,
            "lr": lr,
            **{k: means[k] for k in self.log_terms},
            "n_masks": n_masks,
            "grad_norm": grad_norm if math.isfinite(grad_norm) else None,
            "epoch": round(self.plan.epoch_of(self.data_pos), 4),
            "time": round(time.perf_counter() - started, 3),
            **usage,
        }

    def autocast(self) -> Any:
        """bf16 autocast for forwards outside the engine (see ``engine_autocast``)."""
        return engine_autocast(self.accelerator, self.cfg.precision)

    # ----------------------------------------------------------------------------- checkpoint
    def save_checkpoint(self, name: str) -> Path:
        """Write ``<run_dir>/checkpoints/<name>`` atomically (every process must call this).

        Holds the trained weights (plus the frozen ones when a backbone is random-init and
        ``checkpoint.save_base`` is ``auto``), the config, and the resume state.
        """
        cfg, acc = self.cfg, self.accelerator
        path = self.ckpt_dir / name
        tmp = path.parent / f".{path.name}.tmp"
        save_base = cfg.checkpoint.save_base == "always" or (
            cfg.checkpoint.save_base == "auto" and random_init_backbone(cfg)
        )
        with full_params(self.engine, acc, self.model) as params:
            if self.is_main:
                ckpt.begin(path)
                ckpt.write_model_files(
                    tmp,
                    params=params,
                    step=self.step,
                    trainable=self.trainable,
                    row_subsets=self.row_subsets,
                    config_yaml=dump_train_config(cfg),
                    save_base=save_base,
                    has_resume=True,
                )
        acc.wait_for_everyone()  # rank 0 created tmp
        optimizer_state = save_optimizer(
            self.engine, acc, self.model, self.optimizer, tmp / ckpt.ENGINE_STATE
        )
        if self.is_main:
            state: dict[str, Any] = {
                "step": self.step,
                "data_position": self.data_pos,
                "world_size": self.world,
                "scheduler": self.scheduler.state_dict(),
            }
            if optimizer_state is not None:
                state["optimizer"] = optimizer_state
            ckpt.write_resume(tmp, state)
        ckpt.write_rng(tmp, self.rank)
        acc.wait_for_everyone()
        if self.is_main:
            ckpt.commit(tmp, path)
            if name != FINAL:
                ckpt.prune(self.ckpt_dir, cfg.checkpoint.keep_last)
        acc.wait_for_everyone()
        return path

    # -------------------------------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        """Release the process group and free cached encodings."""
        if hasattr(self, "batches"):
            self.batches.clear()
        if self._prior_determinism is not None:
            enabled, warn_only = self._prior_determinism
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
            self._prior_determinism = None
        acc = getattr(self, "accelerator", None)
        if acc is not None:
            acc.end_training()
            if self.world > 1 and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            # accelerate keeps one process-wide state whose mixed precision cannot change; forget
            # it so that a later run in this process (a notebook, a sweep, the tests) may pick
            # another precision. The process state (device, process group) is kept.
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state()


def run_training(cfg: TrainConfig) -> TrainResult:
    """Run the recipe end to end: setup, train, cleanup."""
    recipe = TrainRecipe(cfg)
    try:
        recipe.setup()
        return recipe.train()
    finally:
        recipe.cleanup()
