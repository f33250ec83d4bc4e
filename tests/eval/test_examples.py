"""The eval contact sheet: ground truth beside a model's masks (partonomy.eval.examples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from partonomy.eval.examples import example_rows, write_examples
from partonomy.eval.harness import PREDICTIONS_FILE, EvalConfig, run_eval
from partonomy.io.predictions import load_predictions
from partonomy.io.qa_pairs import load_qa_pairs


def _predictions(qa_file: Path, out: Path, model: str) -> dict:
    run_eval(EvalConfig(model=model, qa_file=str(qa_file), out=str(out), progress=False))
    return load_predictions(out / PREDICTIONS_FILE)


def test_oracle_rows_show_the_ground_truth_twice(qa_file: Path, tmp_path: Path) -> None:
    records = load_qa_pairs(qa_file)
    preds = _predictions(qa_file, tmp_path / "oracle", "oracle")
    rows = example_rows(records, preds, qa_file=qa_file, n=3, scale=2)
    with_parts = [r for r in records if r.correct_parts]
    assert len(rows) == min(3, len(with_parts))
    for (row, caption), qa in zip(rows, with_parts, strict=False):
        with Image.open(qa_file.parent / qa.image_path) as img:
            w, h = img.size
        assert row.shape == (2 * h, 2 * (2 * w) + 6, 3) and row.dtype == np.uint8
        left, right = row[:, : 2 * w], row[:, 2 * w + 6 :]
        assert np.array_equal(left, right)  # the oracle's masks are the ground truth
        assert caption.startswith(qa.question_id)
        assert "IoU " + ", ".join(["1.00"] * len(qa.correct_parts)) in caption
        assert caption.endswith("answer correct")


def test_a_silent_model_draws_empty_masks(qa_file: Path, tmp_path: Path) -> None:
    records = load_qa_pairs(qa_file)
    preds = _predictions(qa_file, tmp_path / "null", "null")
    ((row, caption),) = example_rows(records, preds, qa_file=qa_file, n=1, scale=1)
    half = (row.shape[1] - 6) // 2
    assert not np.array_equal(row[:, :half], row[:, half + 6 :])
    assert "IoU 0.00" in caption and "answer" not in caption  # no scores, no verdict


def test_sheet_is_written_atomically_and_skips_unpredicted(qa_file: Path, tmp_path: Path) -> None:
    records = load_qa_pairs(qa_file)
    preds = _predictions(qa_file, tmp_path / "oracle", "oracle")
    out = write_examples(tmp_path / "sheet.png", records, preds, qa_file=qa_file, n=2)
    assert out == tmp_path / "sheet.png"
    with Image.open(out) as sheet:
        assert sheet.mode == "RGB" and sheet.height > 2 * 14
    assert write_examples(tmp_path / "none.png", records, {}, qa_file=qa_file) is None
    assert not (tmp_path / "none.png").exists()


def test_eval_cli_examples_flag(qa_file: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from partonomy.cli.main import cli

    out = tmp_path / "run"
    args = ["eval", "--model", "oracle", str(qa_file), "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--examples", "2", "--limit", "4"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'examples.png'}" in result.output
    with Image.open(out / "examples.png") as sheet:
        assert sheet.width > 0
    assert not (tmp_path / "plain" / "examples.png").exists()
    plain = CliRunner().invoke(cli, [*args[:-3], "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0 and not (tmp_path / "plain" / "examples.png").exists()
