"""Assembling GLaMM from its parts, and its named configs (presets)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from partonomy.config import merge_overrides
from partonomy.models.backbones.llava import LlavaConfig
from partonomy.models.backbones.sam import SamConfig
from partonomy.models.core.builders import build_seg_token_model
from partonomy.models.core.model import InputEncoder, SegLMM
from partonomy.models.core.processing import SegProcessor
from partonomy.models.core.targets import PHRASE_END, PHRASE_START, SEG_TOKEN, SegTokenTargets
from partonomy.models.glamm.config import GlammConfig

BBOX_TOKEN = "<bbox>"
POINT_TOKEN = "<point>"
GLAMM_TOKENS = (BBOX_TOKEN, POINT_TOKEN, SEG_TOKEN, PHRASE_START, PHRASE_END)
"""GLaMM's added tokens, in the order of its tokenizer set-up (after ``<im_start>``/``<im_end>``)."""
IMAGE_PROMPT = "The {image} provides an overview of the picture.\n"
"""GLaMM's first-turn prefix (every training and evaluation prompt starts with it)."""


def _region_encoders(cfg: GlammConfig) -> Callable[[Any, Any], Mapping[str, InputEncoder]] | None:
    if not cfg.region_encoder:
        return None

    def build(llava: Any, tokenizer: Any) -> Mapping[str, InputEncoder]:
        from partonomy.models.glamm.region import build_region_encoder

        return {"region": build_region_encoder(llava, tokenizer)}

    return build


def build_glamm(cfg: GlammConfig) -> tuple[SegLMM, SegProcessor]:
    """GLaMM: LISA's ``[SEG]`` -> MLP -> SAM decoding, answers with ``<p> part </p> [SEG]``,
    prompts starting with GLaMM's prefix, and the region encoder for ``<bbox>`` inputs."""
    return build_seg_token_model(
        family="glamm",
        config=cfg,
        llava_cfg=cfg.llava,
        sam_cfg=cfg.sam,
        extra_tokens=GLAMM_TOKENS,
        extra_first=False,  # GLaMM: <im_start>, <im_end> (32000, 32001), then its own
        targets=SegTokenTargets(phrase_tags=True),
        max_length=cfg.max_length,
        seed=cfg.seed,
        image_prompt=IMAGE_PROMPT,
        input_encoders=_region_encoders(cfg),
    )


def tiny_config(**overrides: Any) -> GlammConfig:
    """A tiny random GLaMM that builds offline in seconds (tests, quickstart, CI)."""
    return merge_overrides(GlammConfig(max_length=512), overrides, "tiny_config")  # type: ignore[no-any-return]


def glamm_7b_config() -> GlammConfig:
    """GLaMM-7B on LLaVA-1.5-7B (CLIP-L/336, mlp2x) + SAM ViT-H, for training from a LLaVA-1.5
    base. Released GLaMM weights load through ``partonomy convert-checkpoint --from glamm``.

    The paths are placeholders for local copies.
    """
    return GlammConfig(
        llava=LlavaConfig(
            pretrained="checkpoints/llava-v1.5-7b",
            layout="llava_v1",
            tokenizer="pretrained",
            dtype="bfloat16",
        ),
        sam=SamConfig(
            pretrained="checkpoints/sam_vit_h_4b8939.pth", layout="original", dtype="bfloat16"
        ),
    )


PRESETS: dict[str, Callable[[], GlammConfig]] = {"tiny": tiny_config, "glamm_7b": glamm_7b_config}
"""Named configs: ``tiny`` builds offline; the real one needs local weights at its paths."""
