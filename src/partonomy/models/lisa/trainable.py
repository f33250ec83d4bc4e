"""LISA's trainable set (``train_ds.py``, reference baselines §1.2).

LoRA r 8 / alpha 16 / dropout 0.05 on ``q_proj``/``v_proj`` of the LLM; fully trained: ``lm_head``,
the input embeddings (here: only the added tokens' rows, see docs/deviations.md), SAM's mask decoder
and the ``[SEG]`` projection (``text_hidden_fcs``). Frozen: CLIP, the projector, SAM's image and
prompt encoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from partonomy.models.core.trainable import COMMON_GROUPS, TrainableSpec


@dataclass
class SegTokenTrainableSpec(TrainableSpec):
    """What trains in a ``[SEG]`` family (the shared fields, and):

    Attributes:
        text_hidden_fcs: the ``[SEG]`` hidden-state projection (LISA's name for it).
    """

    GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        **COMMON_GROUPS,
        "text_hidden_fcs": ("prompt_source.projection",),
    }

    text_hidden_fcs: bool = True
