"""SegLMM end to end on the tiny config: shapes, image sharing, feedback loop, sizes, teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from partonomy.models.core.losses import teacher_hidden_states
from partonomy.models.plum.bio import B, I
from partonomy.models.plum.builders import PRESETS, build_plum, tiny_config
from partonomy.models.plum.losses import plum_loss

QUESTION = "What visible parts does the airplane in the image have?"
ANSWER = "The airplane in the image has the following visible parts: front wheel, tail, and wing."


@pytest.fixture(scope="module")
def built():
    model, processor = build_plum(tiny_config())
    return model.eval(), processor


def make_example(processor, seed: int = 0, size: tuple[int, int] = (40, 60), key=None, **kw):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    masks = {p: (rng.random(size) > 0.5).astype(np.uint8) for p in ("wing", "front wheel", "tail")}
    return processor.encode(image, [], QUESTION, ANSWER, masks, image_key=key, **kw), image, masks


def test_forward_shapes(built):
    model, processor = built
    ex1, _, _ = make_example(processor, 0)
    ex2 = processor.encode(
        np.zeros((30, 20, 3), np.uint8), [("Hi.", "Hello.")], "Is it red?", "No."
    )
    batch = processor.collate([ex1, ex2])
    out = model(batch)
    b, length = batch.input_ids.shape
    vocab = len(processor.tokenizer)
    d = model.llava.config.text_config.hidden_size
    assert out.logits.shape == (b, length, vocab)
    assert out.hidden.shape == (b, length, d)
    assert out.tag_logits.shape == (b, length, 3)
    assert out.text_positions.shape == (b, length) and out.text_positions.dtype == torch.bool
    n_img = processor.image_seq_length
    assert (
        int((~out.text_positions[0]).sum()) == n_img
    )  # first row: no padding, image tokens excluded
    assert [len(m) for m in out.masks] == [3, 0]
    assert out.spans[0] == ex1.spans and out.spans[1] == []
    grid = model.mask_head.sam.config.prompt_encoder_config.image_embedding_size
    for mask, low, query in zip(
        out.masks[0], out.low_res_masks[0], out.span_queries[0], strict=True
    ):
        assert mask.shape == (40, 60)
        assert low.shape == (1, 4 * grid, 4 * grid)
        assert query.shape == (model.mask_head.sam.config.prompt_encoder_config.hidden_size,)
    assert all(t.ndim == 0 for t in out.iou_predictions[0])
    # Spans are in token order, one per part, and the answer's BIO labels mark them.
    assert ex1.span_parts == ["front wheel", "tail", "wing"]
    starts = [s[0] for s in ex1.spans]
    assert starts == sorted(starts)
    assert [int(ex1.tag_labels[s[0]]) for s in ex1.spans] == [B, B, B]
    assert int(ex1.tag_labels[ex1.spans[0][1]]) == I


def test_shared_image_runs_once_and_gives_the_same_result(built):
    model, processor = built
    key = object()
    ex_a, image, masks = make_example(processor, 1, key=key)
    ex_b = processor.encode(
        image, [], QUESTION, "It has a wing.", {"wing": masks["wing"]}, image_key=key
    )
    shared = processor.collate([ex_a, ex_b])
    assert shared.pixel_values.shape[0] == 1 and shared.image_index.tolist() == [0, 0]
    ex_b.image_key = ex_a.image_key = None
    separate = processor.collate([ex_a, ex_b])
    assert separate.pixel_values.shape[0] == 2
    calls = []
    hook = model.mask_head.sam.vision_encoder.register_forward_hook(
        lambda m, i, o: calls.append(i[0].shape[0])
    )
    try:
        with torch.no_grad():
            out_shared = model(shared)
            out_separate = model(separate)
    finally:
        hook.remove()
    assert calls == [1, 2]  # one batched encoder call per forward, over the distinct images
    torch.testing.assert_close(out_shared.logits, out_separate.logits)
    for a, b in zip(out_shared.masks[1], out_separate.masks[1], strict=True):
        torch.testing.assert_close(a, b)


def test_feedback_changes_the_second_mask_not_the_first(built):
    model, processor = built
    ex, _, _ = make_example(processor, 2)
    batch = processor.collate([ex])
    with torch.no_grad():
        with_feedback = model(batch)
        pooler = model.feedback
        model.feedback = None
        try:
            without = model(batch)
        finally:
            model.feedback = pooler
    torch.testing.assert_close(with_feedback.masks[0][0], without.masks[0][0])
    assert not torch.allclose(with_feedback.masks[0][1], without.masks[0][1])
    assert not torch.allclose(with_feedback.masks[0][2], without.masks[0][2])


def test_gradients_flow_through_the_history(built):
    model, processor = built
    ex, _, _ = make_example(processor, 3)
    batch = processor.collate([ex])
    with torch.no_grad():
        emb = model.image_embeddings(batch.sam_pixel_values)
        hidden, _ = model.language_model(batch.input_ids, batch.attention_mask, batch.pixel_values)
    hidden = hidden[0].clone().requires_grad_(True)
    masks = model.segment(hidden, ex.spans, emb[0], ex.original_size, ex.sam_input_size)
    masks[1].sum().backward()
    first = ex.spans[0]
    # The second mask depends on the first span's tokens only through the feedback history.
    assert hidden.grad[first].abs().sum() > 0
    unrelated = [k for k in range(ex.answer_start) if k not in {t for s in ex.spans for t in s}]
    assert hidden.grad[unrelated].abs().sum() == 0


def test_train_step_reduces_nothing_to_nan(built):
    model, processor = built
    ex, _, _ = make_example(processor, 4)
    batch = processor.collate([ex, ex])
    model.train()
    try:
        loss = plum_loss(model(batch), batch)
        loss.total.backward()
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)
    assert torch.isfinite(loss.total) and loss.n_masks == 6
    assert loss.bio.item() > 0 and loss.seg.item() > 0


def test_predicted_spans_come_from_the_answer(built):
    model, processor = built
    ex, _, _ = make_example(processor, 5)
    batch = processor.collate([ex])
    with torch.no_grad():
        out = model(batch, span_source="predicted")
    assert len(out.masks[0]) == len(out.spans[0])
    assert all(ex.answer_start <= k < ex.answer_end for span in out.spans[0] for k in span)
    with pytest.raises(ValueError, match="span_source"):
        model(batch, span_source="oracle")


@pytest.mark.parametrize(
    ("llava", "sam"),
    [
        ({"image_size": 32, "patch_size": 8}, {"image_size": 64, "patch_size": 8}),
        ({"image_size": 48, "patch_size": 16}, {"image_size": 96, "patch_size": 16}),
        (
            {"image_size": 32, "patch_size": 8},
            {"image_size": 64, "patch_size": 4, "encoder": "conv"},
        ),
    ],
)
def test_sizes_come_from_the_configs(llava, sam):
    model, processor = build_plum(tiny_config(llava=llava, sam=sam, use_feedback=True))
    model.eval()
    ex, _, _ = make_example(processor, 6, size=(33, 21))
    n_img = (llava["image_size"] // llava["patch_size"]) ** 2
    assert int((ex.input_ids == processor.image_token_id).sum()) == n_img
    assert ex.pixel_values.shape == (3, llava["image_size"], llava["image_size"])
    assert ex.sam_pixel_values.shape == (3, sam["image_size"], sam["image_size"])
    with torch.no_grad():
        out = model(processor.collate([ex]))
    grid = sam["image_size"] // sam["patch_size"]
    assert out.low_res_masks[0][0].shape == (1, 4 * grid, 4 * grid)
    assert out.masks[0][2].shape == (33, 21)


def test_image_token_count_is_checked(built):
    model, processor = built
    ex, _, _ = make_example(processor, 7)
    batch = processor.collate([ex])
    first = int(torch.nonzero(batch.input_ids[0] == processor.image_token_id)[0])
    batch.input_ids[0, first] = processor.tokenizer.unk_token_id
    with pytest.raises(ValueError, match="image"):
        model(batch)


def test_teacher_hidden_states_disable_lora(built):
    from peft import LoraConfig, get_peft_model

    model, processor = built
    ex, _, _ = make_example(processor, 8)
    batch = processor.collate([ex])
    with torch.no_grad():
        base_hidden, _ = model.language_model(
            batch.input_ids, batch.attention_mask, batch.pixel_values
        )
    original = model.llava
    peft_llava = get_peft_model(
        original,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.llava = peft_llava
    try:
        with torch.no_grad():
            student, _ = model.language_model(
                batch.input_ids, batch.attention_mask, batch.pixel_values
            )
        teacher = teacher_hidden_states(model, batch)
        assert not teacher.requires_grad
        torch.testing.assert_close(teacher, base_hidden)
        assert not torch.allclose(student, base_hidden)  # LoRA active outside the context
    finally:
        model.llava = peft_llava.unload()
    with torch.no_grad():
        restored, _ = model.language_model(
            batch.input_ids, batch.attention_mask, batch.pixel_values
        )
    torch.testing.assert_close(restored, base_hidden)


def test_presets_and_deterministic_tiny_build():
    assert set(PRESETS) == {
        "tiny",
        "plum_7b",
        "plum_13b",
        "tiny_qwen2_5_vl",
        "tiny_qwen3_vl",
        "tiny_llava_onevision",
        "tiny_sam2",
        "tiny_sam_hq",
        "tiny_qwen2_5_vl_sam2",
        "plum_qwen2_5_vl_7b",
    }
    real = PRESETS["plum_13b"]()
    assert real.llava.layout == "llava_v1" and real.sam.layout == "original"
    a, _ = build_plum(tiny_config(seed=3))
    b, _ = build_plum(tiny_config(seed=3))
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), name


def test_batched_segmentation_equals_one_conversation_at_a_time(built):
    model, processor = built
    key = object()
    ex_a, image, masks = make_example(processor, 9, key=key)  # 3 spans
    ex_b = processor.encode(
        image, [], QUESTION, "It has a tail.", {"tail": masks["tail"]}, image_key=key
    )
    ex_c = processor.encode(image, [], QUESTION, "It is a plane.", None, image_key=key)  # no spans
    batch = processor.collate([ex_a, ex_c, ex_b])
    with torch.no_grad():
        out = model(batch)
        emb = model.image_embeddings(batch.sam_pixel_values)[0]
        for row, ex in enumerate([ex_a, ex_c, ex_b]):
            alone = model.segment_spans(
                out.hidden[row], ex.spans, emb, ex.original_size, ex.sam_input_size
            )
            assert len(alone.masks) == len(out.masks[row])
            for a, b in zip(alone.masks, out.masks[row], strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
            for a, b in zip(alone.iou_predictions, out.iou_predictions[row], strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_config_is_a_typed_schema():
    from partonomy.config import from_dict, to_dict
    from partonomy.errors import ConfigError
    from partonomy.models.plum.config import PlumConfig

    cfg = from_dict(
        PlumConfig, {"llava": {"text_hidden": 32}, "use_feedback": False}, source="x.yaml"
    )
    assert cfg.llava.text_hidden == 32 and cfg.sam.decoder_hidden == 32 and not cfg.use_feedback
    assert from_dict(PlumConfig, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match=r"text_hiden.*Did you mean 'text_hidden'"):
        from_dict(PlumConfig, {"llava": {"text_hiden": 32}})
    with pytest.raises(ConfigError, match="span_extractor_order"):
        from_dict(PlumConfig, {"span_extractor_order": "sideways"})
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        tiny_config(nope=1)
