"""Training dashboards through accelerate's trackers: TensorBoard by default, Weights & Biases on
request (``log.trackers`` of the training config).

Each optimiser step's record (the same one written to ``train_log.jsonl``: every loss term, the
learning rate, the gradient norm, ...) is logged as scalars, grouped ``loss/<term>`` and
``train/<name>``; :meth:`TrainTrackers.log_validation` logs ``val/<metric>`` scalars and example
overlay images. TensorBoard writes to ``<run_dir>/tensorboard/<run name>``, so
``tensorboard --logdir <run_dir>/tensorboard`` (or ``--logdir runs``) shows it. Only the main
process logs. The JSONL log stays the machine-readable record; the trackers are for looking.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from partonomy.errors import ConfigError

log = logging.getLogger(__name__)

TRACKERS = ("tensorboard", "wandb")
"""Tracker names ``log.trackers`` accepts."""
TENSORBOARD_DIR = "tensorboard"
"""Folder of the run directory that holds the TensorBoard event files."""
LOSS_PREFIX = "loss/"
TRAIN_PREFIX = "train/"
VAL_PREFIX = "val/"
_NOT_SCALARS = frozenset({"step"})


def check_trackers(names: Sequence[str]) -> list[str]:
    """The tracker names, checked (unique, known, and installed for ``wandb``).

    Raises:
        ConfigError: an unknown name, or ``wandb`` without the wandb package.
    """
    out: list[str] = []
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(
                f"log.trackers: unknown tracker {name!r}; use any of {', '.join(TRACKERS)} "
                "(or [] for none)"
            )
        if name == "wandb":
            import importlib.util

            if importlib.util.find_spec("wandb") is None:
                raise ConfigError(
                    "log.trackers: 'wandb' needs the wandb package: pip install wandb (then "
                    "`wandb login`, or WANDB_MODE=offline), or drop it from log.trackers"
                )
        if name not in out:
            out.append(name)
    return out


def step_scalars(record: Mapping[str, Any], loss_terms: Sequence[str]) -> dict[str, float]:
    """A ``train_log.jsonl`` record as tracker scalars: ``loss/<term>`` for ``loss_terms``,
    ``train/<key>`` for the other finite numbers (``step`` and non-numbers are left out)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in _NOT_SCALARS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(float(value)):
            continue
        name = LOSS_PREFIX + key if key in loss_terms else TRAIN_PREFIX + key
        out[name] = float(value)
    return out


def _hparams(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config to ``a.b`` keys with bool/int/float/str values (others as str)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_hparams(value, name + "."))
        elif value is None or isinstance(value, bool | int | float | str):
            flat[name] = "None" if value is None else value
        else:
            flat[name] = str(value)
    return flat


class TrainTrackers:
    """The run's accelerate trackers, started; log with :meth:`log_step` and
    :meth:`log_validation`, then :meth:`close`.

    Args:
        names: tracker names (see :data:`TRACKERS`); empty logs nothing.
        run_dir: the training run directory (TensorBoard writes under ``run_dir/tensorboard``).
        run_name: the run's name in the dashboards (default: the run directory's name).
        config: the resolved training config, stored as hyperparameters.
        loss_terms: the record keys that are loss terms (grouped under ``loss/``).
    """

    def __init__(
        self,
        names: Sequence[str],
        run_dir: str | Path,
        *,
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        loss_terms: Sequence[str] = (),
    ) -> None:
        self.names = check_trackers(names)
        self.run_dir = Path(run_dir)
        self.run_name = run_name or self.run_dir.resolve().name
        self.loss_terms = tuple(loss_terms)
        self.trackers: list[Any] = []
        for name in self.names:
            self.trackers.append(self._start(name))
        if config:
            hparams = _hparams(config)
            for tracker in self.trackers:
                try:
                    tracker.store_init_configuration(hparams)
                except Exception as err:  # a dashboard must never stop a training run
                    log.warning("tracker %s: could not store the config (%s)", tracker.name, err)

    @property
    def tensorboard_dir(self) -> Path:
        """``<run_dir>/tensorboard``: pass it to ``tensorboard --logdir``."""
        return self.run_dir / TENSORBOARD_DIR

    def _start(self, name: str) -> Any:
        from accelerate.tracking import TensorBoardTracker, WandBTracker

        tracker: Any
        if name == "tensorboard":
            tracker = TensorBoardTracker(self.run_name, str(self.tensorboard_dir))
        else:
            tracker = WandBTracker(self.run_name, dir=str(self.run_dir))
        tracker.start()
        return tracker

    def log_step(self, record: Mapping[str, Any]) -> None:
        """Log one step's record (as written to ``train_log.jsonl``; it must have ``step``)."""
        values = step_scalars(record, self.loss_terms)
        for tracker in self.trackers:
            tracker.log(values, step=int(record["step"]))

    def log_validation(
        self,
        step: int,
        metrics: Mapping[str, float | None],
        overlays: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Log validation metrics (``val/<name>``; None values skipped) and example overlays.

        Args:
            step: the optimiser step they belong to.
            metrics: name -> value (a fraction, a loss...).
            overlays: name -> ``(H, W, 3)`` uint8 RGB image (e.g.
                :func:`partonomy.viz.overlay.display_overlay` of predicted masks), shown under
                ``val/examples/<name>``.
        """
        values = {VAL_PREFIX + k: float(v) for k, v in metrics.items() if v is not None}
        for tracker in self.trackers:
            if values:
                tracker.log(values, step=step)
            for name, image in (overlays or {}).items():
                key = f"{VAL_PREFIX}examples/{name}"
                array = np.asarray(image, dtype=np.uint8)
                if tracker.name == "tensorboard":
                    tracker.log_images({key: array[None]}, step=step, dataformats="NHWC")
                else:
                    tracker.log_images({key: [array]}, step=step)

    def close(self) -> None:
        """Flush and close every tracker."""
        for tracker in self.trackers:
            try:
                tracker.finish()
            except Exception as err:
                log.warning("tracker %s: could not finish (%s)", tracker.name, err)
        self.trackers = []
