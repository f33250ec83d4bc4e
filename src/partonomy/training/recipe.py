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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from partonomy.config import to_dict
from partonomy.data.sample import TrainingSample
from partonomy.errors import ConfigError
from partonomy.io.atomic import JsonlAppender, atomic_write_text, read_jsonl_tolerant
from partonomy.models.core.family import get_family
from partonomy.models.core.losses import compute_losses, resolve_weights, teacher_hidden_states
from partonomy.models.core.trainable import EMBEDDING_PATH, set_trainable
from partonomy.training import checkpoint as ckpt
from partonomy.training.batches import Batches, touch_outputs
from partonomy.training.config import TrainConfig, dump_train_config
from partonomy.training.data import load_samples
from partonomy.training.distributed import engine_autocast, engine_in_use, make_accelerator
from partonomy.training.model import build_model, random_init_backbone
from partonomy.training.sampler import BatchPlan
from partonomy.training.schedule import build_optimizer, build_scheduler
from partonomy.training.speed import TrainingSpeed
from partonomy.training.tracking import TrainTrackers
from partonomy.training.validation import example_overlays, maybe_validate

log = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "config.yaml"
FINAL = "final"


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
        """Build the accelerator, model, data, optimiser and schedule; restore a checkpoint."""
        cfg = self.cfg
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        if self.needs_teacher and cfg.trainable.language_model != "lora":
            raise ConfigError(
                "loss.weights.kl > 0 uses the LM without its LoRA adapters as the teacher, so it "
                "needs trainable.language_model: lora"
            )
        self.accelerator = acc = make_accelerator(
            cfg.distributed,
            precision=cfg.precision,
            grad_accum=cfg.grad_accum,
            micro_batch=cfg.data.micro_batch_size,
            max_grad_norm=cfg.optim.max_grad_norm,
            cpu=cfg.cpu,
        )
        self.rank, self.world = acc.process_index, acc.num_processes
        self.is_main = acc.is_main_process
        if cfg.distributed.engine == "fsdp" and engine_in_use(acc) != "fsdp" and self.world > 1:
            log.warning("FSDP needs CUDA devices; running DDP on this machine instead")
        resume_from = self._resume_source()
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)

        # Built where it trains: no host copy of a 7B/13B model, and the random initialisation
        # (seeded by model.seed) is the same in every process. The builders reseed every device,
        # so this process's own seed (dropout) is set after the build.
        with torch.device(acc.device):
            model, self.processor = build_model(cfg)
        torch.manual_seed(cfg.seed + self.rank)
        self.new_token_ids = ckpt.processor_new_token_ids(self.processor)
        self.trainable = set_trainable(model, cfg.trainable, new_token_ids=self.new_token_ids)
        # Trained parameters are fp32 master weights (bf16 compute comes from autocast or the
        # engine's mixed precision); the frozen ones keep the config's dtype. FSDP flattens frozen
        # and trained parameters of a layer into one buffer, which needs a single dtype: there
        # the whole model is fp32 and FSDP's mixed precision all-gathers it in bf16.
        uniform = engine_in_use(acc) == "fsdp"
        for name, param in model.named_parameters():
            if (uniform or name in self.trainable) and param.dtype != torch.float32:
                param.data = param.data.float()
        embed_name = EMBEDDING_PATH + ".weight"
        lm_full = cfg.trainable.language_model == "full"
        self.row_subsets: dict[str, list[int]] = (
            {embed_name: self.new_token_ids}
            if cfg.trainable.embeddings == "new_rows"
            and not lm_full
            and embed_name in self.trainable
            else {}
        )
        if cfg.gradient_checkpointing:
            model.llava.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        if cfg.init_from is not None and resume_from is None:
            source = ckpt.resolve_checkpoint(cfg.init_from)
            skipped = ckpt.load_weights(model, source, strict=False)
            log.info("initialised from %s", source)
            if skipped:
                log.warning(
                    "init_from %s: %d saved tensor(s) are not in this model and were skipped "
                    "(e.g. %s)",
                    source,
                    len(skipped),
                    skipped[0],
                )
        if resume_from is not None:
            self._check_same_model(resume_from)
            manifest = ckpt.read_manifest(resume_from)
            if manifest.trainable != self.trainable:
                raise ConfigError(
                    f"{resume_from}: its trainable parameters differ from this config's "
                    "(the 'trainable' or 'model' section changed); resume with the same config"
                )
            ckpt.load_weights(model, resume_from, manifest)
        model.train()
        self.speed = TrainingSpeed(cfg.speed, model, acc.device)  # issue 12: opt-in speed paths

        self.samples: Sequence[TrainingSample] = load_samples(cfg.data)
        self.plan = BatchPlan(
            n_samples=len(self.samples),
            micro_batch_size=cfg.data.micro_batch_size,
            world_size=self.world,
            seed=cfg.seed,
            shuffle=cfg.data.shuffle,
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
        self.batches = self.speed.batches(batches)  # issue 12: prefetching, when on
        optimizer = build_optimizer(model.parameters(), cfg.optim, fused=cfg.speed.fused_adam)
        self.scheduler = build_scheduler(optimizer, cfg.optim, cfg.max_steps)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.engine = engine_in_use(acc)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if resume_from is not None:
            self._restore_state(resume_from)
        elif self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / LOG_FILE).unlink(missing_ok=True)
        if self.is_main:
            atomic_write_text(self.run_dir / CONFIG_FILE, dump_train_config(cfg))
        acc.wait_for_everyone()
        log.info(
            "engine %s, %d process(es), %d samples, %d batches/epoch, steps %d -> %d",
            self.engine,
            self.world,
            len(self.samples),
            self.plan.batches_per_epoch,
            self.step,
            cfg.max_steps,
        )

    def _resume_source(self) -> Path | None:
        cfg = self.cfg
        existing = ckpt.list_checkpoints(self.ckpt_dir)
        final = self.ckpt_dir / FINAL
        if cfg.resume is None:
            if existing or (final / ckpt.MANIFEST).exists():
                raise ConfigError(
                    f"{self.run_dir} already holds checkpoints: pass resume=auto to continue that "
                    "run, or choose another run_dir"
                )
            return None
        if cfg.resume == "auto":
            candidates = [p for _, p in existing if (p / ckpt.RESUME).exists()]
            if (final / ckpt.RESUME).exists():
                candidates.append(final)
            if not candidates:
                return None
            return max(candidates, key=lambda p: ckpt.read_manifest(p).step)
        path = ckpt.resolve_checkpoint(cfg.resume)
        if not (path / ckpt.RESUME).exists():
            raise ConfigError(f"resume={cfg.resume}: {path} holds no resume state")
        return path

    def _restore_state(self, path: Path) -> None:
        state = ckpt.read_resume(path)
        if state["world_size"] != self.world:
            raise ConfigError(
                f"{path} was written by {state['world_size']} process(es); resume with the same "
                f"number (this run has {self.world})"
            )
        if self.engine == "deepspeed":
            self.model.load_checkpoint(
                str(path / ckpt.ENGINE_STATE),
                tag="state",
                load_module_strict=False,
                load_optimizer_states=True,
                load_lr_scheduler_states=False,
            )
        elif self.engine == "fsdp":
            from accelerate.utils import load_fsdp_optimizer

            plugin = self.accelerator.state.fsdp_plugin
            load_fsdp_optimizer(
                plugin, self.accelerator, self.optimizer, self.model, str(path / ckpt.ENGINE_STATE)
            )
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        # Keep this config's schedule function (a changed max_steps extends the decay); take
        # only the position (last step, base rates) from the checkpoint.
        scheduler_state = dict(state["scheduler"])
        scheduler_state["lr_lambdas"] = [None] * len(scheduler_state["lr_lambdas"])
        self.scheduler.load_state_dict(scheduler_state)
        self.step = int(state["step"])
        self.data_pos = int(state["data_position"])
        ckpt.restore_rng(path, self.rank)
        if self.is_main:  # drop log records written after this checkpoint by the stopped run
            logfile = self.run_dir / LOG_FILE
            kept = [r for r in read_jsonl_tolerant(logfile) if r.get("step", 0) <= self.step]
            logfile.unlink(missing_ok=True)
            with JsonlAppender(logfile) as out:
                for record in kept:
                    out.write(record)
        log.info("resumed from %s at step %d", path, self.step)

    def _check_same_model(self, checkpoint: Path) -> None:
        """Refuse to resume ``checkpoint`` when its ``model`` section differs from this config's.

        Paths of pretrained weights and tokenizers are not compared: they are locations that
        legitimately change between machines (a wrong file still fails on tensor shapes).

        Raises:
            ConfigError: naming each differing ``model.*`` key with both values.
        """
        from partonomy.config import to_dict
        from partonomy.training.config import load_train_config

        saved = _flatten(to_dict(load_train_config(checkpoint / ckpt.CONFIG).model), "model")
        now = _flatten(to_dict(self.cfg.model), "model")
        changed = [
            f"{key}: {saved.get(key)!r} -> {now.get(key)!r}"
            for key in sorted(saved.keys() | now.keys())
            if saved.get(key) != now.get(key) and key.rsplit(".", 1)[-1] not in _LOCATION_KEYS
        ]
        if changed:
            raise ConfigError(
                f"{checkpoint} was trained with another model config ({'; '.join(changed)}). "
                "Resume with the checkpoint's config, or train into a new run_dir (the "
                f"quickstart: a new --out) or delete {self.run_dir}"
            )

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
        records: list[dict[str, Any]] = []
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            desc="train",
            unit="step",
            disable=not (self.is_main and cfg.log.progress),
            dynamic_ncols=True,
        )
        logfile = JsonlAppender(self.run_dir / LOG_FILE) if self.is_main else None
        if logfile is not None:
            logfile.open()
        trackers = (
            TrainTrackers(
                cfg.log.trackers,
                self.run_dir,
                config=to_dict(cfg),
                loss_terms=self.log_terms,
            )
            if self.is_main and cfg.log.trackers
            else None
        )
        start = time.perf_counter()
        target = cfg.max_steps if cfg.stop_after is None else min(cfg.max_steps, cfg.stop_after)
        last: Path | None = None
        try:
            while self.step < target:
                sums = dict.fromkeys(self.log_terms, 0.0)
                n_masks, grad_norm = 0, float("nan")
                lr = self.scheduler.get_last_lr()[0]
                tokens = 0
                if acc.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(acc.device)
                for _ in range(cfg.grad_accum):
                    batch = self.next_batch()
                    tokens += int(batch.attention_mask.sum())
                    with acc.accumulate(self.model), self.speed.kernels():
                        output = self.model(batch, span_source=cfg.span_source, lm_rows="labelled")
                        with self.autocast():
                            teacher = (
                                teacher_hidden_states(unwrapped, batch)
                                if self.needs_teacher
                                else None
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
                        acc.backward(losses.total + touch_outputs(output))
                        if acc.sync_gradients and cfg.optim.max_grad_norm > 0:
                            norm = acc.clip_grad_norm_(self.params, cfg.optim.max_grad_norm)
                            grad_norm = float(norm) if norm is not None else float("nan")
                        self.optimizer.step()
                        self.optimizer.zero_grad(set_to_none=True)
                    for name, value in losses.as_floats().items():
                        sums[name] += value / cfg.grad_accum
                    n_masks += losses.n_masks
                self.scheduler.step()  # once per optimiser step (the original stepped twice)
                self.step += 1
                means = self._reduce(sums)
                usage = self._usage(tokens)
                if not math.isfinite(means["total"]):
                    raise FloatingPointError(
                        f"step {self.step}: the loss is {means['total']} (lower optim.lr, or check "
                        "the data); the last good checkpoint is in " + str(self.ckpt_dir)
                    )
                record = {
                    "step": self.step,
                    "lr": lr,
                    **{k: means[k] for k in self.log_terms},
                    "n_masks": n_masks,
                    "grad_norm": grad_norm if math.isfinite(grad_norm) else None,
                    "epoch": round(self.plan.epoch_of(self.data_pos), 4),
                    "time": round(time.perf_counter() - start, 3),
                    **usage,
                }
                if self.is_main:
                    records.append(record)
                    if logfile is not None and self.step % cfg.log.every == 0:
                        logfile.write(record)
                        if trackers is not None:
                            trackers.log_step(record)
                    shown = [k for k in self.log_terms if k == "total" or self.weights[k] > 0]
                    bar.set_postfix({k: f"{means[k]:.3f}" for k in shown}, refresh=False)
                    bar.update(1)
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
                if validated is not None and trackers is not None:
                    trackers.log_validation(
                        self.step,
                        validated.metrics,
                        example_overlays(cfg.validation, self.run_dir, self.step),
                    )
            if self.step >= cfg.max_steps:
                last = self.save_checkpoint(FINAL)
            elif last is None:  # stop_after was already reached by the run we resumed
                last = self.save_checkpoint(ckpt.step_dir_name(self.step))
        finally:
            bar.close()
            if logfile is not None:
                logfile.close()
            if trackers is not None:
                trackers.close()
        assert last is not None  # the loop above always saves one
        return TrainResult(
            run_dir=self.run_dir,
            final_checkpoint=last,
            steps=self.step,
            records=records,
            seconds=time.perf_counter() - start,
        )

    def autocast(self) -> Any:
        """bf16 autocast for forwards outside the engine (see ``engine_autocast``)."""
        return engine_autocast(self.accelerator, self.cfg.precision)

    def _usage(self, tokens: int) -> dict[str, Any]:
        """``tokens``: LM tokens (attention-mask ones) of this step over all processes;
        ``peak_mem_gib``: each process's peak allocated GPU memory during the step (GPUs only)."""
        usage: dict[str, Any] = {"tokens": tokens}
        cuda = self.accelerator.device.type == "cuda"
        if self.world == 1:
            if cuda:
                usage["peak_mem_gib"] = [round(torch.cuda.max_memory_allocated() / 2**30, 2)]
            return usage
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
        local = torch.tensor([float(tokens), peak], device=self.accelerator.device)
        gathered = self.accelerator.gather(local[None]).reshape(-1, 2).tolist()
        usage["tokens"] = int(sum(row[0] for row in gathered))
        if cuda:
            usage["peak_mem_gib"] = [round(row[1], 2) for row in gathered]
        return usage

    def _reduce(self, values: dict[str, float]) -> dict[str, float]:
        """Mean of each loss term over processes (identity for one process)."""
        if self.world == 1:
            return values
        keys = list(values)
        tensor = torch.tensor([values[k] for k in keys], device=self.accelerator.device)
        tensor = self.accelerator.reduce(tensor, reduction="mean")
        return {k: float(v) for k, v in zip(keys, tensor.tolist())}

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
        with self._full_params() as params:
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
        if self.is_main:
            state: dict[str, Any] = {
                "step": self.step,
                "data_position": self.data_pos,
                "world_size": self.world,
                "scheduler": self.scheduler.state_dict(),
            }
            if self.engine not in ("fsdp", "deepspeed"):
                state["optimizer"] = self.optimizer.state_dict()
            ckpt.write_resume(tmp, state)
        acc.wait_for_everyone()
        ckpt.write_rng(tmp, self.rank)
        if self.engine == "deepspeed":
            self.model.save_checkpoint(
                str(tmp / ckpt.ENGINE_STATE), tag="state", exclude_frozen_parameters=True
            )
        elif self.engine == "fsdp":
            from accelerate.utils import save_fsdp_optimizer

            save_fsdp_optimizer(
                acc.state.fsdp_plugin, acc, self.optimizer, self.model, str(tmp / ckpt.ENGINE_STATE)
            )
        acc.wait_for_everyone()
        if self.is_main:
            ckpt.commit(tmp, path)
            if name != FINAL:
                ckpt.prune(self.ckpt_dir, cfg.checkpoint.keep_last)
        acc.wait_for_everyone()
        return path

    @contextmanager
    def _full_params(self) -> Iterator[dict[str, torch.Tensor]]:
        """Every parameter, whole, by its name in the unwrapped model (rank 0 reads them).

        DDP and ZeRO-2 keep whole parameters in every process. FSDP holds shards: they are
        gathered onto rank 0's GPU for the duration of the block (a collective, so every rank
        enters it), and only what the checkpoint writes is copied to the host.
        """
        if self.engine != "fsdp":
            yield dict(self.accelerator.unwrap_model(self.model).named_parameters())
            return
        from torch.distributed.fsdp import FullyShardedDataParallel

        with FullyShardedDataParallel.summon_full_params(
            self.model, writeback=False, rank0_only=True
        ):
            yield {_clean_fsdp_name(n): p for n, p in self.model.named_parameters()}

    # -------------------------------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        """Release the process group and free cached encodings."""
        if hasattr(self, "batches"):
            self.batches.clear()
        acc = getattr(self, "accelerator", None)
        if acc is not None:
            acc.end_training()
            if self.world > 1 and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()


def run_training(cfg: TrainConfig) -> TrainResult:
    """Run the recipe end to end: setup, train, cleanup."""
    recipe = TrainRecipe(cfg)
    try:
        recipe.setup()
        return recipe.train()
    finally:
        recipe.cleanup()


_LOCATION_KEYS = frozenset({"pretrained", "tokenizer"})
_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def _clean_fsdp_name(name: str) -> str:
    """A parameter name without FSDP's (and activation checkpointing's) wrapper prefixes."""
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def _flatten(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"prefix.a.b": 1}`` (lists and scalars are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat
