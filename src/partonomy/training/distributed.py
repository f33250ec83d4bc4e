"""Multi-device training through accelerate: DDP, FSDP or DeepSpeed ZeRO-2, chosen in the config.

Launch one process per device with ``torchrun`` (``python -m torch.distributed.run``) or
``accelerate launch``; the recipe builds its :class:`accelerate.Accelerator` here from the
``distributed`` section. A single process needs no launcher (the same code runs undistributed).

* ``ddp``: ``find_unused_parameters`` defaults to True because LLaVA reads the second-to-last CLIP
  layer (``vision_feature_layer=-2``), so the last layer's parameters never get a gradient, and a
  batch without spans leaves the SAM decoder unused.
* ``fsdp``: the units are the LM's, CLIP's and SAM's encoder layers (``fsdp_wrap``), the trained
  leaf ``nn.Linear`` inside them (the LoRA matrices), ``lm_head`` and the new-rows delta
  (:func:`mark_fsdp_units`): so the layers' units are all frozen (kept in their bf16, no
  gradient, never reduced) and the LoRA units all fp32. (With the LoRA matrices inside the
  layers' flat buffers, FSDP allocates and reduces a gradient for the whole model: 31 GB of fp32
  at 7B.) Everything else (embeddings, SAM's neck, prompt encoder and mask decoder, the family's
  heads) is the root unit, gathered once for the whole forward. Only modules that every process
  calls the same number of times, and that their owner calls rather than reads, can be units:
  the heads run per mask (a batch without spans skips them, so processes would disagree on the
  collectives), and transformers' SAM reads some embeddings' ``.weight`` without calling them.
* ``deepspeed_zero2``: needs the optional extra ``pip install partonomy[deepspeed]``; imported lazily.
  Gradient clipping and accumulation are handed to DeepSpeed's config.

Precision: bf16 autocast on CUDA devices that support it; fp32 elsewhere (CPU).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import torch

from partonomy.errors import ConfigError

Engine = Literal["ddp", "fsdp", "deepspeed_zero2"]
Precision = Literal["auto", "bf16", "fp32"]


@dataclass
class DistributedConfig:
    """Multi-device settings (ignored by a single process, except for the engine check).

    Attributes:
        engine: ``ddp``, ``fsdp`` or ``deepspeed_zero2``.
        find_unused_parameters: DDP flag (see module docstring).
        ddp_bucket_cap_mb: DDP gradient bucket size (MB; torch's default is 25).
        fsdp_sharding: FSDP sharding strategy.
        fsdp_wrap: module class names that become FSDP units.
        fsdp_backward_prefetch: when FSDP gathers the next unit's parameters in the backward.
            ``NO_PREFETCH`` is accelerate's default (it passes none to torch, whose own default
            is ``BACKWARD_PRE``) and what the measured two-GPU runs used.
        fsdp_forward_prefetch: gather the next unit's parameters during this unit's forward.
        deepspeed_offload_optimizer: ZeRO-2 optimiser-state offload to CPU memory.
        timeout_minutes: collective-operation timeout.
    """

    engine: Engine = "ddp"
    find_unused_parameters: bool = True
    ddp_bucket_cap_mb: int = 25
    fsdp_sharding: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD"] = "FULL_SHARD"
    fsdp_wrap: tuple[str, ...] = ("LlamaDecoderLayer", "CLIPEncoderLayer", "SamVisionLayer")
    fsdp_backward_prefetch: Literal["BACKWARD_PRE", "BACKWARD_POST", "NO_PREFETCH"] = "NO_PREFETCH"
    fsdp_forward_prefetch: bool = False
    deepspeed_offload_optimizer: bool = False
    timeout_minutes: int = 30


def resolve_precision(precision: Precision) -> Literal["bf16", "no"]:
    """``auto`` -> ``bf16`` on a bf16-capable CUDA device, else ``no`` (fp32).

    Raises:
        ConfigError: ``bf16`` is asked for on a machine without a bf16-capable CUDA device.
    """
    has_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if precision == "bf16":
        if not has_bf16:
            raise ConfigError(
                "precision: bf16 needs a CUDA device with bf16 support; use 'auto' or 'fp32'"
            )
        return "bf16"
    if precision == "auto":
        return "bf16" if has_bf16 else "no"
    return "no"


def deepspeed_available() -> bool:
    """Whether the optional ``deepspeed`` package is installed."""
    return importlib.util.find_spec("deepspeed") is not None


def require_deepspeed() -> None:
    """Raise a :class:`ConfigError` that says how to install DeepSpeed if it is missing."""
    if not deepspeed_available():
        raise ConfigError(
            "distributed.engine is 'deepspeed_zero2' but DeepSpeed is not installed: "
            "pip install 'partonomy[deepspeed]' (or choose engine: ddp or fsdp)"
        )


def _deepspeed_config(
    cfg: DistributedConfig, *, grad_accum: int, micro_batch: int, clip: float, bf16: bool
) -> dict[str, Any]:
    zero: dict[str, Any] = {
        "stage": 2,
        "contiguous_gradients": True,
        "overlap_comm": True,
        "reduce_scatter": True,
        "reduce_bucket_size": 5e8,
        "allgather_bucket_size": 5e8,
    }
    if cfg.deepspeed_offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    # DeepSpeed's own bf16 mode would cast the whole model (frozen backbones included) to bf16
    # and keep fp32 copies of the trained parameters; here the trained parameters already are
    # fp32 and DeepSpeed runs the forward under torch's bf16 autocast ("torch_autocast"; an
    # autocast opened outside the engine is switched off inside it), the same numerics as the
    # other engines.
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": clip if clip > 0 else 0.0,
        "zero_optimization": zero,
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
        # The optimiser and the schedule are ours (torch AdamW, stepped once per update).
        "zero_allow_untested_optimizer": True,
    }
    if bf16:
        config["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    return config


def make_accelerator(
    cfg: DistributedConfig,
    *,
    precision: Precision,
    grad_accum: int,
    micro_batch: int,
    max_grad_norm: float,
    cpu: bool = False,
) -> Any:
    """Build the :class:`accelerate.Accelerator` for this run.

    Args:
        cfg: the ``distributed`` section.
        precision: the run's precision setting (see :func:`resolve_precision`).
        grad_accum: micro-batches per optimiser step.
        micro_batch: samples per process per micro-batch (DeepSpeed wants it).
        max_grad_norm: clipping threshold (DeepSpeed applies it itself).
        cpu: force CPU even when CUDA is present.

    Raises:
        ConfigError: DeepSpeed was asked for but is not installed.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    mixed = "no" if cpu else resolve_precision(precision)
    kwargs: dict[str, Any] = {
        "gradient_accumulation_steps": grad_accum,
        "mixed_precision": mixed,
        "cpu": cpu,
        "kwargs_handlers": [
            DistributedDataParallelKwargs(
                find_unused_parameters=cfg.find_unused_parameters,
                bucket_cap_mb=cfg.ddp_bucket_cap_mb,
            ),
            InitProcessGroupKwargs(timeout=timedelta(minutes=cfg.timeout_minutes)),
        ],
    }
    if cfg.engine == "deepspeed_zero2":
        require_deepspeed()
        from accelerate.utils import DeepSpeedPlugin

        kwargs["deepspeed_plugin"] = DeepSpeedPlugin(
            hf_ds_config=_deepspeed_config(
                cfg,
                grad_accum=grad_accum,
                micro_batch=micro_batch,
                clip=max_grad_norm,
                bf16=mixed == "bf16",
            )
        )
        kwargs["mixed_precision"] = "no"  # bf16 through torch_autocast (see _deepspeed_config)
    elif cfg.engine == "fsdp":
        kwargs["fsdp_plugin"] = fsdp_plugin(cfg, cpu=cpu)
    return Accelerator(**kwargs)


def fsdp_plugin(cfg: DistributedConfig, *, cpu: bool = False) -> Any:
    """accelerate's FSDP plugin for the ``distributed`` section (units: :func:`fsdp_wrap_policy`)."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin(
        sharding_strategy=cfg.fsdp_sharding,
        auto_wrap_policy=fsdp_wrap_policy(cfg.fsdp_wrap),
        backward_prefetch=cfg.fsdp_backward_prefetch,
        forward_prefetch=cfg.fsdp_forward_prefetch,
        use_orig_params=True,
        state_dict_type="FULL_STATE_DICT",
        # The builders initialise every process alike (model.seed); the broadcast is a
        # safeguard where accelerate supports it (it needs an accelerator device).
        sync_module_states=torch.cuda.is_available() and not cpu,
    )


FSDP_UNIT = "_partonomy_fsdp_unit"
"""Attribute that :func:`mark_fsdp_units` sets on the modules besides the layer classes that
become FSDP units."""


def mark_fsdp_units(model: torch.nn.Module, class_names: tuple[str, ...]) -> int:
    """Flag the trained leaf ``nn.Linear`` modules inside the ``class_names`` layers (the LoRA
    matrices), a trained ``llava.lm_head`` and the new-rows delta as FSDP units (see the module
    docstring); call after :func:`~partonomy.models.core.trainable.set_trainable`. Returns how
    many were flagged."""
    from partonomy.models.core.trainable import NewRowsDelta

    def trained_leaf_linear(module: torch.nn.Module) -> bool:
        # Exactly nn.Linear: nn.MultiheadAttention reads its out_proj (a subclass) uncalled.
        leaf = type(module) is torch.nn.Linear and not list(module.children())
        return leaf and any(p.requires_grad for p in module.parameters(recurse=False))

    names = frozenset(class_names)
    flagged: list[torch.nn.Module] = []
    for module in model.modules():
        if type(module).__name__ in names:
            flagged += [m for m in module.modules() if trained_leaf_linear(m)]
        elif isinstance(module, NewRowsDelta):
            flagged.append(module)
    head = getattr(getattr(model, "llava", None), "lm_head", None)
    if isinstance(head, torch.nn.Module) and trained_leaf_linear(head):
        flagged.append(head)
    for module in flagged:
        setattr(module, FSDP_UNIT, True)
    return len(flagged)


def fsdp_wrap_policy(class_names: tuple[str, ...]) -> Any:
    """FSDP auto-wrap policy: a module of one of ``class_names`` or one that
    :func:`mark_fsdp_units` flagged is a unit (see the module docstring)."""
    names = frozenset(class_names)

    def policy(module: torch.nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
        if recurse:
            return True
        return type(module).__name__ in names or getattr(module, FSDP_UNIT, False)

    return policy


def fsdp_units(
    model: torch.nn.Module, class_names: tuple[str, ...]
) -> list[list[torch.nn.Parameter]]:
    """The parameters of each FSDP unit :func:`fsdp_wrap_policy` will make (the root's last):
    a unit holds its modules' parameters except those of nested units."""
    policy = fsdp_wrap_policy(class_names)
    units: list[list[torch.nn.Parameter]] = []

    def collect(module: torch.nn.Module) -> list[torch.nn.Parameter]:
        own = list(module.parameters(recurse=False))
        for child in module.children():
            params = collect(child)
            if policy(child, False, 0):
                units.append(params)
            else:
                own.extend(params)
        return own

    units.append(collect(model))
    return units


def engine_in_use(accelerator: Any) -> str:
    """``"deepspeed"``, ``"fsdp"``, ``"ddp"`` or ``"single"``: what actually wraps the model."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED:
        return "deepspeed"
    if kind == DistributedType.FSDP:
        return "fsdp"
    if accelerator.num_processes > 1:
        return "ddp"
    return "single"


def engine_autocast(accelerator: Any, precision: Precision) -> Any:
    """The context for a forward pass outside the engine: bf16 autocast under DeepSpeed when the
    run is bf16, else a no-op.

    accelerate wraps a DDP / FSDP / single-device model's own forward in autocast, so even the
    unwrapped model (the KL teacher) autocasts. DeepSpeed autocasts inside its engine only
    (``torch_autocast`` in ``_deepspeed_config``), so a forward of the unwrapped model needs this.
    """
    from contextlib import nullcontext

    device = accelerator.device.type
    bf16 = device != "cpu" and resolve_precision(precision) == "bf16"
    if engine_in_use(accelerator) == "deepspeed" and bf16:
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return nullcontext()
