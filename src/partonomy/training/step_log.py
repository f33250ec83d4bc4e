"""Where the training loop's per-step records go: the JSONL log, trackers and the progress bar.

Only the main process writes; the other processes get a :class:`StepLog` that does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from partonomy.io.atomic import JsonlAppender
from partonomy.training.tracking import TrainTrackers
from partonomy.training.validation import example_overlays


class StepLog:
    """Open for one :meth:`TrainRecipe.train` call; :meth:`close` in a ``finally``.

    Args:
        logfile: ``<run_dir>/train_log.jsonl`` (appended to: a resumed run continues it).
        every: write every ``every``-th step's record (the progress bar shows every step).
        shown: the loss names shown on the bar.
        trackers: the run's trackers (None: none).
        initial, total: the bar's first and last step.
        active: whether this process writes (the main one).
    """

    def __init__(
        self,
        logfile: Path,
        *,
        every: int,
        shown: list[str],
        trackers: TrainTrackers | None,
        initial: int,
        total: int,
        progress: bool,
        active: bool,
    ) -> None:
        self.every, self.shown, self.active = every, shown, active
        self.records: list[dict[str, Any]] = []
        self.trackers = trackers if active else None
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc="train",
            unit="step",
            disable=not (active and progress),
            dynamic_ncols=True,
        )
        self.file = JsonlAppender(logfile) if active else None
        if self.file is not None:
            self.file.open()

    def step(self, record: dict[str, Any]) -> None:
        """Keep ``record`` (returned by the run), write it if due, advance the bar."""
        if not self.active:
            return
        self.records.append(record)
        if self.file is not None and record["step"] % self.every == 0:
            self.file.write(record)
            if self.trackers is not None:
                self.trackers.log_step(record)
        self.bar.set_postfix({k: f"{record[k]:.3f}" for k in self.shown}, refresh=False)
        self.bar.update(1)

    def validation(
        self, step: int, metrics: dict[str, Any], validation: Any, run_dir: Path
    ) -> None:
        """Send a validation's metrics and example overlays to the trackers."""
        if self.trackers is not None:
            self.trackers.log_validation(step, metrics, example_overlays(validation, run_dir, step))

    def close(self) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()
        if self.trackers is not None:
            self.trackers.close()
