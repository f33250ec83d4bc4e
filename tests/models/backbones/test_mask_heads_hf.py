"""SAM, SAM 2 and SAM-HQ as PLUM's mask head (tiny random configs): forward shapes, packed image
embeddings equal to HF's own, the feedback loop through each model's mask-input path, the
image-embedding cache, the trainable set and a short training run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from partonomy.config import from_dict
from partonomy.models.core.family import get_family
from partonomy.models.core.losses import compute_losses, resolve_weights
from partonomy.models.core.mask_heads import SamMaskHead
from partonomy.models.core.mask_heads_hf import Sam2MaskHead, SamHQMaskHead
from partonomy.models.core.predictor import SegPredictor
from partonomy.models.core.trainable import set_trainable
from partonomy.training.checkpoint import processor_new_token_ids

pytestmark = pytest.mark.usefixtures("one_thread")

HEADS = {"sam": SamMaskHead, "sam2": Sam2MaskHead, "sam_hq": SamHQMaskHead}
TINY_LLAVA = {"text_hidden": 32, "text_layers": 1, "text_heads": 2, "text_intermediate": 64,
              "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2, "image_size": 32,
              "patch_size": 8}  # fmt: skip


def plum_config(kind: str) -> dict[str, Any]:
    sam = {"kind": kind, "image_size": 64, "vision_hidden": 16 if kind == "sam2" else 32,
           "vision_layers": 2, "vision_heads": 2, "patch_size": 8, "decoder_hidden": 32}  # fmt: skip
    return {"llava": dict(TINY_LLAVA), "sam": sam, "bidir_heads": 2, "bidir_ff": 64,
            "bidir_dropout": 0.0, "feedback_heads": 2}  # fmt: skip


def build(kind: str) -> tuple[Any, Any]:
    family = get_family("plum")
    return family.build(from_dict(family.config_type, plum_config(kind)))  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=list(HEADS))
def built(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    model, processor = build(request.param)
    return request.param, model, processor


def _example(processor: Any, size: tuple[int, int] = (40, 56)) -> Any:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    parts = ("wing", "tail", "engine")
    masks = {p: (rng.random(size) > 0.5).astype(np.uint8) for p in parts}
    answer = "The airplane has a wing, a tail and an engine."
    return processor.encode(image, [], "Which parts are visible?", answer, masks)


def test_head_type_and_forward_shapes(built: tuple[str, Any, Any]) -> None:
    kind, model, processor = built
    assert type(model.mask_head) is HEADS[kind]
    batch = processor.collate([_example(processor), _example(processor, (30, 20))])
    with torch.no_grad():
        out = model(batch)
    low = model.mask_head.geometry.low_res_size
    for row, size in enumerate([(40, 56), (30, 20)]):
        assert [m.shape for m in out.masks[row]] == [size] * 3
        assert [tuple(m.shape) for m in out.low_res_masks[row]] == [(1, *low)] * 3
        assert all(i.shape == () for i in out.iou_predictions[row])


@pytest.mark.parametrize("kind", ["sam2", "sam_hq"])
def test_packed_embeddings_decode_as_hf(kind: str) -> None:
    """The head's one-tensor embedding gives the same masks as HF's own image embeddings (SAM's
    embedding is HF's encoder output itself: nothing is packed)."""
    model, _ = build(kind)
    head, sam = model.mask_head, model.mask_head.sam
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, head.input_size, head.input_size)
    sparse = torch.randn(2, 1, head.prompt_dim)
    dense = head.no_mask_dense(2)
    with torch.no_grad():
        low, iou = head.decode(head.image_embeddings(pixels), sparse, dense)
        pe = head.positional_embedding().expand(2, -1, -1, -1)
        if kind == "sam2":
            levels = sam.get_image_embeddings(pixels)
            ref, ref_iou, _, _ = sam.mask_decoder(
                image_embeddings=levels[-1],
                image_positional_embeddings=pe,
                sparse_prompt_embeddings=sparse[:, None],
                dense_prompt_embeddings=dense,
                multimask_output=False,
                high_resolution_features=levels[:-1],
            )
        else:
            emb, inter = sam.get_image_embeddings(pixels)
            ref, ref_iou = sam.mask_decoder(
                image_embeddings=emb,
                image_positional_embeddings=pe,
                sparse_prompt_embeddings=sparse[:, None],
                dense_prompt_embeddings=dense,
                multimask_output=False,
                hq_token_only=False,
                intermediate_embeddings=inter,
            )
    torch.testing.assert_close(low, ref[:, 0, 0])
    torch.testing.assert_close(iou, ref_iou.reshape(2))


def test_feedback_changes_the_second_mask_not_the_first(built: tuple[str, Any, Any]) -> None:
    _, model, processor = built
    batch = processor.collate([_example(processor)])
    with torch.no_grad():
        with_feedback = model(batch)
        pooler, model.feedback = model.feedback, None
        try:
            without = model(batch)
        finally:
            model.feedback = pooler
    torch.testing.assert_close(with_feedback.masks[0][0], without.masks[0][0])
    assert not torch.allclose(with_feedback.masks[0][1], without.masks[0][1])


def test_feedback_uses_the_models_own_mask_input_path(built: tuple[str, Any, Any]) -> None:
    _, model, _ = built
    own = model.mask_head.sam.prompt_encoder.mask_embed
    assert model.mask_head.mask_embed is own
    masks = torch.randn(2, 1, *model.mask_head.geometry.low_res_size)
    queries = torch.randn(2, model.mask_head.prompt_dim)
    pe = model.mask_head.positional_embedding()
    with torch.no_grad():
        before = model.feedback.encode(own, masks, queries, pe)
        own.conv3.weight.mul_(2.0)  # the feedback encoding reads these weights, not a copy
        after = model.feedback.encode(own, masks, queries, pe)
        own.conv3.weight.div_(2.0)
    assert not torch.allclose(before, after)


def test_image_embedding_cache(built: tuple[str, Any, Any]) -> None:
    _, model, processor = built
    predictor = SegPredictor(model, processor, image_cache=2)
    image = np.random.default_rng(3).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    key = predictor.set_image(image)
    calls = []
    handle = model.mask_head.sam.vision_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        cached = predictor.image_embeddings([key], [torch.zeros(1)])[0]
    finally:
        handle.remove()
    assert calls == []  # served from the cache
    _, sam_pixels, _, _ = processor.preprocess_image(image)
    with torch.no_grad():
        fresh = model.image_embeddings(sam_pixels[None])[0]
    torch.testing.assert_close(cached, fresh)
    model.train()


def test_trainable_set(built: tuple[str, Any, Any]) -> None:
    kind, _, _ = built
    model, processor = build(kind)
    family = get_family("plum")
    names = set(
        set_trainable(
            model, family.trainable_type(), new_token_ids=processor_new_token_ids(processor)
        )
    )
    sam_names = {n for n in names if n.startswith("mask_head.")}
    decoder = {
        n for n, _ in model.named_parameters() if n.startswith("mask_head.sam.mask_decoder.")
    }
    prompt = {
        n
        for n, _ in model.named_parameters()
        if n.startswith("mask_head.sam.prompt_encoder.") and "shared_embedding" not in n
    }
    assert decoder and prompt and sam_names == decoder | prompt  # paper default: encoder frozen


def test_short_training_run_loss_falls(built: tuple[str, Any, Any]) -> None:
    kind, _, _ = built
    model, processor = build(kind)
    family = get_family("plum")
    batch = processor.collate([_example(processor), _example(processor, (30, 20))])
    weights = resolve_weights(family.loss_terms)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    totals = []
    for _ in range(10):
        loss = compute_losses(family.loss_terms, weights, model(batch), batch)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        totals.append(float(loss.total.detach()))
    assert np.mean(totals[-3:]) < 0.9 * np.mean(totals[:3]), totals


def test_sam2_pixel_shuffle_packing_is_lossless() -> None:
    x = torch.randn(2, 8, 16, 16)
    torch.testing.assert_close(F.pixel_shuffle(F.pixel_unshuffle(x, 4), 4), x)


def test_random_sam2_with_the_conv_pyramid_encoder() -> None:
    """``sam.kind: sam2, encoder: conv``: three levels at strides p/4, p/2, p feed SAM 2's decoder,
    and the masks come out at 4x the embedding grid."""
    from partonomy.models.backbones.conv_encoder import ConvPyramidEncoder
    from partonomy.models.backbones.sam import SamConfig, build_sam

    cfg = SamConfig(kind="sam2", encoder="conv", image_size=32, patch_size=4, decoder_hidden=32,
                    conv_width=16)  # fmt: skip
    sam = build_sam(cfg)
    assert isinstance(sam.vision_encoder, ConvPyramidEncoder)
    levels = sam.vision_encoder(torch.randn(1, 3, 32, 32)).fpn_hidden_states
    assert [tuple(x.shape) for x in levels] == [(1, 32, 32, 32), (1, 32, 16, 16), (1, 32, 8, 8)]
    head = Sam2MaskHead(sam)
    emb = head.image_embeddings(torch.randn(2, 3, 32, 32))
    low, iou = head.decode(emb, torch.randn(2, 1, 32), head.no_mask_dense(2))
    assert emb.shape == (2, 4 * 32, 8, 8) and low.shape == (2, 32, 32) and iou.shape == (2,)
