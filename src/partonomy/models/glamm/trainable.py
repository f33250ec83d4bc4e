"""GLaMM's trainable set: LISA's (:mod:`partonomy.models.lisa.trainable`) plus the region encoder
(``train.py``: ``lm_head, embed_tokens, mask_decoder, text_hidden_fcs, region_encoder``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from partonomy.models.lisa.trainable import SegTokenTrainableSpec


@dataclass
class GlammTrainableSpec(SegTokenTrainableSpec):
    """What trains in GLaMM (LISA's fields, and):

    Attributes:
        region_encoder: the ``<bbox>`` region encoder.
    """

    GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        **SegTokenTrainableSpec.GROUPS,
        "region_encoder": ("input_encoders.region",),
    }
    OPTIONAL_GROUPS: ClassVar[tuple[str, ...]] = ("region_encoder",)

    region_encoder: bool = True
