"""GLaMM's released layout (``MBZUAI/GLaMM-FullScope``, ``-RefSeg``, ``-GCG``, ``-GranD-Pretrained``,
``-RegCap-*``).

``scripts/merge_lora_weights.py`` saves ``GLaMMForCausalLM.state_dict()`` without any key containing
``vision_tower``. Read from ``model/GLaMM.py``, ``model/llava/llava_with_region_arch.py``,
``model/layers.py`` and ``train.py``:

=================================================  ==========================================
released key                                       ours
=================================================  ==========================================
``model.embed_tokens``, ``model.layers.N.*``,      ``llava.model.language_model.*`` (+ the
``model.norm``, ``lm_head``                        ``<image>`` row), ``llava.lm_head``
``model.mm_projector.{0,2}.*`` (mlp2x_gelu)        ``llava.model.multi_modal_projector.linear_{1,2}.*``
``model.grounding_encoder.<sam key>``              ``mask_head.sam.<HF SamModel key>``
``model.text_hidden_fcs.0.{0,2}.*``                ``prompt_source.projection.{0,2}.*``
``model.region_encoder.<key>``                     ``input_encoders.region.<key>``, renamed by
                                                   :func:`partonomy.models.glamm.region.glamm_region_key`
``*.rotary_emb.inv_freq``                          dropped (recomputed)
(absent: CLIP)                                     ``llava.model.vision_tower.*`` from ``--vision-tower``
                                                   (``openai/clip-vit-large-patch14-336``)
=================================================  ==========================================

Tokens (``train.py::setup_tokenizer_and_special_tokens``): ``<im_start>``, ``<im_end>``, then
``<bbox>``, ``<point>``, ``[SEG]``, ``<p>``, ``</p>``: ids 32000-32006 (``bbox_token_idx`` 32002 in
``GLaMMForCausalLM``); ``<image>`` is appended as 32007.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from partonomy.models.convert.common import Route, Sizes, SourceLayout
from partonomy.models.convert.lisa import SEG, TEXT_FCS, backbones, route_llava, seg_prompts
from partonomy.models.convert.writer import convert_checkpoint

SAM_PREFIX = "model.grounding_encoder."
REGION_PREFIX = "model.region_encoder."
BBOX = "<bbox>"


def route(key: str) -> Route | None:
    """Where a released GLaMM key goes (module docstring)."""
    from partonomy.models.glamm.region import glamm_region_key

    if key.startswith(SAM_PREFIX):
        return Route("sam", key[len(SAM_PREFIX) :])
    if key.startswith(REGION_PREFIX):
        ours = glamm_region_key(key[len(REGION_PREFIX) :])
        return None if ours is None else Route("extra", "input_encoders.region." + ours)
    match = TEXT_FCS.match(key)
    if match:
        return Route("extra", f"prompt_source.projection.{match.group(1)}.{match.group(2)}")
    return route_llava(key)


def build(sizes: Sizes) -> tuple[Any, dict[str, nn.Module]]:
    from partonomy.models.glamm.config import GlammConfig
    from partonomy.models.glamm.region import RegionEncoder

    llava = sizes.llava_config
    vision = llava.vision_config
    with torch.device("meta"):
        region = RegionEncoder(
            token_id=sizes.token_ids[BBOX],
            vision_hidden=int(vision.hidden_size),
            image_size=int(vision.image_size),
            patch_size=int(vision.patch_size),
            num_states=int(vision.num_hidden_layers) + 1,
            select_layer=int(llava.vision_feature_layer),
            llm_hidden=int(llava.text_config.hidden_size),
        )
    config = GlammConfig(**backbones(sizes), region_encoder=True, max_length=1536)
    return config, {"prompt_source": seg_prompts(sizes), "input_encoders.region": region}


LAYOUT = SourceLayout(
    family="glamm",
    added_tokens=("<im_start>", "<im_end>", BBOX, "<point>", SEG, "<p>", "</p>"),
    route=route,
    build=build,
    released=("MBZUAI/GLaMM-FullScope", "MBZUAI/GLaMM-RefSeg", "MBZUAI/GLaMM-GranD-Pretrained"),
)


def convert(src: str | Path, dst: str | Path, **options: Any) -> Path:
    """Convert a released glamm directory (``Family.converters["glamm"]``; options as in
    :func:`partonomy.models.convert.common.convert_checkpoint`)."""
    return convert_checkpoint(LAYOUT, src, dst, **options)
