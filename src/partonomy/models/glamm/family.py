"""GLaMM as a registered family (``partonomy train/eval/predict --model glamm``)."""

from __future__ import annotations

from partonomy.models.convert.glamm import convert as convert_glamm
from partonomy.models.core.family import Family
from partonomy.models.core.loading import family_model
from partonomy.models.glamm.builders import PRESETS, build_glamm
from partonomy.models.glamm.config import GlammConfig
from partonomy.models.glamm.trainable import GlammTrainableSpec
from partonomy.models.lisa.losses import LOSS_TERMS

FAMILY = Family(
    name="glamm",
    description="GLaMM: LLaVA-1.5 + SAM, [SEG] with <p> phrase </p> tags, <bbox> region inputs (CVPR 2024)",
    config_type=GlammConfig,
    build=build_glamm,
    presets=PRESETS,
    trainable_type=GlammTrainableSpec,
    loss_terms=LOSS_TERMS,
    converters={"glamm": convert_glamm},
)


build_predictor = family_model("glamm")
"""The model-registry entry: ``partonomy eval --model glamm``."""
