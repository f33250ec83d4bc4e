"""PixelLM as a registered family (``partonomy train/eval/predict --model pixellm``)."""

from __future__ import annotations

from partonomy.models.convert.pixellm import convert as convert_pixellm
from partonomy.models.core.family import Family
from partonomy.models.core.loading import family_model
from partonomy.models.pixellm.builders import PRESETS, build_pixellm
from partonomy.models.pixellm.config import PixelLMConfig
from partonomy.models.pixellm.losses import LOSS_TERMS
from partonomy.models.pixellm.trainable import PixelLMTrainableSpec

FAMILY = Family(
    name="pixellm",
    description="PixelLM: LLaVA + a light multi-scale decoder on CLIP, a codebook of 6 tokens per mask (CVPR 2024)",
    config_type=PixelLMConfig,
    build=build_pixellm,
    presets=PRESETS,
    trainable_type=PixelLMTrainableSpec,
    loss_terms=LOSS_TERMS,
    converters={"pixellm": convert_pixellm},
)


build_predictor = family_model("pixellm")
"""The model-registry entry: ``partonomy eval --model pixellm``."""
