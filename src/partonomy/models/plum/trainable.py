"""PLUM's trainable set: the shared spec plus its own heads (paper defaults, reference §4.2).

Besides the shared defaults (:mod:`partonomy.models.core.trainable`), PLUM trains SAM's prompt
encoder (its mask-downscaling convs feed the feedback loop), the span extractor, the span-query
projector and the feedback pooler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from partonomy.models.core.trainable import COMMON_GROUPS, TrainableSpec


@dataclass
class PlumTrainableSpec(TrainableSpec):
    """What trains in PLUM (the shared fields, and):

    Attributes:
        span_extractor, span_query, feedback_pooler: train that module.
    """

    GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        **COMMON_GROUPS,
        "span_extractor": ("prompt_source.span_extractor",),
        "span_query": ("prompt_source.span_query",),
        "feedback_pooler": ("feedback",),
    }
    OPTIONAL_GROUPS: ClassVar[tuple[str, ...]] = ("feedback_pooler",)

    sam_prompt_encoder: bool = True
    span_extractor: bool = True
    span_query: bool = True
    feedback_pooler: bool = True
