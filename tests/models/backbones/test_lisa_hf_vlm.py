"""LISA (``[SEG]`` prompts) on an HF VLM backbone: a tiny random Qwen2.5-VL with a tiny SAM 2
(``LisaConfig.backbone``), offline: ``[SEG]`` targets through the chat template, forward
shapes with two image sizes, the trainable set, a short training run whose loss falls, and
free-form generation through the predictor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from partonomy.config import from_dict
from partonomy.models.core.family import get_family
from partonomy.models.core.losses import compute_losses, resolve_weights
from partonomy.models.core.predictor import SegPredictor
from partonomy.models.core.targets import SEG_TOKEN
from partonomy.models.core.trainable import set_trainable
from partonomy.training.checkpoint import processor_new_token_ids

pytestmark = pytest.mark.usefixtures("one_thread")
SIZES = ((40, 72), (80, 36))
PARTS = ("left wing", "tail", "engine")
TINY = {"backbone": "qwen2_5_vl", "vlm": {"text_hidden": 32, "text_heads": 2, "text_kv_heads": 1},
        "sam": {"kind": "sam2", "image_size": 64, "patch_size": 8, "decoder_hidden": 32,
                "encoder": "conv", "conv_width": 16}}  # fmt: skip


def build() -> tuple[Any, Any]:
    family = get_family("lisa")
    return family.build(from_dict(family.config_type, TINY))


@pytest.fixture(scope="module")
def built() -> tuple[Any, Any]:
    return build()


def _example(processor: Any, size: tuple[int, int]) -> Any:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    masks = {p: (rng.random(size) > 0.5).astype(np.uint8) for p in PARTS}
    answer = "The airplane has " + ", ".join(f"a {p}" for p in PARTS) + "."
    return processor.encode(image, [], "Which parts are visible?", answer, masks)


def test_seg_targets_through_the_chat_template(built: tuple[Any, Any]) -> None:
    model, processor = built
    seg = int(processor.tokenizer.convert_tokens_to_ids(SEG_TOKEN))
    assert model.vlm is not None and seg == model.prompt_source.seg_token_id
    ex = _example(processor, SIZES[0])
    ids = ex.input_ids.tolist()
    # one [SEG] token after each part name, inside the answer, each one a target
    where = [k for k, t in enumerate(ids) if t == seg]
    assert len(where) == len(PARTS) and [s[0] for s in ex.spans] == where
    assert all(ex.answer_start <= k < ex.answer_end for k in where)
    text = processor.tokenizer.decode(ids[ex.answer_start : ex.answer_end])
    assert text.startswith("The airplane has a left wing [SEG]") and text.endswith("<|im_end|>")
    assert processor.assistant_anchor == "<|im_start|>assistant\n"


def test_forward_shapes_with_two_image_sizes(built: tuple[Any, Any]) -> None:
    model, processor = built
    examples = [_example(processor, s) for s in SIZES]
    counts = [int((e.input_ids == model.image_token_id).sum()) for e in examples]
    assert counts[0] != counts[1]  # dynamic resolution: each image its own token count
    with torch.no_grad():
        out = model(processor.collate(examples))
    assert out.logits.shape[:2] == out.hidden.shape[:2] and out.tag_logits is None
    assert [len(m) for m in out.masks] == [len(PARTS)] * 2
    assert [tuple(out.masks[i][0].shape) for i in range(2)] == list(SIZES)


def test_trainable_set() -> None:
    model, processor = build()
    family = get_family("lisa")
    spec = from_dict(family.trainable_type, {"lora": {"target_modules": ["all-linear"]}})
    names = set(set_trainable(model, spec, new_token_ids=processor_new_token_ids(processor)))
    lora = {n for n in names if ".lora_" in n}
    assert lora and all(n.startswith("llava.model.language_model.") for n in lora)
    assert any(n.startswith("prompt_source.projection.") for n in names)  # text_hidden_fcs
    assert any(n.startswith("mask_head.sam.mask_decoder.") for n in names)
    frozen = (
        "llava.model.visual.",
        "mask_head.sam.vision_encoder.",
        "mask_head.sam.prompt_encoder.",
    )
    assert not any(n.startswith(frozen) for n in names)


def test_short_training_run_loss_falls() -> None:
    model, processor = build()
    family = get_family("lisa")
    batch = processor.collate([_example(processor, s) for s in SIZES])
    weights = resolve_weights(family.loss_terms)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    totals = []
    torch.manual_seed(0)
    for _ in range(12):
        loss = compute_losses(family.loss_terms, weights, model(batch), batch)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        totals.append(float(loss.total.detach()))
    assert np.mean(totals[-3:]) < 0.9 * np.mean(totals[:3]), totals


def test_generation_answers_with_masks_per_generated_seg(built: tuple[Any, Any]) -> None:
    model, processor = built
    image = np.random.default_rng(2).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    answer = SegPredictor(model, processor, max_new_tokens=8).answer(image, "What parts?")
    assert answer.text and len(answer.masks) == len(answer.spans)
    assert all(m.shape == (40, 56) for m in answer.masks)
