"""Training dashboards: accelerate's TensorBoard tracker gets every loss term, the learning rate,
the gradient norm, validation metrics and example overlays; bad tracker names are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.models.plum.losses import LOSS_TERMS as PLUM_TERMS
from partonomy.training.config import LogConfig, TrainConfig
from partonomy.training.recipe import run_training
from partonomy.training.tracking import TrainTrackers, check_trackers, step_scalars

from .conftest import tiny_train_overrides


def _events(logdir: Path) -> object:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = [p for p in logdir.iterdir() if p.is_dir()]
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_step_scalars_group_losses_and_drop_non_numbers() -> None:
    record = {"step": 3, "lr": 1e-4, "total": 2.5, "lm": 1.0, "grad_norm": None, "tag": "x"}
    assert step_scalars(record, ("total", "lm")) == {
        "train/lr": 1e-4,
        "loss/total": 2.5,
        "loss/lm": 1.0,
    }


def test_tensorboard_gets_steps_validation_and_overlays(tmp_path: Path) -> None:
    trackers = TrainTrackers(
        ["tensorboard"], tmp_path, config={"optim": {"lr": 1e-4}}, loss_terms=("total",)
    )
    for step in (1, 2):
        trackers.log_step({"step": step, "total": 3.0 - step, "lr": 1e-4, "grad_norm": 0.5})
    overlay = np.zeros((8, 10, 3), np.uint8)
    overlay[..., 0] = 255
    trackers.log_validation(2, {"macro_giou": 0.25, "accuracy": None}, {"q1": overlay})
    trackers.close()
    acc = _events(trackers.tensorboard_dir)
    tags = acc.Tags()
    assert {"loss/total", "train/lr", "train/grad_norm", "val/macro_giou"} <= set(tags["scalars"])
    assert [e.value for e in acc.Scalars("loss/total")] == [2.0, 1.0]
    assert tags["images"] == ["val/examples/q1"]
    image = acc.Images("val/examples/q1")[0]
    assert (image.width, image.height, image.step) == (10, 8, 2)


def test_tracker_names_are_checked() -> None:
    assert check_trackers(["tensorboard", "tensorboard"]) == ["tensorboard"]
    with pytest.raises(ConfigError, match="unknown tracker 'mlflow'"):
        LogConfig(trackers=["mlflow"])
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ConfigError, match="pip install wandb"):
            check_trackers(["wandb"])


def test_training_run_logs_to_tensorboard(synth_qa: Path, tmp_path: Path) -> None:
    cfg = from_dict(TrainConfig, tiny_train_overrides(synth_qa, tmp_path, max_steps=2))
    run_training(cfg)
    acc = _events(tmp_path / "tensorboard")
    for term in ("total", *PLUM_TERMS):
        assert [e.step for e in acc.Scalars(f"loss/{term}")] == [1, 2]
    assert [e.step for e in acc.Scalars("train/lr")] == [1, 2]
    assert "train/grad_norm" in acc.Tags()["scalars"]
