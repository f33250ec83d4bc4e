"""The segment-anything checkpoint layout (``sam_vit_h_4b8939.pth``) -> HF ``SamModel``.

Key renames (pure functions; ``N`` a block/layer index, ``K`` a mask token), original -> HF:

* ``image_encoder.patch_embed.proj`` -> ``vision_encoder.patch_embed.projection``;
  ``image_encoder.pos_embed`` -> ``vision_encoder.pos_embed``.
* ``image_encoder.blocks.N.{norm1,norm2}`` -> ``vision_encoder.layers.N.{layer_norm1,layer_norm2}``;
  ``blocks.N.attn.{qkv,proj,rel_pos_h,rel_pos_w}`` and ``blocks.N.mlp.{lin1,lin2}`` keep their names
  under ``vision_encoder.layers.N``.
* ``image_encoder.neck.{0,1,2,3}`` -> ``vision_encoder.neck.{conv1,layer_norm1,conv2,layer_norm2}``.
* ``prompt_encoder.pe_layer.positional_encoding_gaussian_matrix`` -> both
  ``shared_image_embedding.positional_embedding`` and
  ``prompt_encoder.shared_embedding.positional_embedding`` (tied in HF).
* ``prompt_encoder.point_embeddings.N`` -> ``prompt_encoder.point_embed.N``;
  ``prompt_encoder.mask_downscaling.{0,1,3,4,6}`` ->
  ``prompt_encoder.mask_embed.{conv1,layer_norm1,conv2,layer_norm2,conv3}``;
  ``not_a_point_embed`` and ``no_mask_embed`` keep their names.
* ``mask_decoder.transformer.layers.N.normM`` -> ``...layers.N.layer_normM``;
  ``mask_decoder.transformer.norm_final_attn`` -> ``...transformer.layer_norm_final_attn``.
* ``mask_decoder.output_upscaling.{0,1,3}`` ->
  ``mask_decoder.{upscale_conv1,upscale_layer_norm,upscale_conv2}``.
* ``mask_decoder.{output_hypernetworks_mlps.K,iou_prediction_head}.layers.{0,1,2}`` ->
  ``... .{proj_in,layers.0,proj_out}``.
* Everything else under ``mask_decoder`` (attention projections, ``iou_token``, ``mask_tokens``)
  keeps its name.

The architecture is read off the tensor shapes by :func:`infer_sam_config` (ViT-B/L/H and others):
global-attention blocks are those whose relative-position table spans the whole grid
(``2 * grid - 1`` rows), windowed ones give the window size. The decoder's head count (8 in every
released SAM) is the only value not recoverable from shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from partonomy.errors import ConfigError

if TYPE_CHECKING:
    from transformers import SamConfig, SamModel

DECODER_HEADS = 8
"""Mask-decoder attention heads of every released SAM (not recoverable from the weights)."""
DECODER_LAYER_NORM_EPS = 1e-5
"""LayerNorm eps of the original mask-decoder transformer (``nn.LayerNorm``'s default); HF's
``SamMaskDecoderConfig`` defaults to 1e-6, which moves MobileSAM's low-res mask logits by up to
~0.1 (issue 11; ``tests/models/test_sam_real_weights.py``). The image encoder (1e-6), the prompt
encoder's and the upscaling ``LayerNorm2d`` (1e-6) already match HF's defaults."""
_MLP3 = {"0": "proj_in", "1": "layers.0", "2": "proj_out"}
_RULES: list[tuple[str, str]] = [
    (r"^image_encoder\.patch_embed\.proj\.", "vision_encoder.patch_embed.projection."),
    (r"^image_encoder\.pos_embed$", "vision_encoder.pos_embed"),
    (r"^image_encoder\.blocks\.(\d+)\.norm([12])\.", r"vision_encoder.layers.\1.layer_norm\2."),
    (r"^image_encoder\.blocks\.(\d+)\.attn\.", r"vision_encoder.layers.\1.attn."),
    (r"^image_encoder\.blocks\.(\d+)\.mlp\.", r"vision_encoder.layers.\1.mlp."),
    (r"^image_encoder\.neck\.0\.", "vision_encoder.neck.conv1."),
    (r"^image_encoder\.neck\.1\.", "vision_encoder.neck.layer_norm1."),
    (r"^image_encoder\.neck\.2\.", "vision_encoder.neck.conv2."),
    (r"^image_encoder\.neck\.3\.", "vision_encoder.neck.layer_norm2."),
    (r"^prompt_encoder\.point_embeddings\.(\d+)\.", r"prompt_encoder.point_embed.\1."),
    (r"^prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^prompt_encoder\.(not_a_point_embed|no_mask_embed)\.", r"prompt_encoder.\1."),
    (
        r"^mask_decoder\.transformer\.layers\.(\d+)\.norm(\d)\.",
        r"mask_decoder.transformer.layers.\1.layer_norm\2.",
    ),
    (
        r"^mask_decoder\.transformer\.norm_final_attn\.",
        "mask_decoder.transformer.layer_norm_final_attn.",
    ),
    (r"^mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
    (
        r"^mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head)\.layers\.(\d)\.",
        "MLP3",
    ),
    (r"^mask_decoder\.(transformer\.|iou_token\.|mask_tokens\.)", r"mask_decoder.\1"),
]
_GAUSSIAN = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"


def sam_key_map(key: str) -> list[str]:
    """HF key(s) of one segment-anything key (two for the shared positional matrix).

    Raises:
        ConfigError: the key is not part of the segment-anything layout.
    """
    if key == _GAUSSIAN:
        return [
            "shared_image_embedding.positional_embedding",
            "prompt_encoder.shared_embedding.positional_embedding",
        ]
    for pattern, replacement in _RULES:
        match = re.match(pattern, key)
        if match is None:
            continue
        if replacement == "MLP3":
            head, idx = match.group(1), match.group(2)
            return [f"mask_decoder.{head}.{_MLP3[idx]}." + key[match.end() :]]
        return [re.sub(pattern, replacement, key)]
    raise ConfigError(f"segment-anything checkpoint: unexpected key {key!r}")


def convert_sam_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map every key of a segment-anything state dict to HF ``SamModel`` keys (tensors shared)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for new in sam_key_map(key):
            out[new] = value
    return out


def _count(state_dict: Mapping[str, Any], pattern: str) -> int:
    found = {int(m.group(1)) for k in state_dict if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def infer_sam_config(state_dict: Mapping[str, torch.Tensor]) -> SamConfig:
    """The HF ``SamConfig`` of a segment-anything state dict, from its tensor shapes."""
    from transformers import SamConfig as HFSamConfig

    sd = state_dict
    try:
        hidden, _, patch, _ = sd["image_encoder.patch_embed.proj.weight"].shape
        grid = int(sd["image_encoder.pos_embed"].shape[1])
        depth = _count(sd, r"image_encoder\.blocks\.(\d+)\.")
        head_dim = int(sd["image_encoder.blocks.0.attn.rel_pos_h"].shape[1])
        tables = [
            int(sd[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0]) for i in range(depth)
        ]
        d = int(sd["mask_decoder.iou_token.weight"].shape[1])
        q_out = int(
            sd["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"].shape[0]
        )
    except KeyError as err:
        raise ConfigError(f"segment-anything checkpoint: missing {err.args[0]!r}") from None
    global_layers = [i for i, rows in enumerate(tables) if rows == 2 * grid - 1]
    windowed = [rows for rows in tables if rows != 2 * grid - 1]
    window = (windowed[0] + 1) // 2 if windowed else grid
    vision = {
        "hidden_size": int(hidden),
        "output_channels": int(sd["image_encoder.neck.0.weight"].shape[0]),
        "num_hidden_layers": depth,
        "num_attention_heads": int(hidden) // head_dim,
        "image_size": grid * int(patch),
        "patch_size": int(patch),
        "window_size": window,
        "global_attn_indexes": global_layers,
        "mlp_dim": int(sd["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]),
        "num_pos_feats": int(sd[_GAUSSIAN].shape[1]),
        "qkv_bias": "image_encoder.blocks.0.attn.qkv.bias" in sd,
    }
    prompt = {
        "hidden_size": d,
        "image_size": grid * int(patch),
        "patch_size": int(patch),
        "mask_input_channels": int(sd["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
        "num_point_embeddings": _count(sd, r"prompt_encoder\.point_embeddings\.(\d+)\."),
    }
    decoder = {
        "hidden_size": d,
        "mlp_dim": int(sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
        "num_hidden_layers": _count(sd, r"mask_decoder\.transformer\.layers\.(\d+)\."),
        "num_attention_heads": DECODER_HEADS,
        "attention_downsample_rate": d // q_out,
        "num_multimask_outputs": int(sd["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
        "iou_head_depth": _count(sd, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\."),
        "iou_head_hidden_dim": int(sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
        "layer_norm_eps": DECODER_LAYER_NORM_EPS,
    }
    return HFSamConfig(
        vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder
    )


def load_sam_original(path: str | Path) -> SamModel:
    """Load a segment-anything checkpoint file into HF ``SamModel`` (strict: every key must land)."""
    from transformers import SamModel

    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    model = SamModel(infer_sam_config(state))
    model.load_state_dict(convert_sam_state_dict(state), strict=True)
    return model
