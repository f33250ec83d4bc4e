"""GLaMM's typed config (a :mod:`partonomy.config` schema: unknown keys are errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import LlavaConfig
from partonomy.models.backbones.sam import SamConfig


@dataclass
class GlammConfig:
    """Everything :func:`partonomy.models.glamm.builders.build_glamm` needs.

    Attributes:
        llava: the language-vision backbone (LLaVA-1.5 style: CLIP-L/336, mlp2x projector, 576
            image tokens, in the released models).
        sam: the segmentation backbone (SAM ViT-H).
        region_encoder: build the region encoder that replaces ``<bbox>`` token embeddings.
        max_length: longest token sequence, image tokens included (GLaMM: 1536).
        conversation: the prompt template (LLaVA v1's "USER: ... ASSISTANT: ...").
        seed: seed of the random initialisation of the modules not loaded from a checkpoint.
    """

    llava: LlavaConfig = field(default_factory=LlavaConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    region_encoder: bool = True
    max_length: int = 1536
    conversation: Literal["llava_v1"] = "llava_v1"
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.max_length <= 0:
            raise ConfigError(f"max_length must be positive, got {self.max_length}")
