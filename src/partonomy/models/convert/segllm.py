"""SegLLM's released layout (``Marlo-Z/SegLLM``: ``all_data_checkpoint``, ``mr_refcoco_checkpoint``,
``mr_paco_checkpoint``).

The HF-Trainer ``save_pretrained`` of ``LlavaLlamaForCausalLM`` (full fine-tuning), read from
``llava/model/llava_arch.py``, ``language_model/llava_llama.py``,
``multimodal_projector/builder.py`` and ``segmentator/hipie_utils.py``:

================================================  ============================================
released key                                      ours
================================================  ============================================
``model.embed_tokens.weight``, ``model.layers.N.   ``llava.model.language_model.*`` (plus one
*``, ``model.norm.weight``, ``lm_head.weight``     ``<image>`` row; ``<seg_input>``'s row is set
                                                  to ``<video>``'s, see below)
``model.mm_projector.{0,2}.*`` (mlp2x_gelu)       ``llava.model.multi_modal_projector.linear_{1,2}.*``
``model.vision_tower.vision_tower.vision_model.*`` ``llava.model.vision_tower.*`` (or
                                                  ``--vision-tower`` when the release lacks it)
``model.segmentator_predictor.{0,2}.*``           ``prompt_source.predictor.{0,2}.*``
``model.mask_enc_head.{weight,bias}``             ``input_encoders.reencode.mask_enc_head.*``
``model.segmentator.hipie.*`` (HIPIE)             dropped, listed in ``conversion.json``: not
                                                  mappable onto the Mask2Former-part decoder
                                                  (docs/models.md, "SegLLM's decoder weights")
``*.rotary_emb.inv_freq``                         dropped (recomputed)
================================================  ============================================

The decoder of the converted checkpoint is therefore freshly initialised (seeded; its tensors are
written to ``weights.safetensors`` like every other non-backbone weight) and must be trained (for
example by the PARTONOMY fine-tune config) before masks mean anything; the LLM, projector,
``<seg>`` predictor and box encoder are SegLLM's.

Tokens: the release's tokenizer must hold ``<seg>`` and ``<seg_input>`` (SegLLM adds them with
``mm_use_seg``). The original writes its mask/box encodings into ``<video>`` tokens; ours use
``<seg_input>``, so the converter copies ``<video>``'s embedding row into ``<seg_input>``'s (when
the tokenizer has ``<video>``), and the re-encoded inputs equal the original's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from partonomy.models.convert.common import (
    EMBED,
    LLAVA_DIR,
    ConversionError,
    Route,
    Sizes,
    SourceLayout,
    assemble_llava,
    check_modules,
    dtype_name,
    route_all,
)
from partonomy.models.convert.lisa import route_llava
from partonomy.models.convert.writer import (
    append_image_token,
    load_clip,
    open_source,
    open_tokenizer,
    write_checkpoint,
)

SEG, SEG_INPUT, VIDEO = "<seg>", "<seg_input>", "<video>"
SEGMENTATOR = "model.segmentator."
HIPIE_REASON = (
    "HIPIE decoder (detectron2 ResNet-50 + deformable/MaskDINO decoder + BERT text branch): not "
    "mappable onto the Mask2Former-part decoder (docs/models.md)"
)
PREDICTOR = re.compile(r"^model\.segmentator_predictor\.([02])\.(weight|bias)$")
BOX_HEAD = re.compile(r"^model\.mask_enc_head\.(weight|bias)$")


def route(key: str) -> Route | None:
    """Where a released SegLLM key goes (module docstring); None for an unknown key (an error).

    ``model.segmentator.norm.*`` (HIPIE's optional prompt LayerNorm, ``use_norm``) is unknown on
    purpose: dropping it would change what the decoder sees.
    """
    if key.startswith(SEGMENTATOR + "hipie."):
        return Route("drop", HIPIE_REASON)
    match = PREDICTOR.match(key)
    if match:
        return Route("extra", f"prompt_source.predictor.{match.group(1)}.{match.group(2)}")
    match = BOX_HEAD.match(key)
    if match:
        return Route("extra", f"input_encoders.reencode.mask_enc_head.{match.group(1)}")
    return route_llava(key)


def _unused_build(sizes: Sizes) -> tuple[Any, dict[str, nn.Module]]:
    raise NotImplementedError("SegLLM has no SAM: use assemble_segllm, not the SAM engine")


LAYOUT = SourceLayout(
    family="segllm",
    added_tokens=(SEG, SEG_INPUT),
    route=route,
    build=_unused_build,
    released=(
        "Marlo-Z/SegLLM/all_data_checkpoint",
        "Marlo-Z/SegLLM/mr_refcoco_checkpoint",
        "Marlo-Z/SegLLM/mr_paco_checkpoint",
    ),
)


@dataclass
class SegLLMAssembled:
    """What :func:`assemble_segllm` builds (tensors may be meta tensors).

    Attributes:
        llava_state, llava_config: HF ``LlavaForConditionalGeneration`` state dict and config.
        extra_state: the predictor and box-encoder tensors, by our key.
        family_config: the :class:`~partonomy.models.segllm.config.SegLLMConfig`.
        image_token_id: id of the appended ``<image>``.
        dropped: source key -> why it was dropped.
    """

    llava_state: dict[str, torch.Tensor]
    llava_config: Any
    extra_state: dict[str, torch.Tensor]
    family_config: Any
    image_token_id: int
    dropped: dict[str, str] = field(default_factory=dict)


def _heads(
    d: int, token_ids: Mapping[str, int], text_tokens: int, text_dim: int, clip: int, side: int
) -> dict[str, nn.Module]:
    """The predictor and the re-encoder on the meta device (the key and shape reference)."""
    from partonomy.models.segllm.prompts import SegPredictorPrompts
    from partonomy.models.segllm.reencode import MaskReencoder

    with torch.device("meta"):
        return {
            "prompt_source": SegPredictorPrompts(d, text_tokens, text_dim, token_ids[SEG]),
            "input_encoders.reencode": MaskReencoder(
                token_id=token_ids[SEG_INPUT], llm_hidden=d, clip_size=clip, decoder_size=side
            ),
        }


def assemble_segllm(
    source: Mapping[str, torch.Tensor],
    config_json: Mapping[str, Any],
    token_ids: Mapping[str, int],
    *,
    clip_state: Mapping[str, torch.Tensor] | None,
    clip_config: Any | None,
    where: str = "source",
    decoder: Any | None = None,
) -> SegLLMAssembled:
    """Every converted tensor and config from source tensors (real or meta); no files written.

    Args:
        source: released key -> tensor.
        config_json: the released ``config.json``.
        token_ids: ``<seg>``, ``<seg_input>`` (and ``<video>`` when present) -> id.
        clip_state, clip_config: a HF CLIP checkpoint for a release without its tower, else None.
        where: the source's name for messages.
        decoder: the decoder's :class:`~partonomy.models.segllm.decoder.DecoderConfig` (default:
            HIPIE's sizes); its ``text_tokens`` is read from the predictor.

    Raises:
        ConversionError: unknown, unfilled or mis-shaped keys (listed), or no CLIP tower.
    """
    from partonomy.models.backbones.llava import PRETRAINED_TOKENIZER, LlavaConfig
    from partonomy.models.segllm.config import SegLLMConfig
    from partonomy.models.segllm.decoder import DecoderConfig

    parts, dropped = route_all(LAYOUT, source, where)
    llava = assemble_llava(
        {k: source[s] for k, s in parts["llava"].items()},
        config_json,
        clip_state=clip_state,
        clip_config=clip_config,
        where=where,
    )
    hf = llava.state
    if VIDEO in token_ids and not hf[EMBED].is_meta:
        # Module docstring: <seg_input> reads as <video>.
        hf[EMBED] = hf[EMBED].clone()
        hf[EMBED][token_ids[SEG_INPUT]] = hf[EMBED][token_ids[VIDEO]]
    extra = {k: source[s] for k, s in parts["extra"].items()}
    decoder = decoder if decoder is not None else DecoderConfig()
    predictor_out = extra.get("prompt_source.predictor.2.weight")
    if predictor_out is not None and predictor_out.shape[0] % decoder.text_dim == 0:
        decoder.text_tokens = int(predictor_out.shape[0]) // decoder.text_dim
    d = int(cast(Any, llava.config).text_config.hidden_size)
    modules = _heads(
        d,
        token_ids,
        decoder.text_tokens,
        decoder.text_dim,
        int(cast(Any, llava.vision_config).image_size),
        decoder.image_size,
    )
    check_modules(where, "segllm", extra, modules)
    family_config = SegLLMConfig(
        llava=LlavaConfig(
            pretrained=LLAVA_DIR,
            layout="llava_hf",
            tokenizer=PRETRAINED_TOKENIZER,
            im_start_end=False,
            dtype=dtype_name(llava.dtype),  # type: ignore[arg-type]
        ),
        decoder=decoder,
    )
    return SegLLMAssembled(hf, llava.config, extra, family_config, llava.image_token_id, dropped)


def _tokenizer(src: Path, vocab: int) -> tuple[Any, dict[str, int]]:
    """The release's tokenizer (``<seg>``, ``<seg_input>`` checked) with ``<image>`` appended."""
    tok = open_tokenizer(src)
    vocab_map = tok.get_vocab()
    missing = [t for t in (SEG, SEG_INPUT) if t not in vocab_map]
    if missing:
        raise ConversionError(f"{src}: the tokenizer lacks {', '.join(missing)} (SegLLM adds them)")
    ids = {t: int(vocab_map[t]) for t in (SEG, SEG_INPUT, VIDEO) if t in vocab_map}
    return append_image_token(tok, src, vocab), ids


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    vision_tower: str | Path | None = None,
    overwrite: bool = False,
    decoder: Any | None = None,
) -> Path:
    """Convert a released SegLLM directory ``src`` into our checkpoint ``dst``
    (``Family.converters["segllm"]``; ``partonomy convert-checkpoint --from segllm``).

    Writes ``llava/`` (``save_pretrained`` + tokenizer), ``weights.safetensors`` (predictor, box
    encoder and the freshly initialised decoder), ``config.yaml``, ``manifest.json`` and
    ``conversion.json`` (dropped HIPIE keys and why), through ``DST.tmp`` and a rename.

    ``decoder`` (a :class:`~partonomy.models.segllm.decoder.DecoderConfig`) sizes the new decoder;
    the default is HIPIE's (ResNet-50, 900 queries).

    Raises:
        ConversionError: another family's directory, unknown or unfilled keys (listed), a tokenizer
            that does not match, an existing ``dst`` without ``overwrite``.
    """
    from partonomy.models.segllm.decoder import QueryMaskHead

    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise ConversionError(f"{dst}: already exists (pass --overwrite to replace it)")
    source = open_source(src, "segllm")
    vocab = int(source.meta()["model.embed_tokens.weight"].shape[0])
    tokenizer, token_ids = _tokenizer(src, vocab)
    clip_state, clip_config = (None, None) if vision_tower is None else load_clip(vision_tower)
    parts = assemble_segllm(
        source,
        source.config,
        token_ids,
        clip_state=clip_state,
        clip_config=clip_config,
        where=str(src),
        decoder=decoder,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(parts.family_config.seed or 0)
        decoder = QueryMaskHead(parts.family_config.decoder)
    dtype = parts.llava_state[EMBED].dtype
    extra = dict(parts.extra_state)
    extra |= {f"mask_head.{k}": v.detach().to(dtype) for k, v in decoder.named_parameters()}
    return write_checkpoint(
        src,
        dst,
        family="segllm",
        family_config=parts.family_config,
        llava_config=parts.llava_config,
        llava_state=parts.llava_state,
        tokenizer=tokenizer,
        extra_state=extra,
        conversion={
            "source": str(src.resolve()),
            "family": "segllm",
            "source_keys": len(source),
            "added_tokens": token_ids,
            "image_token_id": parts.image_token_id,
            "dropped": dict(sorted(parts.dropped.items())),
            "decoder": "freshly initialised (HIPIE's weights do not map; docs/models.md)",
            "vision_tower": None if vision_tower is None else str(Path(vision_tower).resolve()),
        },
    )
