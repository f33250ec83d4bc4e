"""``hf_vlm`` and ``vlm_sam3`` through the harness, on tiny random checkpoints saved to a temp dir:
a Qwen2.5-VL-shaped VLM (with its tiny tokenizer, chat template and image processor) and a tiny
SAM 3 (with a tiny text tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.models.backbones.hf_vlm import VlmConfig, build_vlm, load_vlm_tokenizer
from partonomy.models.backbones.vlm_tokenizers import tiny_vlm_tokenizer
from partonomy.models.zeroshot.hf_vlm import load_vlm_scorer
from partonomy.models.zeroshot.sam3 import load_sam3, tiny_sam3_config
from partonomy.models.zeroshot.vlm_sam3 import part_phrase

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "qa"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from transformers import Sam3Model

    root = tmp_path_factory.mktemp("zeroshot")
    torch.manual_seed(0)
    vlm_dir, sam3_dir = root / "qwen2_5_vl", root / "sam3"
    cfg = VlmConfig(text_hidden=32, text_heads=2, text_kv_heads=1)
    tokenizer = load_vlm_tokenizer("qwen2_5_vl", cfg)
    model, adapter = build_vlm("qwen2_5_vl", cfg, tokenizer)
    model.save_pretrained(vlm_dir)
    tokenizer.save_pretrained(vlm_dir)
    adapter.image_processor.save_pretrained(vlm_dir)
    text_tokenizer = tiny_vlm_tokenizer("qwen2_5_vl")
    Sam3Model(tiny_sam3_config(len(text_tokenizer))).save_pretrained(sam3_dir)
    text_tokenizer.save_pretrained(sam3_dir)
    return vlm_dir, sam3_dir


def _eval(model: str, out: Path, *opts: str, flags: tuple[str, ...] = ()) -> dict:
    args = ["eval", "--model", model, str(FIXTURES / "tiny_qa.json"), "--out", str(out)]
    args += ["--no-progress", "--model-opt", "device=cpu", *flags]
    for opt in opts:
        args += ["--model-opt", opt]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())  # type: ignore[no-any-return]


def test_hf_vlm_scores_text_only(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    vlm_dir, _ = checkpoints
    # the command line: --model hf_vlm --checkpoint DIR
    results = _eval("hf_vlm", tmp_path / "eval", flags=("--checkpoint", str(vlm_dir)))
    overall = results["overall"]
    assert overall["n_questions"] == 6 and overall["accuracy"] is not None
    lines = [
        json.loads(x)
        for x in (tmp_path / "eval" / "predictions.jsonl").read_text().split("\n")
        if x
    ]
    assert all(
        len(line["choice_scores"]) == 5 and line.get("masks") in (None, {}) for line in lines
    )
    assert all(len(line["choice_scores_answer"]) == 5 for line in lines)  # the other mode


def test_hf_vlm_batches_score_as_one_at_a_time(
    checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    """By default the harness hands hf_vlm its batch_size (8) questions at once; the packed,
    padded batch scores each question as it is scored alone."""
    vlm_dir, _ = checkpoints

    def scores(out: Path) -> dict[str, list[float]]:
        lines = (out / "predictions.jsonl").read_text().split("\n")
        return {r["question_id"]: r["choice_scores"] for r in map(json.loads, filter(None, lines))}

    _eval("hf_vlm", tmp_path / "one", f"checkpoint={vlm_dir}", flags=("--batch-size", "1"))
    _eval("hf_vlm", tmp_path / "all", f"checkpoint={vlm_dir}")
    assert json.loads((tmp_path / "all" / "config.json").read_text())["batch_size"] is None
    alone, batched = scores(tmp_path / "one"), scores(tmp_path / "all")
    assert alone.keys() == batched.keys() and len(alone) == 6
    for qid, row in alone.items():
        assert batched[qid] == pytest.approx(row, abs=1e-4), qid


def test_vlm_sam3_through_the_harness(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    vlm_dir, sam3_dir = checkpoints
    results = _eval(
        "vlm_sam3",
        tmp_path / "eval",
        f"sam3={sam3_dir}",
        "prompt=part_of_object",
        "score_threshold=0.0",  # a random SAM 3 is not confident: keep every instance
        flags=("--checkpoint", str(vlm_dir)),
    )
    overall = results["overall"]
    assert overall["n_questions"] == 6
    assert overall["accuracy"] is not None and overall["macro_giou"] is not None
    lines = [
        json.loads(x)
        for x in (tmp_path / "eval" / "predictions.jsonl").read_text().split("\n")
        if x
    ]
    assert all(" of " in p for line in lines for p in line["sam3_prompts"])


def test_vlm_sam3_scores_equal_hf_vlm(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    vlm_dir, sam3_dir = checkpoints
    a = _eval("hf_vlm", tmp_path / "a", f"checkpoint={vlm_dir}")
    b = _eval("vlm_sam3", tmp_path / "b", f"checkpoint={vlm_dir}", f"sam3={sam3_dir}")
    assert a["overall"]["accuracy"] == b["overall"]["accuracy"]


def test_sam3_masks_one_per_phrase_at_image_size(checkpoints: tuple[Path, Path]) -> None:
    _, sam3_dir = checkpoints
    keep_all = load_sam3(
        str(sam3_dir), device=torch.device("cpu"), dtype=torch.float32, score_threshold=0.0
    )
    image = np.random.default_rng(0).integers(0, 255, (30, 44, 3), dtype=np.uint8)
    masks = keep_all.segment(image, ["wing", "tail of airplane"])
    assert [m.shape for m in masks] == [(30, 44)] * 2 and all(m.dtype == bool for m in masks)
    keep_none = load_sam3(
        str(sam3_dir), device=torch.device("cpu"), dtype=torch.float32, score_threshold=1.0
    )
    assert not any(m.any() for m in keep_none.segment(image, ["wing"]))


def test_part_phrase() -> None:
    assert part_phrase("wing", "airplane", "part") == "wing"
    assert part_phrase("wing", "airplane", "part_of_object") == "wing of airplane"


def test_scorer_reads_the_checkpoint_architecture(checkpoints: tuple[Path, Path]) -> None:
    vlm_dir, _ = checkpoints
    scorer = load_vlm_scorer(str(vlm_dir), device="cpu")
    assert scorer.adapter.kind == "qwen2_5_vl"
    assert scorer.processor.turn_end == "<|im_end|>"


def test_checkpoint_flag_and_model_opt_are_one_option(
    checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    vlm_dir, _ = checkpoints
    args = ["eval", "--model", "hf_vlm", str(FIXTURES / "tiny_qa.json"), "--out", str(tmp_path)]
    args += ["--checkpoint", str(vlm_dir), "--model-opt", f"checkpoint={vlm_dir}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and "given twice" in result.output
    result = CliRunner().invoke(cli, ["eval", "--model", "hf_vlm", *args[3:6]])
    assert result.exit_code != 0 and "--checkpoint DIR" in result.output
