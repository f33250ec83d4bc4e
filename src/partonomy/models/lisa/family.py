"""LISA as a registered family (``partonomy train/eval/predict --model lisa``)."""

from __future__ import annotations

from partonomy.models.convert.lisa import convert as convert_lisa
from partonomy.models.core.family import Family
from partonomy.models.core.loading import family_model
from partonomy.models.lisa.builders import PRESETS, build_lisa
from partonomy.models.lisa.config import LisaConfig
from partonomy.models.lisa.losses import LOSS_TERMS
from partonomy.models.lisa.trainable import SegTokenTrainableSpec

FAMILY = Family(
    name="lisa",
    description="LISA: LLaVA + SAM, the [SEG] token's hidden state prompts SAM (CVPR 2024)",
    config_type=LisaConfig,
    build=build_lisa,
    presets=PRESETS,
    trainable_type=SegTokenTrainableSpec,
    loss_terms=LOSS_TERMS,
    converters={"lisa": convert_lisa},
)


build_predictor = family_model("lisa")
"""The model-registry entry: ``partonomy eval --model lisa``."""
