"""The evaluation harness end to end: reference models, resume, config checks and the CLI."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from partonomy import __version__
from partonomy.cli.main import cli
from partonomy.errors import ConfigError, FormatError
from partonomy.eval.harness import (
    CONFIG_FILE,
    PREDICTIONS_FILE,
    RESULTS_FILE,
    EvalConfig,
    parse_model_options,
    run_eval,
)
from partonomy.eval.run_dir import locked_out_dir
from partonomy.eval.scoring import METRIC_KEYS
from partonomy.io.predictions import load_predictions
from partonomy.io.qa_pairs import OBJECT_QUESTION_TYPES

N_QUESTIONS = 6


def _run(qa_file: Path, out: Path, model: str, **kwargs) -> dict:
    cfg = EvalConfig(model=model, qa_file=str(qa_file), out=str(out), progress=False, **kwargs)
    return run_eval(cfg).results


def _rates(results: dict) -> list[float | None]:
    """Every metric of every group, except object accuracy of types without an object question."""
    groups = [("overall", results["overall"]), *results["by_type"].items()]
    return [
        group[key]
        for name, group in groups
        for key in METRIC_KEYS
        if key != "object_accuracy" or name in ("overall", *OBJECT_QUESTION_TYPES)
    ]


def test_oracle_scores_one_everywhere(qa_file, tmp_path):
    results = _run(qa_file, tmp_path / "run", "oracle")
    assert set(_rates(results)) == {1.0}
    overall = results["overall"]
    assert overall["n_questions"] == N_QUESTIONS and overall["n_unanswered"] == 0
    assert overall["n_masks"] == 16 and overall["n_missing_masks"] == 0  # 4+3+2+3+2+2 parts
    on_disk = json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert on_disk == results


@pytest.mark.parametrize("matching", ["paired", "greedy", "hungarian", "union"])
def test_oracle_is_one_under_every_matching(qa_file, tmp_path, matching):
    results = _run(qa_file, tmp_path / matching, "oracle", matching=matching)
    assert set(_rates(results)) == {1.0}


def test_null_model_floors(qa_file, tmp_path):
    """Documented floors (docs/evaluation.md): no scores and no masks -> every metric is null;
    masks={} -> every part missing: gIoU counts only empty-truth pairs, cIoU is 0."""
    results = _run(qa_file, tmp_path / "none", "null")
    assert set(_rates(results)) == {None}
    assert results["overall"]["n_unanswered"] == 0 and results["overall"]["n_masks"] == 0

    results = _run(qa_file, tmp_path / "empty", "null", model_options={"masks": "empty"})
    overall = results["overall"]
    assert overall["n_masks"] == 16 and overall["n_missing_masks"] == 16
    # the only empty ground truth is the mug's lid (question 6 of 6, 1 of its 2 parts)
    assert overall["micro_giou"] == pytest.approx(1 / 16)
    assert overall["macro_giou"] == pytest.approx((0.5) / N_QUESTIONS)
    assert overall["ciou"] == 0.0
    assert overall["accuracy"] is None

    lenient = _run(
        qa_file, tmp_path / "lenient", "null", model_options={"masks": "empty"}, missing="lenient"
    )
    assert lenient["overall"]["micro_giou"] is None


def test_whole_object_hand_computed(qa_file, tmp_path):
    """boat-neg asks for mast (6 px) and sail (24 px); the boat's parts cover 61 px
    (hull 32 + mast 6 + sail 24 - 1 px where mast meets hull)."""
    raw = json.loads(qa_file.read_text())
    one = qa_file.with_name("boat_neg.json")
    one.write_text(json.dumps([r for r in raw if r["question_id"] == "boat-neg"]))
    results = _run(one, tmp_path / "w", "whole_object")
    assert results["overall"]["micro_giou"] == pytest.approx((6 / 61 + 24 / 61) / 2)
    assert results["overall"]["ciou"] == pytest.approx(30 / 122)
    assert results["overall"]["accuracy"] is None


def test_config_json(qa_file, tmp_path):
    _run(qa_file, tmp_path / "run", "random", model_options={"seed": 3}, limit=4)
    config = json.loads((tmp_path / "run" / CONFIG_FILE).read_text())
    assert config["model"] == "random" and config["model_options"] == {"seed": 3}
    assert config["qa_file"] == str(qa_file.resolve())
    assert config["qa_sha256"] == hashlib.sha256(qa_file.read_bytes()).hexdigest()
    assert config["version"] == __version__ and config["limit"] == 4


def test_resume_computes_only_what_is_missing(qa_file, tmp_path):
    out = tmp_path / "run"
    cfg = dict(model_options={"masks": "random"}, batch_size=2)
    first = run_eval(EvalConfig("random", str(qa_file), str(out), limit=3, progress=False, **cfg))
    assert (first.n_resumed, first.n_computed) == (0, 3)
    assert first.results["overall"]["n_questions"] == 3
    head = (out / PREDICTIONS_FILE).read_bytes()
    second = run_eval(EvalConfig("random", str(qa_file), str(out), progress=False, **cfg))
    assert (second.n_resumed, second.n_computed) == (3, 3)
    assert (out / PREDICTIONS_FILE).read_bytes().startswith(head)  # old lines untouched
    third = run_eval(EvalConfig("random", str(qa_file), str(out), progress=False, **cfg))
    assert (third.n_resumed, third.n_computed) == (6, 0)
    fresh = _run(qa_file, tmp_path / "fresh", "random", **cfg)
    assert second.results == third.results
    assert _without_paths(second.results) == _without_paths(fresh)


class _Batched:
    """The oracle behind a model that has its own ``batch_size``; records each call's size."""

    def __init__(self, batch_size: object) -> None:
        from partonomy.models.reference import build_oracle

        self.inner = build_oracle()
        self.batch_size = batch_size
        self.calls: list[int] = []

    def predict(self, items: list) -> list:
        self.calls.append(len(items))
        return self.inner.predict(items)


@pytest.mark.parametrize(("own", "calls"), [(4, [4, 2]), (None, [1] * 6), (True, [1] * 6)])
def test_batch_size_defaults_to_the_models_own(qa_file, tmp_path, own, calls, monkeypatch):
    """Without --batch-size the harness hands a predictor full batches of its own size (``plum``:
    8), so the default command takes the batched path; a model without a valid one gets 1."""
    from partonomy.eval import harness

    model = _Batched(own)
    cfg = EvalConfig("oracle", str(qa_file), str(tmp_path / "run"), progress=False)
    assert cfg.batch_size is None
    assert run_eval(cfg, model=model).results["overall"]["accuracy"] == 1.0
    assert model.calls == calls
    assert json.loads((tmp_path / "run" / CONFIG_FILE).read_text())["batch_size"] is None

    # an explicit size wins; a finished run asks nothing of the model and builds none
    explicit = _Batched(4)
    run_eval(EvalConfig("oracle", str(qa_file), str(tmp_path / "b"), batch_size=5, progress=False),
             model=explicit)  # fmt: skip
    assert explicit.calls == [5, 1]

    def refuse(*_: object) -> None:
        raise AssertionError("a finished run built its model")

    monkeypatch.setattr(harness, "build_model", refuse)
    again = run_eval(cfg)
    assert (again.n_resumed, again.n_computed) == (N_QUESTIONS, 0)


def _without_paths(results: dict) -> dict:
    config = {k: v for k, v in results["config"].items() if not k.endswith("_file")}
    return {**results, "config": config}


def test_torn_last_line_is_recomputed(qa_file, tmp_path):
    out = tmp_path / "run"
    _run(qa_file, out, "random", limit=4)
    lines = (out / PREDICTIONS_FILE).read_text().splitlines(keepends=True)
    (out / PREDICTIONS_FILE).write_text("".join(lines[:3]) + lines[3][:20])  # kill -9 mid-line
    (out / RESULTS_FILE).unlink()
    outcome = run_eval(EvalConfig("random", str(qa_file), str(out), progress=False))
    assert (outcome.n_resumed, outcome.n_computed) == (3, 3)
    assert len(load_predictions(out / PREDICTIONS_FILE)) == N_QUESTIONS
    assert (out / PREDICTIONS_FILE).read_text().count("\n") == N_QUESTIONS


def test_other_model_options_or_qa_file_refused_unless_overwrite(qa_file, tmp_path):
    out = tmp_path / "run"
    _run(qa_file, out, "random", model_options={"seed": 1})
    with pytest.raises(ConfigError, match=r"different model_options.*--overwrite"):
        _run(qa_file, out, "random", model_options={"seed": 2})
    with pytest.raises(ConfigError, match="different model"):
        _run(qa_file, out, "oracle")
    raw = json.loads(qa_file.read_text())
    other = qa_file.with_name("other.json")
    other.write_text(json.dumps(raw[:5]))
    with pytest.raises(ConfigError, match="different qa_sha256"):
        _run(other, out, "random", model_options={"seed": 1})
    results = _run(other, out, "oracle", overwrite=True)
    assert results["overall"]["n_questions"] == 5
    assert len(load_predictions(out / PREDICTIONS_FILE)) == 5


def test_a_second_concurrent_run_on_the_same_out_is_refused(qa_file, tmp_path):
    out = tmp_path / "run"
    with locked_out_dir(out):  # stands in for a run that is still writing
        assert (out / ".lock").read_text() == str(os.getpid())
        with pytest.raises(ConfigError, match=rf"another `partonomy eval` \(pid {os.getpid()}\)"):
            _run(qa_file, out, "oracle", overwrite=True)
        assert not (out / CONFIG_FILE).exists() and not (out / PREDICTIONS_FILE).exists()
        _run(qa_file, tmp_path / "elsewhere", "oracle")  # other directories are free
    # Released: the next run goes ahead.
    assert _run(qa_file, out, "oracle")["overall"]["n_questions"] == N_QUESTIONS


def test_predictions_without_config_are_refused(qa_file, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / PREDICTIONS_FILE).write_text("")
    with pytest.raises(ConfigError, match="run it belongs to is unknown"):
        _run(qa_file, out, "oracle")


def test_prediction_for_unknown_question_on_resume(qa_file, tmp_path):
    out = tmp_path / "run"
    _run(qa_file, out, "oracle", limit=2)
    with open(out / PREDICTIONS_FILE, "a") as handle:
        handle.write('{"question_id": "no-such-question", "choice_scores": null}\n')
    with pytest.raises(FormatError, match="unknown question 'no-such-question'") as info:
        _run(qa_file, out, "oracle")
    assert info.value.record == "line 3" and info.value.field == "question_id"
    assert info.value.file == str(out / PREDICTIONS_FILE)


def test_nan_line_in_predictions_on_resume(qa_file, tmp_path):
    out = tmp_path / "run"
    _run(qa_file, out, "oracle", limit=2)
    with open(out / PREDICTIONS_FILE, "a") as handle:
        handle.write('{"question_id": "boat-neg", "choice_scores": [NaN, 1, 1, 1, 1]}\n')
    with pytest.raises(FormatError, match="nan") as info:
        _run(qa_file, out, "oracle")
    assert info.value.field == "choice_scores" and info.value.record.startswith("line 3")


def test_bad_options_and_names(qa_file, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key .sed.. Did you mean .seed."):
        _run(qa_file, tmp_path / "a", "random", model_options={"sed": 1})
    with pytest.raises(Exception, match="Did you mean: oracle"):
        _run(qa_file, tmp_path / "b", "oracel")
    assert not (tmp_path / "b").exists()  # a typo touches no file
    with pytest.raises(ConfigError, match="matching 'pairs'"):
        EvalConfig("oracle", str(qa_file), str(tmp_path), matching="pairs")
    with pytest.raises(ConfigError, match="batch size"):
        EvalConfig("oracle", str(qa_file), str(tmp_path), batch_size=0)
    assert parse_model_options(["seed=3", "masks=random", "delay=0.5", "x=[1, 2]"]) == {
        "seed": 3,
        "masks": "random",
        "delay": 0.5,
        "x": [1, 2],
    }
    for bad in (["seed"], ["=3"], ["a=1", "a=2"]):
        with pytest.raises(ConfigError):
            parse_model_options(bad)


def test_cli_prints_tables_and_errors_without_traceback(qa_file, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["eval", "--model", "oracle", str(qa_file), "--out", str(out), "--no-progress"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "| oracle |" in result.output and "100.0 / 100.0" in result.output
    assert "6 questions: 0 resumed, 6 computed" in result.output
    result = runner.invoke(cli, args)
    assert "6 resumed, 0 computed" in result.output
    result = runner.invoke(cli, [*args[:2], "random", *args[3:], "--model-opt", "seed=2"])
    assert result.exit_code == 2 and "config mismatch" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(
        cli, ["eval", "--model", "random", str(qa_file), "--out", str(out), "--model-opt", "seed"]
    )
    assert result.exit_code == 2 and "key=value" in result.output
