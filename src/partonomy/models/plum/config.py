"""PLUM's typed config (a :mod:`partonomy.config` schema: unknown keys are errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from partonomy.errors import ConfigError
from partonomy.models.backbones.hf_vlm import VLM_KINDS, VlmConfig
from partonomy.models.backbones.llava import LlavaConfig
from partonomy.models.backbones.sam import SamConfig

__all__ = ["BACKBONES", "LlavaConfig", "PlumConfig", "SamConfig", "VlmConfig"]

BACKBONES: tuple[str, ...] = ("llava", *VLM_KINDS)
"""The language-vision backbones PLUM can be built on."""


@dataclass
class PlumConfig:
    """Everything :func:`partonomy.models.plum.builders.build_plum` needs.

    Attributes:
        backbone: ``llava`` (LLaVA-1.5 on HF parts, the paper's) or an HF VLM: ``qwen2_5_vl``,
            ``qwen3_vl``, ``llava_onevision`` (sized / loaded by ``vlm``; the prompt is that
            model's own chat template, ``conversation`` is then ignored).
        llava: the LLaVA backbone (``backbone: llava``).
        vlm: the HF VLM backbone (any other ``backbone``).
        sam: the segmentation backbone.
        span_extractor_order: ``"encoder_then_mlp"`` is the released code (bidirectional encoder over
            the LLM states, then Linear-ReLU-Linear to B/I/O); ``"mlp_then_encoder"`` is the paper's
            text (token-wise Linear-ReLU, then the encoder, then a Linear projection to B/I/O).
        bidir_heads: heads of the bidirectional encoder layer (8 in the code; must divide the LLM width).
        bidir_ff: its feed-forward width (2048: PyTorch's default, which the code used).
        bidir_dropout: its dropout (0.1, PyTorch's default).
        use_feedback: the mask-feedback loop; off = every span gets SAM's no-mask dense prompt.
        feedback_heads: heads of the per-patch attention pooling (8 in the code; must divide D_sam).
        max_length: longest token sequence, image tokens included; longer ones are cut on the right
            (spans cut by it are dropped together with their masks).
        conversation: the prompt template (only LLaVA v1's "USER: ... ASSISTANT: ...").
        seed: seed for the random initialisation of every module that is not loaded from a
            checkpoint (taken from a forked RNG, so the caller's global RNG is untouched); None =
            whatever the global RNG gives.
    """

    backbone: str = "llava"
    llava: LlavaConfig = field(default_factory=LlavaConfig)
    vlm: VlmConfig = field(default_factory=VlmConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    span_extractor_order: Literal["encoder_then_mlp", "mlp_then_encoder"] = "encoder_then_mlp"
    bidir_heads: int = 8
    bidir_ff: int = 2048
    bidir_dropout: float = 0.1
    use_feedback: bool = True
    feedback_heads: int = 8
    max_length: int = 512
    conversation: Literal["llava_v1"] = "llava_v1"
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(
                f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}"
            )
        if self.max_length <= 0:
            raise ConfigError(f"max_length must be positive, got {self.max_length}")
        if not 0.0 <= self.bidir_dropout < 1.0:
            raise ConfigError(f"bidir_dropout must be in [0, 1), got {self.bidir_dropout}")
        if self.bidir_heads <= 0 or self.feedback_heads <= 0 or self.bidir_ff <= 0:
            raise ConfigError("bidir_heads, feedback_heads and bidir_ff must be positive")
