"""Assembling SegLLM from its parts, and its named configs (presets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from partonomy.config import merge_overrides
from partonomy.models.backbones.llava import (
    LlavaConfig,
    build_llava,
    image_seq_length,
    load_tokenizer,
    token_id,
    uses_im_start_end,
)
from partonomy.models.segllm.config import SegLLMConfig
from partonomy.models.segllm.decoder import DecoderConfig, QueryMaskHead
from partonomy.models.segllm.model import SegLLMModel
from partonomy.models.segllm.processing import SegLLMProcessor
from partonomy.models.segllm.prompts import SegPredictorPrompts
from partonomy.models.segllm.reencode import build_reencoder
from partonomy.models.segllm.targets import SEG_INPUT_TOKEN, SEG_TOKEN, SegLLMTargets

SEGLLM_TOKENS = (SEG_TOKEN, SEG_INPUT_TOKEN)
IMAGE_PROMPT = "{image} "
"""SegLLM's first user turn: ``[IMAGE256:...] question`` (the image tokens, a space, the text)."""


def build_segllm(cfg: SegLLMConfig) -> tuple[SegLLMModel, SegLLMProcessor]:
    """SegLLM: LLaVA + ``<seg>`` -> mlp2x -> 8 pseudo-text tokens -> the query decoder, and
    ``<seg_input>`` references re-encoding earlier rounds' masks (package docstring).

    Returns:
        ``(model, processor)`` on CPU, every parameter trainable, the new parts in LLaVA's dtype.
    """
    with torch.random.fork_rng(devices=[]):
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        tokenizer = load_tokenizer(cfg.llava, extra_tokens=SEGLLM_TOKENS)
        llava = build_llava(cfg.llava, tokenizer)
        d = int(llava.config.text_config.hidden_size)  # type: ignore[union-attr]
        prompts = SegPredictorPrompts(
            d, cfg.decoder.text_tokens, cfg.decoder.text_dim, token_id(tokenizer, SEG_TOKEN)
        )
        head = QueryMaskHead(cfg.decoder)
        reencoder = build_reencoder(
            llava, tokenizer, decoder_size=cfg.decoder.image_size, config=cfg.reencode
        )
    for module in (prompts, head, reencoder):
        module.to(llava.dtype)
    model = SegLLMModel(
        llava=llava,
        prompt_source=prompts,
        mask_head=cast(Any, head),
        input_encoders={"reencode": reencoder},
        config=cfg,
        family="segllm",
    )
    processor = SegLLMProcessor(
        tokenizer,
        seg_input_id=token_id(tokenizer, SEG_INPUT_TOKEN),
        targets=SegLLMTargets(),
        image_seq_length=image_seq_length(llava),
        clip_image_size=int(llava.config.vision_config.image_size),  # type: ignore[union-attr]
        sam_image_size=cfg.decoder.image_size,
        use_im_start_end=uses_im_start_end(cfg.llava),
        max_length=cfg.max_length,
        image_prompt=IMAGE_PROMPT,
    )
    return model, processor


def tiny_decoder() -> DecoderConfig:
    """A decoder for 64-px inputs that builds and runs in well under a second on a CPU."""
    return DecoderConfig(
        image_size=64,
        text_dim=32,
        text_tokens=8,
        hidden_dim=32,
        mask_dim=32,
        num_queries=8,
        decoder_layers=2,
        encoder_layers=1,
        heads=2,
        ffn_dim=64,
        encoder_ffn_dim=64,
        backbone_depths=[1, 1, 1, 1],
        backbone_widths=[16, 32, 64, 128],
        backbone_stem=16,
        backbone_block="basic",
    )


def tiny_config(**overrides: Any) -> SegLLMConfig:
    """A tiny random SegLLM that builds offline in seconds (tests, quickstart, CI)."""
    base = SegLLMConfig(decoder=tiny_decoder(), max_length=512)
    return merge_overrides(base, overrides, "tiny_config")  # type: ignore[no-any-return]


def segllm_7b_config() -> SegLLMConfig:
    """SegLLM-7B: LLaVA-1.5-7B (v1 layout) with CLIP-L/14 at 224 (not the 336 tower LLaVA-1.5 was
    trained with), mlp2x projector, HIPIE R50 sizes; full fine-tuning from there.

    The paths are placeholders for local copies; a converted released checkpoint
    (``partonomy convert-checkpoint --from segllm``) carries its own paths instead.
    """
    return SegLLMConfig(
        llava=LlavaConfig(
            pretrained="checkpoints/llava-v1.5-7b",
            layout="llava_v1",
            tokenizer="pretrained",
            vision_tower="checkpoints/clip-vit-large-patch14",
            im_start_end=False,
            dtype="bfloat16",
        ),
    )


def segllm_13b_config() -> SegLLMConfig:
    """SegLLM on LLaVA-1.5-13B (no 13B SegLLM was released; for training one)."""
    cfg = segllm_7b_config()
    cfg.llava.pretrained = "checkpoints/llava-v1.5-13b"
    return cfg


PRESETS: dict[str, Callable[[], SegLLMConfig]] = {
    "tiny": tiny_config,
    "segllm_7b": segllm_7b_config,
    "segllm_13b": segllm_13b_config,
}
"""Named configs: ``tiny`` builds offline; the real ones need local weights at their paths."""
