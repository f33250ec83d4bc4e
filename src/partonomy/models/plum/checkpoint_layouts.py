"""Original checkpoint layouts PLUM starts from, mapped to the HF modules it is built on.

One place to find both mappings (they live beside their backbones):

* LLaVA v1 (``liuhaotian/llava-llama-2-13b-chat-lightning-preview`` and kin) ->
  ``LlavaForConditionalGeneration``: :mod:`partonomy.models.backbones.llava_v1_layout`.
* segment-anything (``sam_vit_h_4b8939.pth``) -> ``SamModel``:
  :mod:`partonomy.models.backbones.sam_layout`.

All conversion functions are pure (state dict in, state dict out) and work on meta tensors.
"""

from __future__ import annotations

from partonomy.models.backbones.llava_v1_layout import (
    convert_llava_v1_state_dict,
    infer_clip_vision_config,
    load_llava_v1,
    projector_kind,
    translate_llava_v1_config,
    vision_state_dict,
)
from partonomy.models.backbones.sam_layout import (
    convert_sam_state_dict,
    infer_sam_config,
    load_sam_original,
    sam_key_map,
)

__all__ = [
    "convert_llava_v1_state_dict",
    "convert_sam_state_dict",
    "infer_clip_vision_config",
    "infer_sam_config",
    "load_llava_v1",
    "load_sam_original",
    "projector_kind",
    "sam_key_map",
    "translate_llava_v1_config",
    "vision_state_dict",
]
