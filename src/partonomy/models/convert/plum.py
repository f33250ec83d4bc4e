"""The original PLUM code's merged HF output (``merge_lora_weights_and_save_hf_model.py`` of
``AnselBlume/partonomy`` ``src/models/PLUM``).

It saves ``PLUMForCausalLM.state_dict()`` without ``vision_tower`` keys. Read from
``model/PLUM.py`` and ``model/mask_feedback.py``:

=====================================================  =========================================
released key                                           ours
=====================================================  =========================================
LLaMA, ``lm_head``, ``model.mm_projector.*``           as LISA (:mod:`partonomy.models.convert.lisa`)
``model.visual_model.<sam key>``                       ``mask_head.sam.<HF SamModel key>``
``model.text_hidden_fcs.0.{0,2}.*`` (span query)       ``prompt_source.span_query.mlp.{0,2}.*``
``model.token_to_mask_fcs.0.{0,2}.*`` (B/I/O MLP)      ``prompt_source.span_extractor.head.{0,2}.*``
``bio_encoder.encoder.layers.0.<k>``                   ``prompt_source.span_extractor.encoder.<k>``
``mask_pooler.mask_modulator.projections.{0,1}.*``     ``feedback.film{1,2}.proj.*``
``mask_pooler.queries``, ``mask_pooler.attn.*``        ``feedback.queries``, ``feedback.attn.*``
``mask_pooler.prompt_encoder.*``                       dropped: the same tensors as
                                                       ``model.visual_model.prompt_encoder.*``
``mask_pooler.block1.{0,1}``, ``block2.{0,1}``,        dropped: SAM's ``mask_downscaling.{0,1}``,
``final_conv``                                         ``{3,4}``, ``6`` (shared, not copies)
``*.rotary_emb.inv_freq``                              dropped (recomputed)
=====================================================  =========================================

A duplicate is checked equal to the key it shares (or stands in for it when a safetensors save kept
only one name). Not recoverable from shapes, taken from the code: the bidirectional encoder's 8
heads and dropout 0.1, the feedback attention's 8 heads. Releases without ``bio_encoder`` (trained
without ``--use_bidir_bio``) or with ``bio_cross_attn`` are refused (our span extractor always has
the encoder and never the cross-attention block). Tokens: ``<im_start>``, ``<im_end>`` (32000,
32001); ``<image>`` is appended as 32002.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from partonomy.models.convert.common import Route, Sizes, SourceLayout
from partonomy.models.convert.lisa import backbones, route_llava
from partonomy.models.convert.writer import convert_checkpoint

SAM_PREFIX = "model.visual_model."
BIDIR_HEADS = 8
BIDIR_DROPOUT = 0.1
FEEDBACK_HEADS = 8
_RULES: tuple[tuple[str, str], ...] = (
    (r"^model\.text_hidden_fcs\.0\.([02])\.", r"prompt_source.span_query.mlp.\1."),
    (r"^model\.token_to_mask_fcs\.0\.([02])\.", r"prompt_source.span_extractor.head.\1."),
    (r"^bio_encoder\.encoder\.layers\.0\.", "prompt_source.span_extractor.encoder."),
    (r"^mask_pooler\.mask_modulator\.projections\.0\.", "feedback.film1.proj."),
    (r"^mask_pooler\.mask_modulator\.projections\.1\.", "feedback.film2.proj."),
    (r"^mask_pooler\.queries$", "feedback.queries"),
    (r"^mask_pooler\.attn\.", "feedback.attn."),
)
_ALIASES: tuple[tuple[str, str], ...] = (
    (r"^mask_pooler\.prompt_encoder\.", SAM_PREFIX + "prompt_encoder."),
    (r"^mask_pooler\.block1\.([01])\.", SAM_PREFIX + r"prompt_encoder.mask_downscaling.\1."),
    (r"^mask_pooler\.block2\.0\.", SAM_PREFIX + "prompt_encoder.mask_downscaling.3."),
    (r"^mask_pooler\.block2\.1\.", SAM_PREFIX + "prompt_encoder.mask_downscaling.4."),
    (r"^mask_pooler\.final_conv\.", SAM_PREFIX + "prompt_encoder.mask_downscaling.6."),
)


def route(key: str) -> Route | None:
    """Where a released PLUM key goes (module docstring)."""
    if key.startswith(SAM_PREFIX):
        return Route("sam", key[len(SAM_PREFIX) :])
    for pattern, replacement in _RULES:
        if re.match(pattern, key):
            return Route("extra", re.sub(pattern, replacement, key, count=1))
    for pattern, replacement in _ALIASES:
        if re.match(pattern, key):
            return Route("alias", re.sub(pattern, replacement, key, count=1))
    return route_llava(key)


def build(sizes: Sizes) -> tuple[Any, dict[str, nn.Module]]:
    from partonomy.models.backbones.sam import sam_geometry
    from partonomy.models.core.feedback import MaskFeedbackPooler
    from partonomy.models.plum.config import PlumConfig
    from partonomy.models.plum.span_extractor import SpanExtractor
    from partonomy.models.plum.span_query import SpanQuery

    d = int(sizes.llava_config.text_config.hidden_size)
    ff_key = "prompt_source.span_extractor.encoder.linear1.weight"
    ff = int(sizes.extra[ff_key].shape[0]) if ff_key in sizes.extra else 2048
    use_feedback = any(k.startswith("feedback.") for k in sizes.extra)

    class _Geometry:  # sam_geometry reads only the config
        config = sizes.sam_config

    geo = sam_geometry(_Geometry())
    modules: dict[str, nn.Module] = {}
    with torch.device("meta"):
        extractor = SpanExtractor(d, heads=BIDIR_HEADS, ff=ff, dropout=BIDIR_DROPOUT)
        query = SpanQuery(d, geo.prompt_dim)
        modules["prompt_source.span_extractor"] = extractor
        modules["prompt_source.span_query"] = query
        if use_feedback:
            modules["feedback"] = MaskFeedbackPooler(
                geo.prompt_dim, geo.mask_channels, geo.embed_size, FEEDBACK_HEADS
            )
    config = PlumConfig(
        **backbones(sizes),
        span_extractor_order="encoder_then_mlp",
        bidir_heads=BIDIR_HEADS,
        bidir_ff=ff,
        bidir_dropout=BIDIR_DROPOUT,
        use_feedback=use_feedback,
        feedback_heads=FEEDBACK_HEADS,
        max_length=512,
    )
    return config, modules


LAYOUT = SourceLayout(
    family="plum",
    added_tokens=("<im_start>", "<im_end>"),
    route=route,
    build=build,
    released=("PLUM (original code, merge_lora_weights_and_save_hf_model.py output)",),
)


def convert(src: str | Path, dst: str | Path, **options: Any) -> Path:
    """Convert a released plum directory (``Family.converters["plum"]``; options as in
    :func:`partonomy.models.convert.common.convert_checkpoint`)."""
    return convert_checkpoint(LAYOUT, src, dst, **options)
