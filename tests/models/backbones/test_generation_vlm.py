"""Free-form generation on HF VLM backbones (:mod:`partonomy.models.core.generation_vlm`): the
model's own ``generate`` and a teacher-forced pass, through ``SegPredictor``, ``partonomy
predict`` and a VQA task, on tiny random Qwen2.5-VL / Qwen3-VL / LLaVA-OneVision PLUMs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from partonomy.cli.main import cli
from partonomy.models.backbones.hf_vlm import VLM_KINDS
from partonomy.models.core.generation import generate
from partonomy.models.core.generation_vlm import VlmVision, lm_vision_input
from partonomy.models.core.predictor import SegPredictor
from partonomy.models.plum.builders import PRESETS, build_plum

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=VLM_KINDS)
def built(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    model, processor = build_plum(PRESETS[f"tiny_{request.param}"]())
    return request.param, model.eval(), processor


def _image(size: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _prompts(processor: Any) -> list[Any]:
    return [
        processor.encode(_image((40, 56), 0), [], "What parts does it have?", None),
        processor.encode(_image((64, 32), 1), [], "Which parts of the car are visible?", None),
    ]


def test_batched_generation_equals_one_prompt_at_a_time(built: tuple[str, Any, Any]) -> None:
    """Two prompts of different lengths and image sizes (left padding, per-row image grids)
    generate the same tokens and hidden states together as alone."""
    _, model, processor = built
    prompts = _prompts(processor)
    kwargs = {
        "stop_token_ids": [int(processor.tokenizer.eos_token_id)],
        "max_new_tokens": 6,
        "pad_token_id": int(processor.tokenizer.pad_token_id),
    }
    vision = lm_vision_input(model, prompts)
    assert isinstance(vision, VlmVision)
    both = generate(model.llava, [p.input_ids for p in prompts], vision, **kwargs)
    for p, together in zip(prompts, both, strict=True):
        alone = generate(model.llava, [p.input_ids], lm_vision_input(model, [p]), **kwargs)[0]
        assert torch.equal(together.sequence, alone.sequence)
        assert together.prompt_length == p.input_ids.shape[0]
        assert together.hidden is not None and alone.hidden is not None
        assert together.hidden.shape == (together.sequence.shape[0], alone.hidden.shape[1])
        torch.testing.assert_close(together.hidden, alone.hidden, atol=1e-5, rtol=1e-4)


def test_generated_tokens_are_the_teacher_forced_argmax(built: tuple[str, Any, Any]) -> None:
    """The hidden states of the teacher-forced pass predict exactly the tokens ``generate``
    chose (same positions, same cache-free states), placeholders never generated."""
    _, model, processor = built
    prompt = _prompts(processor)[0]
    vision = lm_vision_input(model, [prompt])
    assert isinstance(vision, VlmVision)
    gen = generate(
        model.llava,
        [prompt.input_ids],
        vision,
        stop_token_ids=[int(processor.tokenizer.eos_token_id)],
        max_new_tokens=8,
        pad_token_id=int(processor.tokenizer.pad_token_id),
    )[0]
    assert gen.hidden is not None and gen.new_tokens.numel() > 0
    logits = model.llava.lm_head(gen.hidden[gen.prompt_length - 1 : -1])  # (n, V)
    logits[:, vision.adapter.placeholder_token_ids] = float("-inf")
    assert torch.equal(logits.argmax(-1), gen.new_tokens)
    assert not set(gen.new_tokens.tolist()) & set(vision.adapter.placeholder_token_ids)


def test_answer_gives_text_spans_and_masks(built: tuple[str, Any, Any]) -> None:
    kind, model, processor = built
    predictor = SegPredictor(model, processor, max_new_tokens=12)
    image = _image((40, 56), 0)
    streamed: list[str] = []
    answer = predictor.answer(image, "What parts does the airplane have?", on_token=streamed.append)
    assert answer.text and streamed and streamed[-1] == answer.text
    assert len(answer.spans) == len(answer.masks) > 0, kind  # the fixed-seed tagger marks spans
    assert all(m.shape == (40, 56) and m.dtype == bool for m in answer.masks)
    assert all(answer.text[s.start : s.end] == s.text for s in answer.spans)


def test_partonomy_predict_on_qwen2_5_vl_with_sam2(tmp_path: Path) -> None:
    image = tmp_path / "plane.png"
    Image.fromarray(_image((48, 64), 3)).save(image)
    out = tmp_path / "out"
    args = ["predict", str(image), "What parts does the airplane have?", "--model", "plum"]
    args += ["--preset", "tiny_qwen2_5_vl_sam2", "--device", "cpu", "--dtype", "float32"]
    args += ["--max-new-tokens", "12", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    text = (out / "answer.txt").read_text()
    spans = json.loads((out / "spans.json").read_text())
    assert text.strip() and (out / "overlay.png").is_file()
    items = spans["spans"] if isinstance(spans, dict) else spans
    assert items and all("mask" in s for s in items)


def test_textvqa_runs_on_a_qwen2_5_vl_plum(tmp_path: Path) -> None:
    from fixtures.tasks import builders

    data = builders.make_textvqa(tmp_path)
    out = tmp_path / "eval"
    args = ["eval", "--no-progress", "--task", "textvqa", "--model", "plum", str(data)]
    args += ["--out", str(out), "--model-opt", "preset=tiny_qwen2_5_vl"]
    args += ["--model-opt", "device=cpu", "--model-opt", "max_new_tokens=4"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines() if x]
    assert lines and all(isinstance(line.get("answer"), str) for line in lines), lines[:1]
    assert 0.0 <= results["overall"]["accuracy"] <= 1.0
