"""PLUM on current HF VLMs (Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision), tiny random configs built
offline: forward shapes, dynamic-resolution image tokens, chat-template BIO targets, shared-prefix
scoring, the feedback loop, the trainable set and a short training run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.config import from_dict
from partonomy.models.core.family import get_family
from partonomy.models.core.losses import compute_losses, resolve_weights
from partonomy.models.core.scoring import ChoiceGroup, score_groups, score_groups_full
from partonomy.models.core.trainable import set_trainable
from partonomy.models.plum.bio import B, I, O
from partonomy.training.checkpoint import processor_new_token_ids
from partonomy.training.config import TrainConfig
from partonomy.training.recipe import run_training

pytestmark = pytest.mark.usefixtures("one_thread")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "qa"

KINDS = ("qwen2_5_vl", "qwen3_vl", "llava_onevision")
TINY_SAM = {"image_size": 64, "patch_size": 8, "decoder_hidden": 32, "encoder": "conv",
            "conv_width": 16}  # fmt: skip
SIZES = ((40, 72), (80, 36))  # two aspect ratios: different grids, different token counts


def plum_config(kind: str) -> dict[str, Any]:
    return {"backbone": kind, "vlm": {"text_hidden": 32, "text_heads": 2, "text_kv_heads": 1},
            "sam": dict(TINY_SAM), "bidir_heads": 2, "bidir_ff": 64, "bidir_dropout": 0.0,
            "feedback_heads": 2}  # fmt: skip


@pytest.fixture(scope="module", params=KINDS)
def built(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    family = get_family("plum")
    model, processor = family.build(from_dict(family.config_type, plum_config(request.param)))
    return request.param, model, processor


def _image(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)


def _example(processor: Any, size: tuple[int, int], parts=("left wing", "tail", "engine")) -> Any:
    rng = np.random.default_rng(1)
    masks = {p: (rng.random(size) > 0.5).astype(np.uint8) for p in parts}
    answer = "The airplane has " + ", ".join(f"a {p}" for p in parts) + "."
    return processor.encode(_image(size), [], "Which parts are visible?", answer, masks)


def test_forward_shapes_with_two_image_sizes(built: tuple[str, Any, Any]) -> None:
    _, model, processor = built
    examples = [_example(processor, s) for s in SIZES]
    batch = processor.collate(examples)
    with torch.no_grad():
        out = model(batch)
    b, length = batch.input_ids.shape
    vocab = model.llava.get_output_embeddings().weight.shape[0]
    assert out.logits.shape == (b, length, vocab)
    assert out.hidden.shape[:2] == (b, length)
    assert out.tag_logits is not None and out.tag_logits.shape == (b, length, 3)
    for row, size in enumerate(SIZES):
        assert len(out.masks[row]) == 3
        assert all(m.shape == size for m in out.masks[row])


def test_image_tokens_follow_each_image_grid(built: tuple[str, Any, Any]) -> None:
    _, model, processor = built
    examples = [_example(processor, s) for s in SIZES]
    counts = [processor.adapter.vision_input(_image(s)).n_tokens for s in SIZES]
    assert counts[0] != counts[1]  # dynamic resolution: the count depends on the image
    image_id = model.image_token_id
    for ex, n in zip(examples, counts, strict=True):
        where = (ex.input_ids == image_id).nonzero().squeeze(1)
        assert len(where) == n and bool((where.diff() == 1).all())  # one contiguous run
    batch = processor.collate(examples)
    with torch.no_grad():  # a sequence whose image tokens do not match its image is refused
        bad = batch.input_ids.clone()
        bad[0, (bad[0] == image_id).nonzero()[0]] = processor.tokenizer.pad_token_id
        with pytest.raises(ValueError, match=r"image tokens per row \[\d+, \d+\] differ"):
            model.language_model(bad, batch.attention_mask, batch.pixel_values, batch=batch)


def test_bio_targets_through_the_chat_template(built: tuple[str, Any, Any]) -> None:
    _, _, processor = built
    tok = processor.tokenizer
    ex = _example(processor, SIZES[0])
    ids = ex.input_ids.tolist()
    # The anchor is the template's own generation prompt; the prompt ends with it.
    prompt = processor.prompt([], "Which parts are visible?")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}]
    expected_anchor = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)[
        len(tok.apply_chat_template(messages, tokenize=False)) :
    ]
    assert processor.assistant_anchor == expected_anchor and prompt.endswith(expected_anchor)
    assert processor.turn_end == "<|im_end|>"
    labelled = [t for t, lab in zip(ids, ex.labels.tolist(), strict=True) if lab != -100]
    assert tok.decode(labelled) == "The airplane has a left wing, a tail, a engine.<|im_end|>"
    assert [tok.decode([ids[k] for k in span]).strip() for span in ex.spans] == [
        "left wing",
        "tail",
        "engine",
    ]
    tags = ex.tag_labels.tolist()
    for span in ex.spans:
        assert tags[span[0]] == B and all(tags[k] == I for k in span[1:])
    inside = set(range(ex.answer_start, ex.answer_end))
    spanned = {k for s in ex.spans for k in s}
    assert all(tags[k] == O for k in inside - spanned)
    assert all(tags[k] == -100 for k in set(range(len(ids))) - inside)


def test_shared_prefix_scoring_equals_per_choice_forwards(built: tuple[str, Any, Any]) -> None:
    _, model, processor = built
    model.eval()
    groups = []
    for k, size in enumerate(SIZES):
        choices = ["The airplane has a tail.", "It has a left wing and an engine.", "No."]
        examples = processor.encode_choices(_image(size, k), [], "Which parts?", choices)
        answers = []
        for ex in examples:
            a = torch.zeros_like(ex.input_ids, dtype=torch.bool)
            a[ex.answer_start : ex.answer_end] = True
            answers.append(a)
        groups.append(
            ChoiceGroup(
                input_ids=[ex.input_ids for ex in examples],
                scored=[ex.input_ids != model.image_token_id for ex in examples],
                answer=answers,
                pixel_values=examples[0].pixel_values,
                keep_hidden=1,
                vision=examples[0].vision,
            )
        )
    pad = processor.tokenizer.pad_token_id
    full = score_groups_full(model.llava, groups, pad_token_id=pad, vlm=model.vlm)
    for layout in ("packed", "expand"):
        shared = score_groups(
            model.llava,
            groups,
            image_token_id=model.image_token_id,
            pad_token_id=pad,
            layout=layout,
            vlm=model.vlm,
        )
        for s, f in zip(shared, full, strict=True):
            torch.testing.assert_close(s.conversation, f.conversation, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(s.answer, f.answer, atol=1e-4, rtol=1e-4)
            assert s.hidden is not None and f.hidden is not None
            torch.testing.assert_close(s.hidden, f.hidden, atol=1e-4, rtol=1e-4)
    model.train()


def test_feedback_changes_the_second_mask_not_the_first(built: tuple[str, Any, Any]) -> None:
    _, model, processor = built
    batch = processor.collate([_example(processor, SIZES[1])])
    with torch.no_grad():
        with_feedback = model(batch)
        pooler, model.feedback = model.feedback, None
        try:
            without = model(batch)
        finally:
            model.feedback = pooler
    torch.testing.assert_close(with_feedback.masks[0][0], without.masks[0][0])
    assert not torch.allclose(with_feedback.masks[0][1], without.masks[0][1])


def test_trainable_set_lora_by_module_type(built: tuple[str, Any, Any]) -> None:
    kind, _, _ = built
    family = get_family("plum")
    model, processor = family.build(from_dict(family.config_type, plum_config(kind)))
    spec = from_dict(family.trainable_type, {"lora": {"target_modules": ["all-linear"]}})
    names = set(set_trainable(model, spec, new_token_ids=processor_new_token_ids(processor)))
    lora = {n for n in names if ".lora_" in n}
    linear_kinds = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora}
    # every Linear of the decoder layers, chosen by type, and only inside the language model
    assert linear_kinds == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert all(n.startswith("llava.model.language_model.") for n in lora)
    frozen = ("llava.model.visual.", "llava.model.vision_tower.", "mask_head.sam.vision_encoder.")
    assert not any(n.startswith(frozen) for n in names)
    heads = ("prompt_source.span_extractor.", "prompt_source.span_query.", "feedback.")
    assert all(any(n.startswith(h) for n in names) for h in heads)
    assert "llava.lm_head.weight" in names


def test_short_training_run_loss_falls(built: tuple[str, Any, Any]) -> None:
    kind, _, _ = built
    family = get_family("plum")
    model, processor = family.build(from_dict(family.config_type, plum_config(kind)))
    batch = processor.collate([_example(processor, s) for s in SIZES])
    weights = resolve_weights(family.loss_terms)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    totals = []
    torch.manual_seed(0)
    for _ in range(12):
        loss = compute_losses(family.loss_terms, weights, model(batch), batch)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        totals.append(float(loss.total.detach()))
    assert np.mean(totals[-3:]) < 0.9 * np.mean(totals[:3]), totals


def test_train_checkpoint_and_harness_on_qwen2_5_vl(tmp_path: Path) -> None:
    """The recipe trains PLUM on a Qwen2.5-VL backbone (LoRA on every Linear), saves it, and
    the harness loads the checkpoint and scores the fixture questions with masks."""
    run = tmp_path / "run"
    cfg = {"family": "plum", "run_dir": str(run), "max_steps": 2, "cpu": True, "num_threads": 1,
           "model": plum_config("qwen2_5_vl"),
           "trainable": {"language_model": "lora", "lora": {"target_modules": ["all-linear"]}},
           "optim": {"lr": 2e-3, "warmup_steps": 1},
           "data": {"qa": {"files": [str(FIXTURES / "tiny_qa.json")]}, "micro_batch_size": 2},
           "checkpoint": {"every": 0}, "log": {"progress": False}}  # fmt: skip
    result = run_training(from_dict(TrainConfig, cfg))
    assert result.steps == 2
    out = tmp_path / "eval"
    args = ["eval", "--model", "plum", str(FIXTURES / "tiny_qa.json"), "--out", str(out)]
    args += ["--no-progress", "--model-opt", f"checkpoint={run}", "--model-opt", "device=cpu"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    results = json.loads((out / "results.json").read_text())
    assert results["overall"]["n_questions"] == 6
    assert results["overall"]["macro_giou"] is not None
