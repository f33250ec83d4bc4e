"""PixelLM's released layout (``maverickrzw/PixelLM-7B``, ``maverickrzw/PixelLM-13B``, in their
``hf_model/`` subfolders).

``merge_lora_weights_and_save_hf_model.py`` saves ``PixelLMForCausalLM.state_dict()`` without any
key containing ``vision_tower``, plus the tokenizer. Read from ``model/PixelLM.py``,
``model/llava/model/llava_arch.py``, ``mask_decoder_multi_scale.py`` and the merge script:

==================================================  ============================================
released key                                        ours
==================================================  ============================================
``model.embed_tokens``, ``model.layers.N.*``,       ``llava.model.language_model.*``, ``llava.
``model.norm``, ``lm_head``                         lm_head`` (plus one ``<image>`` row each)
``model.mm_projector.{0,2}.*`` (``C -> 2d -> d``)   ``llava.model.multi_modal_projector.linear_{1,2}.*``
                                                    (our own module: transformers' is ``C -> d -> d``)
``model.out_mm_projector.{0,2}.*``                  ``mask_head.out_mm_projector.{0,2}.*``
``model.image_feature_neck.{0,1,2,3}.*``            ``mask_head.image_feature_neck.{0,1,2,3}.*``
``model.prompt_encoder.*`` (segment-anything)       ``mask_head.prompt_encoder.*`` (transformers'
                                                    names: ``pe_layer.positional_encoding_gaussian_
                                                    matrix`` -> ``shared_embedding.positional_
                                                    embedding``, ``point_embeddings`` ->
                                                    ``point_embed``, ``mask_downscaling.{0,1,3,4,6}``
                                                    -> ``mask_embed.{conv1,layer_norm1,conv2,
                                                    layer_norm2,conv3}``)
``model.mask_decoder.transformer.S.*``              ``mask_head.mask_decoder.transformer.S.*``
                                                    (``normM`` -> ``layer_normM``,
                                                    ``norm_final_attn`` -> ``layer_norm_final_attn``)
``model.mask_decoder.pe1.positional_encoding_       ``mask_head.mask_decoder.pe1.positional_
gaussian_matrix``                                   embedding``
``model.mask_decoder.{output_hypernetworks_mlps.K,  ``... .{proj_in,layers.0,proj_out}``
iou_prediction_head}.layers.{0,1,2}``
``model.mask_decoder.{iou_token,mask_tokens,        same names under ``mask_head.mask_decoder.``
output_upscaling,upsample_2x,level_embed}.*``
``model.text_hidden_fcs.0.{0,2}.*``                 ``prompt_source.projection.{0,2}.*``
``*.rotary_emb.inv_freq``                           dropped (recomputed)
(absent: CLIP)                                      from ``--vision-tower``
                                                    (``openai/clip-vit-large-patch14-336``), its
                                                    positions resized to 448 in the original's row
                                                    order (:func:`~partonomy.models.pixellm.vision.
                                                    interpolate_positions`)
==================================================  ============================================

Tokens (merge script): ``tokenizer.add_tokens([SEG0] ... [SEG5])`` then ``<im_start>``,
``<im_end>``: ids 32000-32005, 32006, 32007 (vocabulary 32008); ``<image>`` is appended as 32008.
There is no SAM in the release (``vision_tower_for_mask``); the two fusion scalars are not in it
either (unregistered in the original, fixed at 1/3 and 1/2; docs/deviations.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from partonomy.models.backbones.sam_layout import DECODER_HEADS
from partonomy.models.convert.common import Route, Sizes, SourceLayout
from partonomy.models.convert.lisa import route_llava
from partonomy.models.convert.writer import convert_checkpoint

SEG_TOKEN_NUM, SCALES = 3, 2
"""The released codebook: 3 tokens per scale, 2 scales."""
CLIP_IMAGE_SIZE = 448
TOKENS = tuple(f"[SEG{k}]" for k in range(SEG_TOKEN_NUM * SCALES))
_MLP3 = {"0": "proj_in", "1": "layers.0", "2": "proj_out"}
_PROMPT_DOWNSCALING = {
    "0": "conv1",
    "1": "layer_norm1",
    "3": "conv2",
    "4": "layer_norm2",
    "6": "conv3",
}
_RULES: list[tuple[re.Pattern[str], Any]] = [
    (
        re.compile(r"^model\.text_hidden_fcs\.0\.([02])\.(weight|bias)$"),
        r"prompt_source.projection.\1.\2",
    ),
    (
        re.compile(r"^model\.out_mm_projector\.([02])\.(weight|bias)$"),
        r"mask_head.out_mm_projector.\1.\2",
    ),
    (
        re.compile(r"^model\.image_feature_neck\.([0-3])\.(weight|bias)$"),
        r"mask_head.image_feature_neck.\1.\2",
    ),
    (
        re.compile(r"^model\.prompt_encoder\.pe_layer\.positional_encoding_gaussian_matrix$"),
        "mask_head.prompt_encoder.shared_embedding.positional_embedding",
    ),
    (
        re.compile(r"^model\.prompt_encoder\.point_embeddings\.(\d+)\.weight$"),
        r"mask_head.prompt_encoder.point_embed.\1.weight",
    ),
    (
        re.compile(r"^model\.prompt_encoder\.(not_a_point_embed|no_mask_embed)\.weight$"),
        r"mask_head.prompt_encoder.\1.weight",
    ),
    (
        re.compile(r"^model\.prompt_encoder\.mask_downscaling\.([01346])\.(weight|bias)$"),
        lambda m: f"mask_head.prompt_encoder.mask_embed.{_PROMPT_DOWNSCALING[m[1]]}.{m[2]}",
    ),
    (
        re.compile(
            r"^model\.mask_decoder\.transformer\.(\d+)\.layers\.(\d+)\.norm(\d)\.(weight|bias)$"
        ),
        r"mask_head.mask_decoder.transformer.\1.layers.\2.layer_norm\3.\4",
    ),
    (
        re.compile(r"^model\.mask_decoder\.transformer\.(\d+)\.norm_final_attn\.(weight|bias)$"),
        r"mask_head.mask_decoder.transformer.\1.layer_norm_final_attn.\2",
    ),
    (
        re.compile(
            r"^model\.mask_decoder\.transformer\.(\d+)\.(layers\.\d+\.(self_attn|cross_attn_token_to_image|"
            r"cross_attn_image_to_token)|final_attn_token_to_image)\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)$"
        ),
        r"mask_head.mask_decoder.transformer.\1.\2.\4.\5",
    ),
    (
        re.compile(
            r"^model\.mask_decoder\.transformer\.(\d+)\.layers\.(\d+)\.mlp\.(lin[12])\.(weight|bias)$"
        ),
        r"mask_head.mask_decoder.transformer.\1.layers.\2.mlp.\3.\4",
    ),
    (
        re.compile(r"^model\.mask_decoder\.pe1\.positional_encoding_gaussian_matrix$"),
        "mask_head.mask_decoder.pe1.positional_embedding",
    ),
    (
        re.compile(
            r"^model\.mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head)\.layers\.([012])\.(weight|bias)$"
        ),
        lambda m: f"mask_head.mask_decoder.{m[1]}.{_MLP3[m[2]]}.{m[3]}",
    ),
    (
        re.compile(
            r"^model\.mask_decoder\.(iou_token|mask_tokens|level_embed)\.weight$"
            r"|^model\.mask_decoder\.(output_upscaling|upsample_2x)\.([01])\.(weight|bias)$"
        ),
        lambda m: "mask_head." + m[0][len("model.") :],
    ),
]


def route(key: str) -> Route | None:
    """Where a released PixelLM key goes (module docstring); None for an unknown key."""
    for pattern, target in _RULES:
        match = pattern.match(key)
        if match:
            name = target(match) if callable(target) else match.expand(target)
            return Route("extra", name)
    return route_llava(key)


def adapt_clip(
    clip_state: Mapping[str, torch.Tensor], clip_config: Any
) -> tuple[dict[str, torch.Tensor], Any]:
    """CLIP-L/14-336 -> 448: the position table resized as the original does at load time."""
    from partonomy.models.pixellm.vision import interpolate_positions

    out = dict(clip_state)
    keys = [k for k in out if k.endswith("embeddings.position_embedding.weight")]
    if len(keys) != 1:
        raise ValueError(f"--vision-tower: expected one CLIP position table, found {keys}")
    table = out[keys[0]]
    patch = int(clip_config.patch_size) if clip_config is not None else None
    if patch is None:
        patch = int(out[keys[0].replace("position_embedding", "patch_embedding")].shape[-1])
    out[keys[0]] = interpolate_positions(table, CLIP_IMAGE_SIZE // patch, original_order=True)
    out = {k: v for k, v in out.items() if not k.endswith("position_ids")}
    if clip_config is not None:
        clip_config = type(clip_config)(**{**clip_config.to_dict(), "image_size": CLIP_IMAGE_SIZE})
    return out, clip_config


def decoder_sizes(extra: Mapping[str, torch.Tensor]) -> tuple[Any, int]:
    """``(DecoderConfig, scales)`` read off the routed decoder tensors (heads: 8, not in shapes).

    Raises:
        ConversionError: the release holds no multi-scale decoder.
    """
    from partonomy.models.convert.common import ConversionError
    from partonomy.models.pixellm.config import DecoderConfig

    prefix = "mask_head.mask_decoder."
    if f"{prefix}iou_token.weight" not in extra:
        raise ConversionError(
            "no PixelLM mask decoder (model.mask_decoder.iou_token) in the release"
        )
    blocks = [k[len(prefix) :].split(".") for k in extra if k.startswith(f"{prefix}transformer.")]
    scales = len({b[1] for b in blocks})
    depth = len({b[3] for b in blocks if b[2] == "layers"})
    decoder = DecoderConfig(
        prompt_dim=int(extra[f"{prefix}iou_token.weight"].shape[1]),
        depth=depth,
        heads=DECODER_HEADS,
        mlp_dim=int(extra[f"{prefix}transformer.0.layers.0.mlp.lin1.weight"].shape[0]),
        mask_tokens=int(extra[f"{prefix}mask_tokens.weight"].shape[0]),
        iou_head_hidden=int(extra[f"{prefix}iou_prediction_head.proj_in.weight"].shape[0]),
    )
    return decoder, scales


def build(sizes: Sizes) -> tuple[Any, dict[str, nn.Module]]:
    """PixelLM's config and its own modules (codebook source, mask head, projector) on meta."""
    from partonomy.models.backbones.llava import PRETRAINED_TOKENIZER, LlavaConfig
    from partonomy.models.convert.common import LLAVA_DIR
    from partonomy.models.pixellm.codebook import CodebookPrompts
    from partonomy.models.pixellm.config import PixelLMConfig
    from partonomy.models.pixellm.decoder import PixelLMMaskHead
    from partonomy.models.pixellm.vision import PixelLMProjector

    vision = sizes.llava_config.vision_config
    d = int(sizes.llava_config.text_config.hidden_size)
    clip_hidden = int(vision.hidden_size)
    decoder, scales = decoder_sizes(sizes.extra)
    cfg = PixelLMConfig(
        llava=LlavaConfig(
            pretrained=LLAVA_DIR,
            layout="llava_hf",
            tokenizer=PRETRAINED_TOKENIZER,
            im_start_end=True,
            dtype=sizes.dtype,  # type: ignore[arg-type]
        ),
        clip_image_size=int(vision.image_size),
        seg_token_num=len(TOKENS) // scales,
        decoder=decoder,
    )
    with torch.device("meta"):
        modules: dict[str, nn.Module] = {
            "prompt_source": CodebookPrompts(
                d, decoder.prompt_dim, [sizes.token_ids[t] for t in TOKENS], cfg.seg_token_num
            ),
            "mask_head": PixelLMMaskHead(
                clip_hidden=clip_hidden,
                llm_hidden=d,
                decoder=cfg.decoder,
                scales=cfg.scales,
                grid=int(vision.image_size) // int(vision.patch_size),
                input_size=int(vision.image_size),
            ),
            "llava.model.multi_modal_projector": PixelLMProjector(clip_hidden, d, cfg.llm_grid),
        }
    return cfg, modules


LAYOUT = SourceLayout(
    family="pixellm",
    added_tokens=(*TOKENS, "<im_start>", "<im_end>"),
    route=route,
    build=build,
    released=("maverickrzw/PixelLM-7B (hf_model/)", "maverickrzw/PixelLM-13B (hf_model/)"),
    sam=False,
    own_projector=True,
    adapt_clip=adapt_clip,
)


def convert(src: str | Path, dst: str | Path, **options: Any) -> Path:
    """Convert a released PixelLM directory (``Family.converters["pixellm"]``; options as in
    :func:`partonomy.models.convert.common.convert_checkpoint`)."""
    return convert_checkpoint(LAYOUT, src, dst, **options)
