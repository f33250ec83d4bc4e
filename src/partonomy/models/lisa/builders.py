"""Assembling LISA from its parts, and its named configs (presets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from partonomy.config import merge_overrides
from partonomy.models.backbones.llava import LlavaConfig
from partonomy.models.backbones.sam import SamConfig
from partonomy.models.core.builders import build_seg_token_model
from partonomy.models.core.model import SegLMM
from partonomy.models.core.processing import SegProcessor
from partonomy.models.core.targets import SEG_TOKEN, SegTokenTargets
from partonomy.models.lisa.config import LisaConfig


def build_lisa(cfg: LisaConfig) -> tuple[SegLMM, SegProcessor]:
    """LISA: LLaVA + ``[SEG]`` (a new token) -> ``Linear(d, d) -> ReLU -> Linear(d, 256)`` -> SAM's
    sparse prompt, with SAM's ``no_mask_embed`` as the dense prompt and one mask per ``[SEG]``.

    In part answers a ``[SEG]`` follows each part name ("a wing [SEG], an engine [SEG]"), as the
    original PARTONOMY code did for the baselines.
    """
    return build_seg_token_model(
        family="lisa",
        config=cfg,
        llava_cfg=cfg.llava,
        sam_cfg=cfg.sam,
        extra_tokens=(SEG_TOKEN,),
        targets=SegTokenTargets(),
        max_length=cfg.max_length,
        seed=cfg.seed,
        backbone=cfg.backbone,
        vlm_cfg=cfg.vlm,
    )


def tiny_config(**overrides: Any) -> LisaConfig:
    """A tiny random LISA that builds offline in seconds (tests, quickstart, CI): the same tiny
    LLaVA and SAM as PLUM's tiny config (:func:`partonomy.models.plum.builders.tiny_config`)."""
    return merge_overrides(LisaConfig(), overrides, "tiny_config")  # type: ignore[no-any-return]


def lisa_7b_config() -> LisaConfig:
    """LISA-7B: LLaVA-Lightning-7B-v1-1 (v1 layout, CLIP-L/14 at 224) + SAM ViT-H.

    The paths are placeholders for local copies; a converted released checkpoint
    (``partonomy convert-checkpoint --from lisa``) carries its own paths instead.
    """
    return LisaConfig(
        llava=LlavaConfig(
            pretrained="checkpoints/LLaVA-Lightning-7B-v1-1",
            layout="llava_v1",
            tokenizer="pretrained",
            dtype="bfloat16",
        ),
        sam=SamConfig(
            pretrained="checkpoints/sam_vit_h_4b8939.pth", layout="original", dtype="bfloat16"
        ),
    )


def lisa_13b_config() -> LisaConfig:
    """LISA-13B-llama2: llava-llama-2-13b-chat-lightning-preview (v1 layout) + SAM ViT-H."""
    cfg = lisa_7b_config()
    cfg.llava.pretrained = "checkpoints/llava-llama-2-13b-chat-lightning-preview"
    return cfg


def tiny_qwen2_5_vl_config() -> LisaConfig:
    """A tiny random LISA on a Qwen2.5-VL-shaped backbone (its chat template, dynamic-resolution
    image tokens) with a tiny SAM 2, offline (tests)."""
    return tiny_config(backbone="qwen2_5_vl", sam={"kind": "sam2", "vision_hidden": 16})


PRESETS: dict[str, Callable[[], LisaConfig]] = {
    "tiny": tiny_config,
    "tiny_qwen2_5_vl": tiny_qwen2_5_vl_config,
    "lisa_7b": lisa_7b_config,
    "lisa_13b": lisa_13b_config,
}
"""Named configs: ``tiny`` builds offline; the real ones need local weights at their paths."""
