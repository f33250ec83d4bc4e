"""Which samples each process trains on at each micro-step: a pure function of the position.

The data position of a run is one integer, the number of **global micro-batches** consumed so far
(``g``). From ``g`` alone (plus the seed and the world size) every process can recompute its
next batch, so resuming needs no data-loader state and a resumed run sees exactly the batches an
uninterrupted one would have seen.

Epoch ``e`` visits the samples in the order ``np.random.default_rng([seed, e]).permutation(N)``.
A global micro-batch is ``micro_batch_size * world_size`` consecutive entries of that order;
rank ``r`` takes the ``r``-th slice of ``micro_batch_size``. The tail that does not fill a whole
global micro-batch is dropped for that epoch (a different tail is dropped in the next epoch).

**Length grouping** (``lengths`` given; ``data.group_by_length``): the kept part of that order is
cut into windows of ``group_window`` global micro-batches; each window is sorted by length (stable,
so equal lengths keep their shuffled order), cut into global micro-batches, and the order of the
batches within the window is shuffled again (``default_rng([seed, e, 1])``, one draw per window).
A batch then holds conversations of similar length (less padding), the window keeps the epoch's
randomness beyond its size, and the visiting order stays a pure function of ``(seed, e)``: resume
and rank slicing work as without grouping. Which samples are dropped is decided before grouping,
so the dropped tail is the same random one as without it (never the longest or the shortest).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class BatchPlan:
    """The deterministic schedule of sample indices.

    Attributes:
        n_samples: size of the training set ``N``.
        micro_batch_size: samples per process per micro-batch.
        world_size: number of processes.
        seed: shuffling seed.
        shuffle: visit samples in a seeded random order (else in index order every epoch).
        lengths: ``N`` per-sample lengths (tokens, or a proxy such as characters) to group batches
            by (module docstring); None: no grouping.
        group_window: global micro-batches per sorting window (with ``lengths``).
    """

    n_samples: int
    micro_batch_size: int
    world_size: int = 1
    seed: int = 0
    shuffle: bool = True
    lengths: tuple[int, ...] | None = None
    group_window: int = 32

    def __post_init__(self) -> None:
        if self.micro_batch_size <= 0 or self.world_size <= 0:
            raise ValueError("micro_batch_size and world_size must be positive")
        if self.n_samples < self.global_batch_size:
            raise ValueError(
                f"the training set has {self.n_samples} samples, fewer than one global micro-batch "
                f"({self.micro_batch_size} per process x {self.world_size} processes); "
                "add data or lower data.micro_batch_size"
            )
        if self.lengths is not None and len(self.lengths) != self.n_samples:
            raise ValueError(f"{len(self.lengths)} lengths for {self.n_samples} samples")
        if self.group_window <= 0:
            raise ValueError(f"group_window must be positive, got {self.group_window}")

    @property
    def global_batch_size(self) -> int:
        """Samples consumed by all processes together in one micro-step."""
        return self.micro_batch_size * self.world_size

    @property
    def batches_per_epoch(self) -> int:
        """Whole global micro-batches per epoch (the tail is dropped)."""
        return self.n_samples // self.global_batch_size

    @cached_property
    def _lengths(self) -> np.ndarray:
        return np.asarray(self.lengths, dtype=np.int64)

    def order(self, epoch: int) -> np.ndarray:
        """``(N,)`` int64: the visiting order of epoch ``epoch`` (the dropped tail last)."""
        if not self.shuffle:
            base = np.arange(self.n_samples, dtype=np.int64)
        else:
            base = np.random.default_rng([self.seed, epoch]).permutation(self.n_samples)
        if self.lengths is None:
            return base
        return np.concatenate([self._grouped(base[: self.n_kept], epoch), base[self.n_kept :]])

    @property
    def n_kept(self) -> int:
        """Samples trained per epoch (whole global micro-batches)."""
        return self.batches_per_epoch * self.global_batch_size

    def _grouped(self, kept: np.ndarray, epoch: int) -> np.ndarray:
        g = self.global_batch_size
        window = self.group_window * g
        rng = np.random.default_rng([self.seed, epoch, 1])
        out = []
        for start in range(0, len(kept), window):
            part = kept[start : start + window]
            part = part[np.argsort(self._lengths[part], kind="stable")]
            batches = part.reshape(-1, g)  # a window holds whole global batches
            if self.shuffle:
                batches = batches[rng.permutation(len(batches))]
            out.append(batches.reshape(-1))
        return np.concatenate(out)

    def indices(self, global_micro_batch: int, rank: int = 0) -> list[int]:
        """The sample indices rank ``rank`` trains on at global micro-batch ``global_micro_batch``."""
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank {rank} outside world of size {self.world_size}")
        epoch, within = divmod(global_micro_batch, self.batches_per_epoch)
        start = within * self.global_batch_size + rank * self.micro_batch_size
        return [int(i) for i in self.order(epoch)[start : start + self.micro_batch_size]]

    def epoch_of(self, global_micro_batch: int) -> float:
        """Fractional epoch reached after ``global_micro_batch`` micro-batches (for logging)."""
        return global_micro_batch / self.batches_per_epoch
