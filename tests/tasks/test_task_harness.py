"""`partonomy eval --task`: end to end with the reference models, resume, and eval == score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.errors import ConfigError
from partonomy.tasks.base import TaskOptions
from partonomy.tasks.harness import TaskEvalConfig, run_task_eval


def _eval(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["eval", "--no-progress", *args])
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("task", ["pope", "gqa", "textvqa", "reason_seg", "refcoco"])
def test_oracle_scores_the_ceiling(
    task: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data = request.getfixturevalue({"refcoco": "refer"}.get(task, task))
    res = _eval("--task", task, "--model", "oracle", str(data), "--out", str(tmp_path / "run"))
    overall = res["overall"]
    if task in ("reason_seg", "refcoco"):
        assert overall["giou"] == 1.0 and overall["ciou"] == 1.0
    elif task == "textvqa":  # the most frequent answer: 34602 'dakota' x6 -> 1.0; 34603 '2' -> 1.0
        assert overall["accuracy"] == 1.0
    else:
        assert overall["accuracy"] == 1.0
    assert overall["n_unanswered"] == 0
    assert set(res) - {"by_subset", "by_split"} == {"overall", "config", "version"}


def test_null_model_floors(reason_seg: Path, pope: Path, tmp_path: Path) -> None:
    seg = _eval(
        "--task", "reason_seg", "--model", "null", str(reason_seg), "--out", str(tmp_path / "a")
    )
    assert seg["overall"]["giou"] == 0.0
    p = _eval("--task", "pope", "--model", "null", str(pope), "--out", str(tmp_path / "b"))
    assert p["overall"]["yes_ratio"] == 1.0  # the empty answer reads yes under the official rule
    assert p["overall"]["accuracy"] == 0.5


def test_prediction_lines_and_eval_equals_score(refer: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = _eval(
        "--task", "refcoco", "--split", "val", "--split", "testA", "--model", "random",
        "--model-opt", "seed=3", str(refer), "--out", str(run), "--batch-size", "2",
    )  # fmt: skip
    lines = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    assert [sorted(x) for x in lines] == [["mask", "question_id"]] * 5
    assert set(res["by_split"]) == {"val", "testA"}
    out = tmp_path / "scored.json"
    result = CliRunner().invoke(
        cli,
        ["score", "--task", "refcoco", "--split", "val", "--split", "testA", str(refer),
         str(run / "predictions.jsonl"), "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = json.loads(out.read_text())
    assert scored["overall"] == res["overall"] and scored["by_split"] == res["by_split"]


def test_resume_after_a_partial_run(pope: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = TaskEvalConfig(task="pope", model="random", data=str(pope), out=str(out), progress=False)
    first = run_task_eval(TaskEvalConfig(**{**cfg.__dict__, "options": TaskOptions(limit=4)}))
    assert (first.n_computed, first.n_resumed) == (4, 0)
    full = run_task_eval(cfg)
    assert (full.n_computed, full.n_resumed) == (2, 4)
    again = run_task_eval(cfg)
    assert again.n_computed == 0 and again.results["overall"] == full.results["overall"]
    fresh = run_task_eval(TaskEvalConfig(**{**cfg.__dict__, "out": str(tmp_path / "fresh")}))
    assert fresh.results["overall"] == full.results["overall"]


def test_a_different_model_is_refused(pope: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_task_eval(
        TaskEvalConfig(task="pope", model="null", data=str(pope), out=str(out), progress=False)
    )
    with pytest.raises(ConfigError, match="different model"):
        run_task_eval(
            TaskEvalConfig(
                task="pope", model="random", data=str(pope), out=str(out), progress=False
            )
        )


def test_unknown_task_and_partonomy_only_flags(pope: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["eval", "--task", "popee", "--model", "null", str(pope), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "Did you mean: pope" in result.output
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--task",
            "pope",
            "--model",
            "null",
            "--matching",
            "greedy",
            str(pope),
            "--out",
            str(tmp_path / "y"),
        ],
    )
    assert (
        result.exit_code == 2 and "--matching applies to the partonomy task only" in result.output
    )
