"""LISA's typed config (a :mod:`partonomy.config` schema: unknown keys are errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from partonomy.errors import ConfigError
from partonomy.models.backbones.hf_vlm import VLM_KINDS, VlmConfig
from partonomy.models.backbones.llava import LlavaConfig
from partonomy.models.backbones.sam import SamConfig


@dataclass
class LisaConfig:
    """Everything :func:`partonomy.models.lisa.builders.build_lisa` needs.

    Attributes:
        backbone: ``llava`` (LLaVA v1, the paper's) or an HF VLM: ``qwen2_5_vl``, ``qwen3_vl``,
            ``llava_onevision`` (sized / loaded by ``vlm``; the prompt is that model's own chat
            template, ``conversation`` is then ignored).
        llava: the language-vision backbone (LLaVA v1 with CLIP-L/224 in the released models).
        vlm: the HF VLM backbone (any other ``backbone``).
        sam: the segmentation backbone (SAM ViT-H).
        max_length: longest token sequence, image tokens included (LISA: 512); longer ones are cut
            on the right, with the targets whose ``[SEG]`` is cut.
        conversation: the prompt template (LLaVA v1's "USER: ... ASSISTANT: ...").
        seed: seed of the random initialisation of the modules not loaded from a checkpoint.
    """

    backbone: str = "llava"
    llava: LlavaConfig = field(default_factory=LlavaConfig)
    vlm: VlmConfig = field(default_factory=VlmConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    max_length: int = 512
    conversation: Literal["llava_v1"] = "llava_v1"
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.backbone != "llava" and self.backbone not in VLM_KINDS:
            raise ConfigError(
                f"backbone must be one of llava, {', '.join(VLM_KINDS)}, got {self.backbone!r}"
            )
        if self.max_length <= 0:
            raise ConfigError(f"max_length must be positive, got {self.max_length}")
