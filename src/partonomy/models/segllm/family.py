"""SegLLM as a registered family (``partonomy train/eval/predict --model segllm``)."""

from __future__ import annotations

from partonomy.models.convert.segllm import convert as convert_segllm
from partonomy.models.core.family import Family
from partonomy.models.segllm.builders import PRESETS, build_segllm
from partonomy.models.segllm.config import SegLLMConfig
from partonomy.models.segllm.losses import LOSS_TERMS
from partonomy.models.segllm.predictor import build_predictor
from partonomy.models.segllm.trainable import SegLLMTrainableSpec

FAMILY = Family(
    name="segllm",
    description="SegLLM: LLaVA-1.5 + a HIPIE-style query decoder, <seg> per round, earlier masks "
    "re-encoded as <seg_input> (ICLR 2025)",
    config_type=SegLLMConfig,
    build=build_segllm,
    presets=PRESETS,
    trainable_type=SegLLMTrainableSpec,
    loss_terms=LOSS_TERMS,
    converters={"segllm": convert_segllm},
)

__all__ = ["FAMILY", "build_predictor"]
