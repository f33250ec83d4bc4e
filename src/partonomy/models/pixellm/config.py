"""PixelLM's typed config (a :mod:`partonomy.config` schema: unknown keys are errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import LlavaConfig


@dataclass
class DecoderConfig:
    """The light multi-scale mask decoder (``MaskDecoderMultiScale`` of the original).

    Attributes:
        prompt_dim: width of prompt tokens and decoder features (256).
        depth: two-way transformer blocks per scale (2).
        heads: attention heads (8).
        mlp_dim: transformer MLP width (2048).
        mask_tokens: SAM-style output mask tokens (4 = 3 multimask + 1; only the first is used).
        iou_head_hidden: width of the IoU-prediction MLP (256).
    """

    prompt_dim: int = 256
    depth: int = 2
    heads: int = 8
    mlp_dim: int = 2048
    mask_tokens: int = 4
    iou_head_hidden: int = 256

    def __post_init__(self) -> None:
        if self.prompt_dim % self.heads or self.prompt_dim % 8:
            raise ConfigError(
                f"decoder.prompt_dim ({self.prompt_dim}) must be divisible by decoder.heads "
                f"({self.heads}) and by 8"
            )
        if self.depth < 1 or self.mask_tokens < 1:
            raise ConfigError("decoder.depth and decoder.mask_tokens must be at least 1")


@dataclass
class PixelLMConfig:
    """Everything :func:`partonomy.models.pixellm.builders.build_pixellm` needs.

    Attributes:
        llava: the language-vision backbone. Released: LLaVA-Lightning-7B-v1-1 or
            llava-llama-2-13b-chat-lightning-preview with CLIP-L/14-336 and a 2-layer GELU
            ``mm_projector``; ``llava.image_size`` is the CLIP input side the model runs at.
        clip_image_size: CLIP's input side (448 released); the tower's position embeddings are
            bilinearly interpolated to it when the loaded tower was trained at another size.
        llm_grid: the LLM sees ``llm_grid ** 2`` image tokens, the select-layer patch grid resized
            (bilinear) to ``llm_grid x llm_grid`` (16 -> 256 tokens released).
        mask_layers: the CLIP hidden-state indices feeding the mask branch, coarse scale first
            (released: the select layer -2, then -11).
        seg_token_num: codebook tokens per scale (3 released).
        decoder: the light mask decoder.
        normalize: ``"sam"`` normalises the padded CLIP input with SAM's 0-255 ImageNet mean/std
            (the original's quirk with ``pad_*_clip_images``); ``"clip"`` with CLIP's own.
        incomplete_groups: what finding spans in a generated answer does with codebook tokens that
            do not form whole groups: ``"drop"`` every codebook token of that answer (the
            original's ``evaluate``) or ``"error"``.
        max_length: longest token sequence, image tokens included (512).
        conversation: the prompt template (LLaVA v1's "USER: ... ASSISTANT: ...").
        seed: seed of the random initialisation of the modules not loaded from a checkpoint.
    """

    llava: LlavaConfig = field(default_factory=LlavaConfig)
    clip_image_size: int = 448
    llm_grid: int = 16
    mask_layers: list[int] = field(default_factory=lambda: [-2, -11])
    seg_token_num: int = 3
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    normalize: Literal["sam", "clip"] = "sam"
    incomplete_groups: Literal["drop", "error"] = "drop"
    max_length: int = 512
    conversation: Literal["llava_v1"] = "llava_v1"
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.max_length <= 0:
            raise ConfigError(f"max_length must be positive, got {self.max_length}")
        if self.seg_token_num < 1:
            raise ConfigError(f"seg_token_num must be at least 1, got {self.seg_token_num}")
        if not self.mask_layers:
            raise ConfigError("mask_layers must name at least one CLIP layer (one per scale)")
        if self.clip_image_size % self.llava.patch_size and self.llava.pretrained is None:
            raise ConfigError(
                f"clip_image_size ({self.clip_image_size}) must be a multiple of "
                f"llava.patch_size ({self.llava.patch_size})"
            )
        if self.llm_grid < 1:
            raise ConfigError(f"llm_grid must be at least 1, got {self.llm_grid}")

    @property
    def scales(self) -> int:
        """Feature scales of the decoder (one per mask layer; 2 released)."""
        return len(self.mask_layers)

    @property
    def tokens_per_target(self) -> int:
        """Codebook tokens written per target: ``seg_token_num * scales`` (6 released)."""
        return self.seg_token_num * self.scales
