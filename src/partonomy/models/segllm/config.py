"""SegLLM's typed config (a :mod:`partonomy.config` schema: unknown keys are errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import LlavaConfig
from partonomy.models.segllm.decoder import DecoderConfig
from partonomy.models.segllm.reencode import ReencodeConfig


@dataclass
class SegLLMConfig:
    """Everything :func:`partonomy.models.segllm.builders.build_segllm` needs.

    Attributes:
        llava: the backbone (LLaVA-1.5: CLIP-L/14 at 224 here, mlp2x projector).
        decoder: the query mask decoder (HIPIE R50 sizes by default).
        reencode: how earlier masks are re-encoded into ``<seg_input>`` tokens.
        max_length: longest token sequence, image tokens included (SegLLM: 2048).
        conversation: the prompt template (LLaVA v1's "USER: ... ASSISTANT: ...").
        seed: seed of the random initialisation of the modules not loaded from a checkpoint.
    """

    llava: LlavaConfig = field(default_factory=LlavaConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    reencode: ReencodeConfig = field(default_factory=ReencodeConfig)
    max_length: int = 2048
    conversation: Literal["llava_v1"] = "llava_v1"
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.max_length <= 0:
            raise ConfigError(f"max_length must be positive, got {self.max_length}")
