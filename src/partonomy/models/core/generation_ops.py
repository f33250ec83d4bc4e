"""What one decoding step dispatches: ATen operators per generated token, to compare decoding
loops on any device.

An eager batch-1 step of a large model on a GPU is bound by the host, which launches one kernel
per non-view operator (a few microseconds each, ~1,500 per step at 13B), so the operator count of
a step is the CPU-checkable proxy for its speed. Views (``view``, ``slice``, ``transpose``, ...)
only make tensor metadata and launch nothing; they are counted apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_METADATA_ONLY = frozenset({torch.ops.aten._unsafe_view.default})  # a view not marked as one


class OpCounter(TorchDispatchMode):
    """Within the ``with`` block, counts every ATen operator dispatched, by name (``counts``)
    and as data-producing ``kernels`` (not a view)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.kernels = 0

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        self.counts[str(func)] += 1
        if not (func.is_view or func in _METADATA_ONLY):
            self.kernels += 1
        return func(*args, **(kwargs or {}))


@dataclass(frozen=True)
class StepOps:
    """Operators per decoding step: ``total`` dispatched, of which ``kernels`` not views, and
    the most frequent ``top`` ``(name, per step)``."""

    total: float
    kernels: float
    top: tuple[tuple[str, float], ...]


def ops_per_step(decode: Callable[[int], object], short: int = 1, long: int = 9) -> StepOps:
    """The operators of one step of ``decode(n)`` (which generates ``n`` tokens): the counts of
    ``decode(long)`` less those of ``decode(short)``, over ``long - short`` (so the prefill and
    everything else done once per call cancel out). ``decode`` must always generate exactly
    ``n`` tokens (a stop id that never occurs)."""
    if long <= short:
        raise ValueError(f"long ({long}) must exceed short ({short})")
    counters = []
    for n in (short, long):
        counter = OpCounter()
        with counter:
            decode(n)
        counters.append(counter)
    steps = long - short
    per_step = counters[1].counts.copy()
    per_step.subtract(counters[0].counts)
    top = tuple((name, count / steps) for name, count in per_step.most_common(8))
    return StepOps(
        total=sum(per_step.values()) / steps,
        kernels=(counters[1].kernels - counters[0].kernels) / steps,
        top=top,
    )
