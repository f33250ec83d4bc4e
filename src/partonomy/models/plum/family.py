"""PLUM as a registered family (``partonomy train/eval/predict --model plum``)."""

from __future__ import annotations

from partonomy.models.convert.plum import convert as convert_plum
from partonomy.models.core.family import Family
from partonomy.models.core.loading import family_model
from partonomy.models.plum.builders import PRESETS, build_plum
from partonomy.models.plum.config import PlumConfig
from partonomy.models.plum.losses import LOSS_TERMS
from partonomy.models.plum.trainable import PlumTrainableSpec

FAMILY = Family(
    name="plum",
    description="PLUM: LLaVA + SAM, B/I/O span tagging (no [SEG]) and mask feedback (the paper's model)",
    config_type=PlumConfig,
    build=build_plum,
    presets=PRESETS,
    trainable_type=PlumTrainableSpec,
    loss_terms=LOSS_TERMS,
    converters={"plum": convert_plum},
)


build_predictor = family_model("plum")
"""The model-registry entry: ``partonomy eval --model plum``."""
