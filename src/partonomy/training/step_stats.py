"""Per-step numbers gathered over processes: mean loss terms, tokens and peak GPU memory."""

from __future__ import annotations

from typing import Any

import torch


def reduce_mean(accelerator: Any, values: dict[str, float]) -> dict[str, float]:
    """Mean of each value over processes (identity for one process); one collective."""
    if accelerator.num_processes == 1:
        return values
    keys = list(values)
    tensor = torch.tensor([values[k] for k in keys], device=accelerator.device)
    tensor = accelerator.reduce(tensor, reduction="mean")
    return {k: float(v) for k, v in zip(keys, tensor.tolist())}


def step_usage(accelerator: Any, tokens: int) -> dict[str, Any]:
    """``tokens``: LM tokens (attention-mask ones) of this step over all processes;
    ``peak_mem_gib``: each process's peak allocated GPU memory during the step (GPUs only).

    ``tokens`` is this process's count; one gather sums them (a collective: every process calls).
    """
    usage: dict[str, Any] = {"tokens": tokens}
    cuda = accelerator.device.type == "cuda"
    if accelerator.num_processes == 1:
        if cuda:
            usage["peak_mem_gib"] = [round(torch.cuda.max_memory_allocated() / 2**30, 2)]
        return usage
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    local = torch.tensor([float(tokens), peak], device=accelerator.device)
    gathered = accelerator.gather(local[None]).reshape(-1, 2).tolist()
    usage["tokens"] = int(sum(row[0] for row in gathered))
    if cuda:
        usage["peak_mem_gib"] = [round(row[1], 2) for row in gathered]
    return usage
