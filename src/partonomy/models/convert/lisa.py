"""LISA's released layout (``xinlai/LISA-7B-v1``, ``xinlai/LISA-13B-llama2-v1``, ``-explanatory``).

``merge_lora_weights_and_save_hf_model.py`` saves ``LISAForCausalLM.state_dict()`` without any key
containing ``vision_tower``, plus the tokenizer. Read from ``model/LISA.py``, LLaVA's
``llava_arch.py`` and the merge script:

============================================  ===============================================
released key                                  ours
============================================  ===============================================
``model.embed_tokens.weight``, ``model.       ``llava.model.language_model.*`` (plus one
layers.N.*``, ``model.norm.weight``           ``<image>`` row appended to the embedding)
``lm_head.weight``                            ``llava.lm_head.weight`` (plus the ``<image>`` row)
``model.mm_projector.{weight,bias}``          ``llava.model.multi_modal_projector.linear_1.*``;
(LLaVA v1: one Linear)                        ``linear_2`` = identity, zero bias (added)
``model.visual_model.<sam key>``              ``mask_head.sam.<HF SamModel key>`` (segment-anything
                                              renames, :mod:`partonomy.models.backbones.sam_layout`)
``model.text_hidden_fcs.0.{0,2}.{weight,bias}``  ``prompt_source.projection.{0,2}.*``
``*.rotary_emb.inv_freq``                     dropped (recomputed)
(absent: CLIP)                                ``llava.model.vision_tower.*`` from ``--vision-tower``
                                              (``openai/clip-vit-large-patch14``)
============================================  ===============================================

Tokens (``merge_lora_weights_and_save_hf_model.py``): ``tokenizer.add_tokens("[SEG]")`` then
``<im_start>``, ``<im_end>``, so ids 32000, 32001, 32002 (vocabulary 32003); ``<image>`` is
appended as 32003.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from partonomy.models.convert.common import Route, Sizes, SourceLayout
from partonomy.models.convert.writer import convert_checkpoint

SEG = "[SEG]"
SAM_PREFIX = "model.visual_model."
TEXT_FCS = re.compile(r"^model\.text_hidden_fcs\.0\.([02])\.(weight|bias)$")
LLAVA_KEYS = re.compile(
    r"^(lm_head\.weight|model\.(embed_tokens|layers|norm|mm_projector|vision_tower)\..+)$"
)


def route_llava(key: str) -> Route | None:
    """The LLaVA-v1 part shared by every family (None: not a LLaVA key)."""
    if key.endswith("rotary_emb.inv_freq"):
        return Route("drop", "rotary inverse frequencies: a buffer transformers recomputes")
    if LLAVA_KEYS.match(key):
        return Route("llava", key)
    return None


def route(key: str) -> Route | None:
    """Where a released LISA key goes (module docstring)."""
    if key.startswith(SAM_PREFIX):
        return Route("sam", key[len(SAM_PREFIX) :])
    match = TEXT_FCS.match(key)
    if match:
        return Route("extra", f"prompt_source.projection.{match.group(1)}.{match.group(2)}")
    return route_llava(key)


def seg_prompts(sizes: Sizes) -> nn.Module:
    """LISA's / GLaMM's ``[SEG]`` prompt source on the meta device."""
    from partonomy.models.core.prompt_sources import SegTokenPrompts

    d = int(sizes.llava_config.text_config.hidden_size)
    prompt_dim = int(sizes.sam_config.prompt_encoder_config.hidden_size)
    with torch.device("meta"):
        return SegTokenPrompts(d, prompt_dim, sizes.token_ids[SEG])


def backbones(sizes: Sizes) -> dict[str, Any]:
    """The llava / sam sections of a converted config: HF dirs inside the checkpoint."""
    from partonomy.models.backbones.llava import PRETRAINED_TOKENIZER, LlavaConfig
    from partonomy.models.backbones.sam import SamConfig
    from partonomy.models.convert.common import LLAVA_DIR, SAM_DIR

    return {
        "llava": LlavaConfig(
            pretrained=LLAVA_DIR,
            layout="llava_hf",
            tokenizer=PRETRAINED_TOKENIZER,
            im_start_end=True,
            dtype=sizes.dtype,  # type: ignore[arg-type]
        ),
        "sam": SamConfig(pretrained=SAM_DIR, layout="hf", dtype=sizes.dtype),  # type: ignore[arg-type]
    }


def build(sizes: Sizes) -> tuple[Any, dict[str, nn.Module]]:
    from partonomy.models.lisa.config import LisaConfig

    return LisaConfig(**backbones(sizes), max_length=512), {"prompt_source": seg_prompts(sizes)}


LAYOUT = SourceLayout(
    family="lisa",
    added_tokens=(SEG, "<im_start>", "<im_end>"),
    route=route,
    build=build,
    released=("xinlai/LISA-7B-v1", "xinlai/LISA-13B-llama2-v1", "xinlai/LISA-7B-v1-explanatory"),
)


def convert(src: str | Path, dst: str | Path, **options: Any) -> Path:
    """Convert a released lisa directory (``Family.converters["lisa"]``; options as in
    :func:`partonomy.models.convert.common.convert_checkpoint`)."""
    return convert_checkpoint(LAYOUT, src, dst, **options)
