"""Validation during training (issue 11): logged metrics equal `partonomy eval` on the same
checkpoint, and the best checkpoint is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fixtures.tasks import builders
from partonomy.cli.main import cli
from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.io.atomic import read_jsonl_tolerant
from partonomy.training.config import TrainConfig
from partonomy.training.recipe import run_training
from partonomy.training.validation import ValidationConfig

from .conftest import tiny_train_overrides


def _eval(checkpoint: Path, out: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(
        cli,
        ["eval", "--model", "plum", "--model-opt", f"checkpoint={checkpoint}",
         "--model-opt", "device=cpu", "--model-opt", "dtype=float32", "--model-opt", "batch_size=4",
         "--batch-size", "4", "--no-progress", "--out", str(out), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())["overall"]  # type: ignore[no-any-return]


def test_validation_equals_eval_and_keeps_the_best(synth_qa: Path, tmp_path: Path) -> None:
    reason_seg = builders.make_reason_seg(tmp_path)
    run = tmp_path / "run"
    validation = {
        "eval_every": 2,
        "batch_size": 4,
        "best_metric": "reason_seg/giou",
        "tasks": [
            {"task": "partonomy", "data": str(synth_qa), "limit": 4},
            {"task": "reason_seg", "data": str(reason_seg)},
        ],
    }
    cfg = from_dict(TrainConfig, tiny_train_overrides(synth_qa, run, validation=validation))
    run_training(cfg)
    logged = {r["step"]: r for r in read_jsonl_tolerant(run / "validation_log.jsonl")}
    assert sorted(logged) == [2, 4]
    assert {
        "partonomy/accuracy",
        "partonomy/macro_giou",
        "reason_seg/giou",
        "reason_seg/ciou",
    } <= set(logged[4])
    best = json.loads((run / "validation" / "best.json").read_text())
    assert best["metric"] == "reason_seg/giou" and best["step"] in (2, 4)
    assert best["value"] == logged[best["step"]]["reason_seg/giou"]
    assert best["value"] == max(r["reason_seg/giou"] for r in logged.values())
    assert (run / "checkpoints" / "best").is_dir()

    # the final checkpoint (step 4) and the best one, through `partonomy eval`
    for step, ckpt in (
        (4, run / "checkpoints" / "final"),
        (best["step"], run / "checkpoints" / "best"),
    ):
        part = _eval(ckpt, tmp_path / f"p{step}{ckpt.name}", "--limit", "4", str(synth_qa))
        seg = _eval(ckpt, tmp_path / f"r{step}{ckpt.name}", "--task", "reason_seg", str(reason_seg))
        for key, value in part.items():
            if not key.startswith("n_"):
                assert logged[step][f"partonomy/{key}"] == value, key
        assert logged[step]["reason_seg/giou"] == seg["giou"]
        assert logged[step]["reason_seg/ciou"] == seg["ciou"]


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="tasks is empty"):
        ValidationConfig(eval_every=5)
    with pytest.raises(ConfigError, match="best_metric"):
        from_dict(
            ValidationConfig,
            {
                "eval_every": 5,
                "tasks": [{"task": "pope", "data": "x"}],
                "best_metric": "gqa/accuracy",
            },
        )
    with pytest.raises(ConfigError, match="unknown key 'eval_evry'"):
        from_dict(TrainConfig, {"validation": {"eval_evry": 5}})
