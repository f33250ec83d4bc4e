"""SegLLM's trainable set: full fine-tuning (``lora_enable False``, ``scripts/train/*.sh``).

Trained: the whole language model and ``lm_head``, the projector, the ``<seg>`` predictor
(``segmentator_predictor``), the box encoder (``mask_enc_head``) and the whole decoder
(``segmentator``). Frozen: the CLIP tower (``freeze_vision_tower``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from partonomy.models.core.trainable import COMMON_GROUPS, TrainableSpec

SAM_GROUPS = (
    "sam_image_encoder",
    "sam_prompt_encoder",
    "sam_mask_decoder",
    "sam_positional_matrix",
)


@dataclass
class SegLLMTrainableSpec(TrainableSpec):
    """What trains in SegLLM (the shared fields without SAM's, and):

    Attributes:
        segmentator_predictor: the ``<seg>`` -> pseudo-text MLP.
        mask_enc_head: the box encoder of ``<seg_input>``.
        decoder_backbone: the decoder's ResNet and pixel decoder.
        decoder: the decoder's text fusion, query decoder and class head.
    """

    GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        **{k: v for k, v in COMMON_GROUPS.items() if k not in SAM_GROUPS},
        "sam_positional_matrix": (),  # no SAM: set_trainable's positional-matrix rule finds nothing
        "segmentator_predictor": ("prompt_source.predictor",),
        "mask_enc_head": ("input_encoders.reencode",),
        "decoder_backbone": ("mask_head.mask2former.pixel_level_module",),
        "decoder": (
            "mask_head.mask2former.transformer_module",
            "mask_head.text_projection",
            "mask_head.mask_text_projection",
            "mask_head.level_fusion",
            "mask_head.mask_fusion",
            "mask_head.class_head",
            "mask_head.query_text",
        ),
    }

    language_model: Literal["lora", "full", "frozen"] = "full"
    embeddings: Literal["new_rows", "full", "frozen"] = "full"
    mm_projector: bool = True
    sam_mask_decoder: bool = False
    segmentator_predictor: bool = True
    mask_enc_head: bool = True
    decoder_backbone: bool = True
    decoder: bool = True
