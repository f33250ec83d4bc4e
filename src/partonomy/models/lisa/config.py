"""LISA's typed config (a :mod:`partonomy.config` schema: unknown keys are errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import LlavaConfig
from partonomy.models.backbones.sam import SamConfig


@dataclass
class LisaConfig:
    """Everything :func:`partonomy.models.lisa.builders.build_lisa` needs.

    Attributes:
        llava: the language-vision backbone (LLaVA v1 with CLIP-L/224 in the released models).
        sam: the segmentation backbone (SAM ViT-H).
        max_length: longest token sequence, image tokens included (LISA: 512); longer ones are cut
            on the right, with the targets whose ``[SEG]`` is cut.
        conversation: the prompt template (LLaVA v1's "USER: ... ASSISTANT: ...").
        seed: seed of the random initialisation of the modules not loaded from a checkpoint.
    """

    llava: LlavaConfig = field(default_factory=LlavaConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    max_length: int = 512
    conversation: Literal["llava_v1"] = "llava_v1"
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.max_length <= 0:
            raise ConfigError(f"max_length must be positive, got {self.max_length}")
