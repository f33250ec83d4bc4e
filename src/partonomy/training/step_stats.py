"""Per-step numbers: mean loss terms, tokens and peak GPU memory over processes; phase times."""

from __future__ import annotations

import time
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


class PhaseTimer:
    """Wall time of each phase of a training step (``log.timing``), for finding where it goes.

    Each :meth:`mark` synchronises the device first, so a phase's time holds its own device
    work (and the collectives it waits on); this costs the overlap of CPU and device work, so it
    is off unless asked for. Disabled, every method is a no-op.
    """

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.enabled = enabled
        self.cuda = device.type == "cuda"
        self.spent: dict[str, float] = {}
        self.last = 0.0

    def start(self) -> None:
        """Begin a step (synchronised)."""
        if self.enabled:
            self._sync()
            self.spent = {}
            self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        """Add the time since the last mark (or :meth:`start`) to ``phase``."""
        if self.enabled:
            self._sync()
            now = time.perf_counter()
            self.spent[phase] = self.spent.get(phase, 0.0) + now - self.last
            self.last = now

    def record(self) -> dict[str, float]:
        """``{"t_<phase>": seconds}`` of this step (empty when disabled)."""
        return {f"t_{k}": round(v, 4) for k, v in self.spent.items()} if self.enabled else {}

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
