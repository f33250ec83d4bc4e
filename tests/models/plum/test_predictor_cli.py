"""`partonomy predict` and `partonomy eval --model plum`, end to end on a tiny untrained PLUM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from partonomy.cli.main import cli
from partonomy.io import masks as mask_io
from partonomy.io.predictions import load_predictions
from partonomy.io.qa_pairs import load_qa_pairs
from partonomy.viz.overlay import display_scale

FIXTURES = Path(__file__).parents[2] / "fixtures" / "qa"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_predict_writes_answer_spans_and_overlay(tmp_path: Path) -> None:
    image = FIXTURES / "plane.png"
    out = tmp_path / "pred"
    args = ["predict", str(image), "What parts of the airplane can you see?", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--device", "cpu", "--max-new-tokens", "10"])
    assert result.exit_code == 0, result.output
    text = (out / "answer.txt").read_text(encoding="utf-8")
    record = json.loads((out / "spans.json").read_text(encoding="utf-8"))
    assert record["answer"] + "\n" == text and record["question"].startswith("What parts")
    with Image.open(image) as img:
        width, height = img.size
    for span in record["spans"]:
        assert record["answer"][span["start"] : span["end"]] == span["text"]
        mask = mask_io.decode(span["mask"])
        assert mask.shape == (height, width) and int(mask.sum()) == span["area"]
    with Image.open(out / "overlay.png") as png:
        scale = display_scale(height, width)
        assert png.format == "PNG" and png.size == (scale * width, scale * height)
    assert "wrote" in result.output

    # highlight-to-segment: a word of that answer, plus one that is not in it
    word = next(w for w in record["answer"].split() if w.isalpha())
    result = CliRunner().invoke(
        cli, [*args, "--device", "cpu", "--max-new-tokens", "10", "--highlight", f"{word}, zebra"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "spans.json").read_text(encoding="utf-8"))
    assert record["highlight"] == [word, "zebra"]
    assert record["spans"] and {s["text"].lower() for s in record["spans"]} == {word.lower()}
    assert "'zebra' is not in the answer" in result.output


def test_predict_unreadable_image_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = CliRunner().invoke(cli, ["predict", str(bad), "q?", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "cannot read the image" in result.output


def test_eval_model_plum_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    qa_file = FIXTURES / "tiny_qa.json"
    args = [
        "eval",
        "--model",
        "plum",
        str(qa_file),
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--model-opt",
        "device=cpu",
        "--model-opt",
        "dtype=float32",
        "--no-progress",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results  # the scorer's report exists
    preds = load_predictions(out / "predictions.jsonl")
    records = load_qa_pairs(qa_file)
    assert sorted(preds) == sorted(qa.question_id for qa in records)
    for qa in records:
        pred = preds[qa.question_id]
        assert pred.choice_scores is not None and len(pred.choice_scores) == 5
        assert (pred.object_choice_scores is not None) == (
            qa.question_type in ("part_to_whole", "whole_to_part")
        )
        assert pred.masks is not None and sorted(pred.masks) == sorted(qa.correct_parts)
        with Image.open(FIXTURES / qa.image_path) as img:
            size = [img.size[1], img.size[0]]
        assert all(list(rle["size"]) == size for rle in pred.masks.values())
        assert len(pred.extra["choice_scores_answer"]) == 5
    # a second run resumes: nothing is recomputed and the results are the same
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "6 resumed, 0 computed" in again.output
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == results
    assert np.isfinite([s for p in preds.values() for s in p.choice_scores or []]).all()


def _train_tiny(run: Path) -> None:
    """Two optimiser steps of the training recipe on the QA fixture (a real checkpoint)."""
    from partonomy.config import from_dict
    from partonomy.training.config import TrainConfig
    from partonomy.training.recipe import run_training

    llava = {"text_hidden": 32, "text_layers": 1, "text_heads": 2, "text_intermediate": 64}
    llava |= {"vision_hidden": 32, "vision_layers": 1, "vision_heads": 2, "image_size": 32}
    sam = {"image_size": 64, "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2}
    cfg = {
        "run_dir": str(run),
        "max_steps": 2,
        "cpu": True,
        "model": {
            "llava": {**llava, "patch_size": 8},
            "sam": {**sam, "patch_size": 8, "decoder_hidden": 32},
            "bidir_heads": 2,
            "bidir_ff": 64,
            "bidir_dropout": 0.0,
            "feedback_heads": 2,
        },
        "trainable": {"language_model": "lora"},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "data": {"qa": {"files": [str(FIXTURES / "tiny_qa.json")]}, "micro_batch_size": 2},
        "checkpoint": {"every": 0},
        "log": {"progress": False},
    }
    run_training(from_dict(TrainConfig, cfg))


def test_eval_model_plum_from_a_training_run(tmp_path: Path) -> None:
    from partonomy.eval.protocol import EvalItem
    from partonomy.models.core.loading import build_predictor

    run = tmp_path / "train"
    _train_tiny(run)
    out = tmp_path / "eval"
    qa_file = FIXTURES / "tiny_qa.json"
    args = ["eval", "--model", "plum", str(qa_file), "--out", str(out), "--no-progress"]
    args += ["--model-opt", f"checkpoint={run}", "--model-opt", "device=cpu"]
    result = CliRunner().invoke(cli, [*args, "--model-opt", "dtype=float32"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["model_options"]["checkpoint"] == str(run)
    preds = load_predictions(out / "predictions.jsonl")

    # the same as the predictor built directly from the run (its sizes are the run's, not tiny's)
    predictor = build_predictor("plum", checkpoint=str(run), device="cpu", dtype="float32")
    assert predictor.model.llava.config.text_config.hidden_size == 32
    records = load_qa_pairs(qa_file)
    items = []
    for qa in records:
        with Image.open(FIXTURES / qa.image_path) as img:
            items.append(EvalItem(qa, np.asarray(img.convert("RGB"), dtype=np.uint8)))
    for qa, answer in zip(records, predictor.predict(items), strict=True):
        pred = preds[qa.question_id]
        assert pred.choice_scores == pytest.approx(answer.choice_scores, abs=1e-5)
        assert pred.masks is not None and answer.masks is not None
        for part, mask in answer.masks.items():
            assert np.array_equal(mask_io.decode(pred.masks[part]), mask)
