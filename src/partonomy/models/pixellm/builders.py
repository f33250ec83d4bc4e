"""Assembling PixelLM from its parts, and its named configs (presets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from partonomy.config import merge_overrides
from partonomy.models.backbones.llava import (
    LlavaConfig,
    build_llava,
    load_tokenizer,
    token_id,
    uses_im_start_end,
)
from partonomy.models.pixellm.codebook import CodebookPrompts, CodebookTargets, codebook_tokens
from partonomy.models.pixellm.config import PixelLMConfig
from partonomy.models.pixellm.decoder import PixelLMMaskHead
from partonomy.models.pixellm.vision import (
    PixelLMModel,
    PixelLMProcessor,
    PixelLMProjector,
    resize_vision_tower,
)


def build_pixellm(cfg: PixelLMConfig) -> tuple[PixelLMModel, PixelLMProcessor]:
    """PixelLM: LLaVA (CLIP at ``clip_image_size``, ``llm_grid ** 2`` image tokens, its own
    2-layer projector) + the codebook prompt source + the light multi-scale mask head.

    The tokenizer gets ``[SEG0] ... [SEG{n-1}]`` first, then ``<im_start>``/``<im_end>`` (the
    original's order, so the ids match its releases). The projector is replaced by a fresh
    :class:`~partonomy.models.pixellm.vision.PixelLMProjector` unless the loaded one already has
    its shapes (the original also starts it from scratch: ``separate_mm_projector``).

    Returns:
        ``(model, processor)`` on CPU, every parameter trainable.
    """
    tokens = codebook_tokens(cfg.tokens_per_target)
    with torch.random.fork_rng(devices=[]):
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        tokenizer = load_tokenizer(cfg.llava, extra_tokens=tokens, extra_first=True)
        llava: Any = build_llava(cfg.llava, tokenizer)  # HF configs are loosely typed
        resize_vision_tower(llava, cfg.clip_image_size)
        vision = llava.config.vision_config
        clip_hidden = int(vision.hidden_size)
        d = int(llava.config.text_config.hidden_size)
        projector = llava.model.multi_modal_projector
        if not isinstance(projector, PixelLMProjector):
            llava.model.multi_modal_projector = PixelLMProjector(clip_hidden, d, cfg.llm_grid)
        grid = cfg.clip_image_size // int(vision.patch_size)
        head = PixelLMMaskHead(
            clip_hidden=clip_hidden,
            llm_hidden=d,
            decoder=cfg.decoder,
            scales=cfg.scales,
            grid=grid,
            input_size=cfg.clip_image_size,
        )
        prompts = CodebookPrompts(
            d,
            cfg.decoder.prompt_dim,
            [token_id(tokenizer, t) for t in tokens],
            cfg.seg_token_num,
            cfg.incomplete_groups,
        )
    dtype = llava.dtype
    for module in (llava.model.multi_modal_projector, head, prompts):
        module.to(dtype)
    model = PixelLMModel(
        llava=llava,
        prompt_source=prompts,
        mask_head=head,
        config=cfg,
        family="pixellm",
        mask_layers=cfg.mask_layers,
    )
    processor = PixelLMProcessor(
        tokenizer,
        targets=CodebookTargets(tokens),
        image_seq_length=cfg.llm_grid**2,
        clip_image_size=cfg.clip_image_size,
        sam_image_size=cfg.clip_image_size,
        use_im_start_end=uses_im_start_end(cfg.llava),
        max_length=cfg.max_length,
        normalize=cfg.normalize,
    )
    return model, processor


def tiny_config(**overrides: Any) -> PixelLMConfig:
    """A tiny random PixelLM that builds offline in seconds (tests, quickstart, CI): a 64-px CLIP
    with 4-px patches (a 16 x 16 grid, 4 x 4 LLM tokens) and a 64-wide, 1-block decoder."""
    from partonomy.models.pixellm.config import DecoderConfig

    base = PixelLMConfig(
        llava=LlavaConfig(image_size=64, patch_size=4),
        clip_image_size=64,
        llm_grid=4,
        mask_layers=[-2, -1],
        decoder=DecoderConfig(prompt_dim=64, depth=1, heads=4, mlp_dim=128, iou_head_hidden=64),
        max_length=256,
    )
    return merge_overrides(base, overrides, "tiny_config")  # type: ignore[no-any-return]


def pixellm_7b_config() -> PixelLMConfig:
    """PixelLM-7B for training from LLaVA-Lightning-7B-v1-1 (v1 layout) with CLIP-L/14-336 run at
    448 px; the projector and the mask branch start from scratch, as in the original.

    The paths are placeholders for local copies; a converted released checkpoint
    (``partonomy convert-checkpoint --from pixellm``) carries its own paths instead.
    """
    return PixelLMConfig(
        llava=LlavaConfig(
            pretrained="checkpoints/LLaVA-Lightning-7B-v1-1",
            layout="llava_v1",
            tokenizer="pretrained",
            vision_tower="checkpoints/clip-vit-large-patch14-336",
            dtype="bfloat16",
        ),
    )


def pixellm_13b_config() -> PixelLMConfig:
    """PixelLM-13B: llava-llama-2-13b-chat-lightning-preview (v1 layout), otherwise as 7B."""
    cfg = pixellm_7b_config()
    cfg.llava.pretrained = "checkpoints/llava-llama-2-13b-chat-lightning-preview"
    return cfg


PRESETS: dict[str, Callable[[], PixelLMConfig]] = {
    "tiny": tiny_config,
    "pixellm_7b": pixellm_7b_config,
    "pixellm_13b": pixellm_13b_config,
}
"""Named configs: ``tiny`` builds offline; the real ones need local weights at their paths."""
