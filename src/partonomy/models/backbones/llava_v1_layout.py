"""The original LLaVA v1 checkpoint layout -> HF ``LlavaForConditionalGeneration``.

PLUM was trained from ``liuhaotian/llava-llama-2-13b-chat-lightning-preview``: a ``LlavaLlamaForCausalLM``
whose language-model keys are plain ``LlamaForCausalLM`` keys, with the projector (and optionally the
CLIP tower) under ``model.``. The mapping (pure functions, no I/O):

================================================  ==================================================
original                                          HF
================================================  ==================================================
``model.embed_tokens.*``, ``model.layers.N.*``,   ``model.language_model.`` + the same suffix
``model.norm.*``
``lm_head.weight``                                ``lm_head.weight``
``model.mm_projector.{weight,bias}`` (v1 linear)  ``model.multi_modal_projector.linear_1.*``; act =
                                                  identity ("linear"); ``linear_2`` = identity
                                                  matrix, zero bias (so the output is exactly the
                                                  original single linear)
``model.mm_projector.{0,2}.*`` (mlp2x_gelu)       ``linear_1``, ``linear_2`` (act = gelu)
``model.vision_tower.vision_tower.vision_model.X``  ``model.vision_tower.X``
(or ``vision_model.X`` of a separate CLIP dir)
``*.rotary_emb.inv_freq``, ``*.position_ids``     dropped (buffers recomputed by HF)
================================================  ==================================================

Config translation: the LLaMA fields of ``config.json`` become the text config;
``mm_vision_select_layer`` -> ``vision_feature_layer``; ``mm_vision_select_feature`` "patch" ->
strategy "default" (CLS dropped), "cls_patch" -> "full"; the CLIP vision config comes from a separate
CLIP dir's ``config.json`` or, for embedded weights, from the tensor shapes (head width 64, as in
every OpenAI CLIP ViT).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from partonomy.errors import ConfigError

if TYPE_CHECKING:
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

V1_VISION_PREFIX = "model.vision_tower.vision_tower.vision_model."
CLIP_VISION_PREFIX = "vision_model."
HF_VISION_PREFIX = "model.vision_tower."
PROJECTOR = "model.mm_projector."
HF_PROJECTOR = "model.multi_modal_projector."
CLIP_HEAD_DIM = 64
_DROPPED_SUFFIXES = ("rotary_emb.inv_freq", "position_ids")
_CLIP_VISION_PARTS = ("embeddings.", "encoder.", "pre_layrnorm.", "post_layernorm.")


def projector_kind(state_dict: Mapping[str, Any]) -> str:
    """``"linear"`` (v1 single linear) or ``"mlp2x_gelu"``, from the projector keys present."""
    if f"{PROJECTOR}weight" in state_dict:
        return "linear"
    if f"{PROJECTOR}0.weight" in state_dict and f"{PROJECTOR}2.weight" in state_dict:
        return "mlp2x_gelu"
    raise ConfigError(
        "LLaVA v1 checkpoint: no projector found (expected model.mm_projector.weight or "
        "model.mm_projector.0/2.weight)"
    )


def vision_state_dict(
    state_dict: Mapping[str, Any], clip_state_dict: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The CLIP vision-tower tensors keyed like HF ``CLIPVisionTransformer`` (``embeddings...``).

    Taken from ``clip_state_dict`` when given (a ``CLIPModel`` checkpoint, keys ``vision_model.*``,
    or a ``CLIPVisionModel`` saved by recent transformers, bare keys ``embeddings.*``,
    ``encoder.*``, ``pre_layrnorm.*``, ``post_layernorm.*``), else from the v1 checkpoint's
    embedded tower.
    """
    if clip_state_dict:
        prefixed = any(k.startswith(CLIP_VISION_PREFIX) for k in clip_state_dict)
        source, prefix = clip_state_dict, CLIP_VISION_PREFIX if prefixed else ""
    else:
        source, prefix = state_dict, V1_VISION_PREFIX
    out = {
        k[len(prefix) :]: v
        for k, v in source.items()
        if k.startswith(prefix)
        and k[len(prefix) :].startswith(_CLIP_VISION_PARTS)
        and not k.endswith(_DROPPED_SUFFIXES)
    }
    if not out:
        raise ConfigError(
            "LLaVA v1 checkpoint has no vision tower weights (model.vision_tower.vision_tower.*); "
            "set llava.vision_tower to a local CLIP ViT-L/14 directory"
        )
    return out


def convert_llava_v1_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    clip_state_dict: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Map an original LLaVA v1 state dict (plus an optional CLIP one) to HF keys (module docstring).

    Works on any tensors, meta tensors included (the synthesised identity follows their device/dtype).

    Raises:
        ConfigError: an unrecognised key, or no projector / vision tower.
    """
    out: dict[str, torch.Tensor] = {}
    kind = projector_kind(state_dict)
    for key, value in state_dict.items():
        if key.endswith(_DROPPED_SUFFIXES) or key.startswith(("model.vision_tower.", PROJECTOR)):
            continue
        if key == "lm_head.weight":
            out[key] = value
        elif key.startswith("model.") and key.split(".")[1] in ("embed_tokens", "layers", "norm"):
            out["model.language_model." + key[len("model.") :]] = value
        else:
            raise ConfigError(f"LLaVA v1 checkpoint: unexpected key {key!r}")
    if kind == "linear":
        weight, bias = state_dict[f"{PROJECTOR}weight"], state_dict.get(f"{PROJECTOR}bias")
        d = weight.shape[0]
        out[f"{HF_PROJECTOR}linear_1.weight"] = weight
        out[f"{HF_PROJECTOR}linear_2.weight"] = torch.eye(
            d, dtype=weight.dtype, device=weight.device
        )
        if bias is not None:
            out[f"{HF_PROJECTOR}linear_1.bias"] = bias
            out[f"{HF_PROJECTOR}linear_2.bias"] = torch.zeros(
                d, dtype=weight.dtype, device=weight.device
            )
    else:
        for src, dst in (("0", "linear_1"), ("2", "linear_2")):
            for p in ("weight", "bias"):
                if f"{PROJECTOR}{src}.{p}" in state_dict:
                    out[f"{HF_PROJECTOR}{dst}.{p}"] = state_dict[f"{PROJECTOR}{src}.{p}"]
    for key, value in vision_state_dict(state_dict, clip_state_dict).items():
        out[HF_VISION_PREFIX + key] = value
    return out


def infer_clip_vision_config(vision: Mapping[str, torch.Tensor]) -> CLIPVisionConfig:
    """A ``CLIPVisionConfig`` from HF-keyed CLIP vision tensors (see :func:`vision_state_dict`)."""
    from transformers import CLIPVisionConfig

    hidden, _, patch, _ = vision["embeddings.patch_embedding.weight"].shape
    positions = vision["embeddings.position_embedding.weight"].shape[0]
    grid = round((positions - 1) ** 0.5)
    layers = 1 + max(int(k.split(".")[2]) for k in vision if k.startswith("encoder.layers."))
    return CLIPVisionConfig(
        hidden_size=int(hidden),
        intermediate_size=int(vision["encoder.layers.0.mlp.fc1.weight"].shape[0]),
        num_hidden_layers=layers,
        num_attention_heads=int(hidden) // CLIP_HEAD_DIM,
        image_size=grid * int(patch),
        patch_size=int(patch),
    )


def translate_llava_v1_config(
    original: Mapping[str, Any],
    vision_config: CLIPVisionConfig,
    *,
    image_token_index: int,
    projector: str | None = None,
) -> LlavaConfig:
    """HF ``LlavaConfig`` from an original LLaVA v1 ``config.json`` and the CLIP vision config.

    Args:
        original: the parsed ``config.json`` of the v1 checkpoint.
        vision_config: the CLIP tower's config.
        image_token_index: id of ``<image>`` (the tokenizer's; the vocabulary is resized later).
        projector: ``"linear"`` or ``"mlp2x_gelu"``; default: ``mm_projector_type`` of the config
            ("linear" when absent, as in v1). :func:`load_llava_v1` passes the kind found in the
            weights, which is authoritative.
    """
    from transformers import LlamaConfig
    from transformers import LlavaConfig as HFLlavaConfig

    keys = (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "rms_norm_eps",
        "max_position_embeddings",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    )
    # Unset or negative ids (old LLaMA configs use pad_token_id = -1) are left to HF's defaults.
    values = {k: original[k] for k in keys if original.get(k) is not None}
    text = LlamaConfig(**{k: v for k, v in values.items() if not (k.endswith("_id") and v < 0)})
    select = original.get("mm_vision_select_feature", "patch")
    if select not in ("patch", "cls_patch"):
        raise ConfigError(f"LLaVA v1 config: unknown mm_vision_select_feature {select!r}")
    projector = projector or original.get("mm_projector_type") or "linear"
    if projector not in ("linear", "mlp2x_gelu"):
        raise ConfigError(f"LLaVA v1 config: unsupported mm_projector_type {projector!r}")
    grid = int(vision_config.image_size) // int(vision_config.patch_size)  # type: ignore[arg-type]
    return HFLlavaConfig(
        vision_config=vision_config,
        text_config=text,
        image_token_index=image_token_index,
        image_seq_length=grid * grid + (1 if select == "cls_patch" else 0),
        projector_hidden_act="linear" if projector == "linear" else "gelu",
        vision_feature_layer=int(original.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy="default" if select == "patch" else "full",
        multimodal_projector_bias=True,
    )


def read_state_dict(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory (``*.safetensors`` or ``pytorch_model*.bin`` shards)."""
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    shards = sorted(directory.glob("*.safetensors"))
    if shards:
        from safetensors.torch import load_file

        for shard in shards:
            tensors.update(load_file(shard))
        return tensors
    shards = sorted(directory.glob("pytorch_model*.bin"))
    if not shards:
        raise ConfigError(f"{directory}: no *.safetensors or pytorch_model*.bin weights found")
    for shard in shards:
        tensors.update(torch.load(shard, map_location="cpu", weights_only=True, mmap=True))
    return tensors


def load_llava_v1(
    directory: str | Path,
    *,
    vision_tower: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> LlavaForConditionalGeneration:
    """Load an original LLaVA v1 checkpoint directory into HF ``LlavaForConditionalGeneration``.

    Args:
        directory: holds ``config.json`` and the weights.
        vision_tower: a HF CLIP directory, for checkpoints without embedded tower weights.
        dtype: parameter dtype.

    Returns:
        The model with every weight loaded (strict); ``image_token_index`` is a placeholder
        (the vocabulary size), reset by :func:`partonomy.models.backbones.llava.build_llava`.
    """
    from transformers import LlavaForConditionalGeneration

    directory = Path(directory)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"{directory}: no config.json (not a LLaVA v1 checkpoint directory)")
    original = json.loads(config_file.read_text())
    state = read_state_dict(directory)
    clip_state = None
    if vision_tower is not None:
        clip_state = read_state_dict(vision_tower)
    hf_state = convert_llava_v1_state_dict(state, clip_state)
    vision_keys = {
        k[len(HF_VISION_PREFIX) :]: v for k, v in hf_state.items() if k.startswith(HF_VISION_PREFIX)
    }
    vision_cfg = (
        _clip_config_from_dir(vision_tower)
        if vision_tower
        else infer_clip_vision_config(vision_keys)
    )
    # The placeholder image token is the first id past the checkpoint vocabulary.
    config = translate_llava_v1_config(
        original, vision_cfg, image_token_index=int(original["vocab_size"])
    )
    from transformers.initialization import no_init_weights

    with no_init_weights():
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype)
    model.load_state_dict(hf_state, strict=True)
    return model


def _clip_config_from_dir(directory: str | Path) -> CLIPVisionConfig:
    from transformers import CLIPVisionConfig

    data = json.loads((Path(directory) / "config.json").read_text())
    data = data.get("vision_config", data)
    known = CLIPVisionConfig().to_dict()
    return CLIPVisionConfig(**{k: v for k, v in data.items() if k in known and k != "model_type"})
