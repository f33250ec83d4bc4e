"""Sharded evaluation: one process per device, each predicting a share of the questions.

``partonomy eval --num-processes N`` starts N copies of the command through accelerate
(:func:`launch_command`); each copy calls :func:`current_shard` and evaluates only its share of
the pending questions. The rules that keep a sharded run equal to a single-process one:

* **Whole batches.** The pending questions are cut into batches of ``batch_size`` exactly as one
  process would cut them, and each process takes a contiguous block of those batches
  (:meth:`Shard.batches`). Every batch therefore holds the same questions (and the same padding)
  as in the single-process run, so a batch-size-dependent model gives the same answers.
* **One writer per file.** Process ``r`` appends to ``predictions.rank<r>.jsonl``; only rank 0
  touches ``config.json``, ``predictions.jsonl`` and ``results.json``, and holds the run
  directory's lock for the whole run.
* **Deterministic merge.** At the end rank 0 folds the shard files into ``predictions.jsonl``,
  one line per question in the order of the data file (:func:`merge_shards`), and scores that.
  A fresh single-process run writes the same lines in the same order, so both files, and
  ``results.json``, are byte-identical.
* **Resume.** A killed sharded run leaves shard files (each may end in a torn line). Any rerun,
  with any number of processes, first merges them (rank 0, under the lock), so finished
  questions are never predicted again.

Errors: a process that fails ends the launcher's other processes (torchrun tears the group
down), so a failure in one process cannot leave the others waiting at a barrier.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from partonomy.io.atomic import atomic_open, jsonl_line

T = TypeVar("T")

SHARD_GLOB = "predictions.rank*.jsonl"
BARRIER_TIMEOUT = timedelta(hours=24)
"""Processes wait at the end for the slowest shard; a long evaluation must not time that out."""


class _Line(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Shard:
    """This process's place among the evaluation processes.

    Attributes:
        rank: this process's index, ``0 <= rank < world``.
        world: the number of processes.
        state: accelerate's ``PartialState`` when ``world > 1`` (it owns the process group).
    """

    rank: int = 0
    world: int = 1
    state: Any = None

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} outside a world of {self.world}")

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that owns the run directory's shared files."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for in a single process)."""
        if self.world > 1:
            self.state.wait_for_everyone()

    def batches(self, items: Sequence[T], batch_size: int) -> list[list[T]]:
        """This process's batches: a contiguous block of the batches one process would make.

        ``items`` is cut into batches of ``batch_size`` (the last may be short); with ``n``
        batches, rank ``r`` takes batches ``[r*n//W, (r+1)*n//W)``. Blocks keep consecutive
        questions about one image in one process (its decoded image is reused).
        """
        cuts = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
        n = len(cuts)
        return [
            list(b) for b in cuts[self.rank * n // self.world : (self.rank + 1) * n // self.world]
        ]

    def predictions_file(self, out: Path, main_file: Path) -> Path:
        """Where this process appends its predictions: its shard file, or ``main_file`` alone."""
        return main_file if self.world == 1 else shard_file(out, self.rank)


def current_shard() -> Shard:
    """The shard of this process: from the launcher's environment (``WORLD_SIZE``), else one.

    With several processes, accelerate's ``PartialState`` joins the process group (NCCL on
    GPUs, gloo on CPUs) and selects this process's GPU, so ``device=auto`` / ``cuda`` models
    land on their own device.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    import torch
    from accelerate import PartialState

    # Without cpu=True accelerate ignores a CPU-only launch and runs every process as rank 0.
    state = PartialState(cpu=not torch.cuda.is_available(), timeout=BARRIER_TIMEOUT)
    if state.num_processes != world:
        raise RuntimeError(
            f"WORLD_SIZE is {world} but accelerate joined {state.num_processes} process(es)"
        )
    return Shard(state.process_index, state.num_processes, state)


def shard_file(out: Path, rank: int) -> Path:
    """``<out>/predictions.rank<r>.jsonl``: process ``r``'s predictions of a sharded run."""
    return out / f"predictions.rank{rank}.jsonl"


def merge_shards(
    out: Path,
    main_file: Path,
    order: Sequence[str],
    read: Callable[[Path], Mapping[str, _Line]],
) -> int:
    """Fold ``out``'s shard files into ``main_file``, one line per question in ``order``.

    Args:
        out: the run directory.
        main_file: its ``predictions.jsonl``.
        order: every question id of the data file, in file order.
        read: reads one predictions file into ``{question_id: prediction}`` (dropping a torn
            last line, refusing unknown ids).

    Returns:
        The number of shard files merged (0: nothing was changed).

    ``main_file`` is replaced atomically before the shard files are deleted, so a crash in
    between only leaves lines that the next merge folds in again (a question predicted twice
    keeps one line: the predictions of one question are equal).
    """
    shards = sorted(out.glob(SHARD_GLOB))
    if not shards:
        return 0
    done: dict[str, _Line] = dict(read(main_file))
    for path in shards:
        done.update(read(path))
    with atomic_open(main_file, "wb") as handle:
        for qid in order:
            if qid in done:
                handle.write(jsonl_line(done[qid].to_dict()))
    for path in shards:
        path.unlink()
    return len(shards)


def free_port() -> int:
    """A TCP port that is free on this host now (for the launcher's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_command(num_processes: int, argv: Sequence[str], *, gpus: int) -> list[str]:
    """The command that runs ``partonomy <argv>`` in ``num_processes`` processes.

    On a machine with at least ``num_processes`` GPUs this is ``accelerate launch --multi_gpu``
    (one process per GPU). accelerate starts several CPU processes only through MPI
    (``accelerate launch --cpu`` runs one), so on CPUs it is ``torch.distributed.run``, which
    accelerate's own multi-GPU launcher calls too; the processes then join through accelerate's
    ``PartialState`` either way.

    Args:
        num_processes: processes to start (> 1).
        argv: the ``partonomy`` arguments each process runs (without ``--num-processes``).
        gpus: CUDA devices visible here.
    """
    exe = sys.executable
    if gpus >= num_processes:
        return [
            exe, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(num_processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()),
            "-m", "partonomy", *argv,
        ]  # fmt: skip
    return [
        exe, "-m", "torch.distributed.run", "--standalone",
        "--nproc_per_node", str(num_processes),
        "-m", "partonomy", *argv,
    ]  # fmt: skip
