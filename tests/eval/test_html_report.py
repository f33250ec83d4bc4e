"""The HTML report of eval run directories (content and degradation; the browser test is in
tests/viz/test_browser_report.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.errors import ConfigError
from partonomy.eval.harness import EvalConfig, run_eval
from partonomy.eval.html_report import build_report, write_report
from partonomy.eval.question_scores import question_scores
from partonomy.io.predictions import load_predictions
from partonomy.io.qa_pairs import load_qa_pairs


def _run(qa_file: Path, out: Path, model: str) -> Path:
    run_eval(EvalConfig(model=model, qa_file=str(qa_file), out=str(out), progress=False))
    return out


def test_question_scores_average_to_the_macro_giou(qa_file: Path, tmp_path: Path) -> None:
    run = _run(qa_file, tmp_path / "whole_object", "whole_object")
    results = json.loads((run / "results.json").read_text())
    scores = question_scores(load_qa_pairs(qa_file), load_predictions(run / "predictions.jsonl"))
    gious = [s.giou for s in scores if s.giou is not None]
    assert sum(gious) / len(gious) == pytest.approx(results["overall"]["macro_giou"])
    assert all(s.correct is None and s.chosen is None for s in scores)  # no text scores
    assert all(len(s.part_ious) == s.n_parts for s in scores)


def test_report_of_four_reference_runs(qa_file: Path, tmp_path: Path) -> None:
    runs = [_run(qa_file, tmp_path / m, m) for m in ("oracle", "random", "whole_object", "null")]
    data = build_report(runs, gallery=2)
    table2 = data.tables[0]
    assert table2.headers == ["question type", "oracle", "random", "whole_object", "null"]
    overall = next(r for r in table2.rows if r[0] == "Overall")
    assert overall[1] == "100.0 / 100.0" and overall[2] == "– / –"
    titles = [c.title for c in data.charts]
    assert "macro gIoU by question type (%)" in titles
    assert "distribution of per-mask IoU (% of scored masks)" in titles
    assert "accuracy vs number of parts in the answer (%)" in titles
    assert "gIoU vs number of parts in the answer (%)" in titles
    oracle = data.runs[0]
    assert len(oracle.best) == 2 and len(oracle.worst) == 2
    item = oracle.best[0]
    assert item.truth_png == item.predicted_png  # the oracle's masks are the ground truth
    assert item.is_correct and all(p.iou == 1.0 for p in item.parts)
    null = data.runs[3]
    assert not null.best and "No question was scored" in " ".join(null.notes)
    out = write_report(runs, tmp_path / "report.html", gallery=2)
    html = out.read_text(encoding="utf-8")
    assert html.count("<svg") == len(data.charts)
    assert "data:image/png;base64," in html
    # self-contained: no external reference of any kind
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html


def test_a_run_of_another_task_degrades_gracefully(tmp_path: Path) -> None:
    other = tmp_path / "textvqa"
    other.mkdir()
    (other / "results.json").write_text(
        json.dumps({"overall": {"accuracy": 0.42, "n_questions": 7}, "version": "0.1.0"})
    )
    data = build_report([other])
    assert [t.title for t in data.tables] == ["Overall metrics (rates in %, counts as numbers)"]
    assert data.tables[0].rows == [["accuracy", "42.0"], ["n_questions", "7"]]
    assert data.charts == []
    notes = " ".join(data.runs[0].notes)
    assert "no per-question-type results" in notes and "No QA file" in notes
    write_report([other], tmp_path / "r.html")  # renders


def test_errors_name_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no results\.json"):
        build_report([tmp_path])
    with pytest.raises(ConfigError, match="not a directory"):
        build_report([tmp_path / "nope"])


def test_report_cli(qa_file: Path, tmp_path: Path) -> None:
    a = _run(qa_file, tmp_path / "a" / "oracle", "oracle")
    b = _run(qa_file, tmp_path / "b" / "oracle", "oracle")
    result = CliRunner().invoke(cli, ["report", str(a), str(b), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "a/oracle" in html and "b/oracle" in html  # repeated names are disambiguated
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--out", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "has no results.json" in result.output
