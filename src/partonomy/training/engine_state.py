"""What each distributed engine contributes to a checkpoint: whole parameters and optimiser state.

The recipe's checkpoints hold the trained weights by their names in the unwrapped model, so a
checkpoint loads the same way whichever engine wrote it. The optimiser state is the engine's:

* single process / DDP: every process holds whole parameters and the whole optimiser state;
  rank 0 writes ``optimizer.state_dict()`` into ``resume.pt``.
* FSDP: parameters and optimiser state are sharded; the parameters are gathered onto rank 0
  for the weights file, and every process writes its own optimiser shard,
  ``engine_state/optimizer_rank<r>.pt``, as it is (``use_orig_params``: the state of this
  process's slices of the original parameters). No collective, no gathering of the whole state
  (gathering it onto rank 0 and scattering it back is what stalled the resume), and exact; it
  needs the same number of processes and the same units, which a resume checks anyway.
* DeepSpeed ZeRO-2: whole parameters in every process, partitioned optimiser state written by
  the engine's own ``save_checkpoint`` into ``engine_state/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def clean_fsdp_name(name: str) -> str:
    """A parameter name without FSDP's (and activation checkpointing's) wrapper prefixes."""
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


@contextmanager
def full_params(engine: str, accelerator: Any, model: Any) -> Iterator[dict[str, torch.Tensor]]:
    """Every parameter, whole, by its name in the unwrapped model (rank 0 reads them).

    DDP and ZeRO-2 keep whole parameters in every process. FSDP holds shards: they are
    gathered onto rank 0's GPU for the duration of the block (a collective, so every rank
    enters it), and only what the checkpoint writes is copied to the host.
    """
    if engine != "fsdp":
        yield dict(accelerator.unwrap_model(model).named_parameters())
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(model, writeback=False, rank0_only=True):
        yield {clean_fsdp_name(n): p for n, p in model.named_parameters()}


def save_optimizer(
    engine: str, accelerator: Any, model: Any, optimizer: Any, engine_dir: Path
) -> dict[str, Any] | None:
    """Save the optimiser state; every process calls this.

    Returns:
        the state dict to put into ``resume.pt`` (single process / DDP), or None when the
        engine wrote its sharded state into ``engine_dir`` itself.
    """
    if engine == "deepspeed":
        model.save_checkpoint(str(engine_dir), tag="state", exclude_frozen_parameters=True)
        return None
    if engine == "fsdp":
        engine_dir.mkdir(parents=True, exist_ok=True)
        torch.save(optimizer.state_dict(), _shard_file(engine_dir, accelerator.process_index))
        return None
    return optimizer.state_dict()  # type: ignore[no-any-return]


def load_optimizer(
    engine: str,
    accelerator: Any,
    model: Any,
    optimizer: Any,
    engine_dir: Path,
    saved: dict[str, Any] | None,
) -> None:
    """Restore what :func:`save_optimizer` wrote; every process calls this.

    Args:
        saved: ``resume.pt``'s ``optimizer`` entry (single process / DDP), else None.
    """
    if engine == "deepspeed":
        model.load_checkpoint(
            str(engine_dir),
            tag="state",
            load_module_strict=False,
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
        )
    elif engine == "fsdp":
        shard = _shard_file(engine_dir, accelerator.process_index)
        optimizer.load_state_dict(torch.load(shard, map_location="cpu", weights_only=True))
    else:
        assert saved is not None, "resume.pt of a DDP / single-process run holds the optimiser"
        optimizer.load_state_dict(saved)


def _shard_file(engine_dir: Path, rank: int) -> Path:
    return engine_dir / f"optimizer_rank{rank}.pt"
