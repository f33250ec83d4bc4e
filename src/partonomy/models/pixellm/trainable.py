"""PixelLM's trainable set (``train_ds.py`` with the overrides of ``PixelLMForCausalLM``).

LISA's recipe (LoRA r 8 / alpha 16 on ``q_proj``/``v_proj``; ``lm_head``, the added tokens'
embedding rows and ``text_hidden_fcs`` trained), plus: the LLM-side ``mm_projector`` (new, because
the tower is resized to 448), and the whole mask branch (``out_mm_projector``,
``image_feature_neck``, prompt encoder, decoder), trained from scratch. CLIP stays frozen. There is
no SAM: ``sam_image_encoder``, ``sam_prompt_encoder`` and ``sam_mask_decoder`` have no module and
must stay off; ``sam_positional_matrix`` governs the decoder's two random-Fourier matrices (the
prompt encoder's and ``pe1``), buffers in the original, so off by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from partonomy.errors import ConfigError
from partonomy.models.core.trainable import COMMON_GROUPS, TrainableSpec

SAM_GROUPS = ("sam_image_encoder", "sam_prompt_encoder", "sam_mask_decoder")


@dataclass
class PixelLMTrainableSpec(TrainableSpec):
    """What trains in PixelLM (the shared fields without SAM's, and):

    Attributes:
        text_hidden_fcs: the codebook hidden-state projection.
        mask_branch: ``out_mm_projector``, ``image_feature_neck``, the prompt encoder and the
            multi-scale decoder (without the positional matrices, see the module docstring).
    """

    GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        **{k: v for k, v in COMMON_GROUPS.items() if k not in SAM_GROUPS},
        "sam_positional_matrix": (
            "mask_head.prompt_encoder.shared_embedding",
            "mask_head.mask_decoder.pe1",
        ),
        "text_hidden_fcs": ("prompt_source.projection",),
        "mask_branch": ("mask_head",),
    }

    mm_projector: bool = True
    sam_mask_decoder: bool = False
    text_hidden_fcs: bool = True
    mask_branch: bool = True

    def __post_init__(self) -> None:
        on = [name for name in SAM_GROUPS if getattr(self, name)]
        if on:
            raise ConfigError(
                f"trainable.{on[0]}: PixelLM has no SAM; use trainable.mask_branch for its decoder"
            )
