"""Shared assembly steps of the ``[SEG]``-token families (LISA, GLaMM; later PixelLM, SegLLM).

:func:`build_seg_token_model` builds the tokenizer (with the family's tokens), the LLaVA and SAM
backbones, the ``[SEG]`` prompt source sized from them and SAM's mask head, then hands them to
:class:`~partonomy.models.core.model.SegLMM`; the family adds its own parts (GLaMM's region
encoder) through ``input_encoders``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from partonomy.errors import ConfigError
from partonomy.models.backbones.hf_vlm import VlmAdapter, VlmConfig, build_vlm, load_vlm_tokenizer
from partonomy.models.backbones.llava import (
    LlavaConfig,
    build_llava,
    image_seq_length,
    load_tokenizer,
    token_id,
    uses_im_start_end,
)
from partonomy.models.backbones.sam import SamConfig, build_sam, sam_geometry
from partonomy.models.core.mask_heads_hf import mask_head_for
from partonomy.models.core.model import InputEncoder, SegLMM
from partonomy.models.core.processing import SegProcessor
from partonomy.models.core.processing_vlm import VlmSegProcessor
from partonomy.models.core.prompt_sources import SegTokenPrompts
from partonomy.models.core.targets import SEG_TOKEN, SegTokenTargets

InputEncoderFactory = Callable[[Any, Any], Mapping[str, InputEncoder]]
"""``(llava, tokenizer) -> {name: encoder}``: a family's input encoders, built from the backbone."""


def build_seg_token_model(
    *,
    family: str,
    config: Any,
    llava_cfg: LlavaConfig,
    sam_cfg: SamConfig,
    extra_tokens: Sequence[str],
    extra_first: bool = True,
    targets: SegTokenTargets,
    max_length: int,
    seed: int | None,
    image_prompt: str = "{image}\n",
    input_encoders: InputEncoderFactory | None = None,
    backbone: str = "llava",
    vlm_cfg: VlmConfig | None = None,
) -> tuple[SegLMM, SegProcessor]:
    """A ``[SEG]``-token segmentation LMM and its processor.

    Args:
        family: the registered family name (stored on the model).
        config: the family config (stored on the model).
        llava_cfg, sam_cfg: the backbones.
        extra_tokens: the family's tokens, added to the tokenizer in this order.
        extra_first: add them before LLaVA's ``<im_start>``/``<im_end>`` (LISA) or after (GLaMM).
        targets: how answers mark their parts (``[SEG]``, optionally phrase tags).
        max_length: longest token sequence (image tokens included).
        seed: seed of every random initialisation (a forked RNG); None = the global RNG.
        image_prompt: the first user turn's image part (see :class:`SegProcessor`).
        input_encoders: builds the family's input encoders from the loaded backbone.
        backbone: ``llava``, or an HF VLM kind (``qwen2_5_vl``...) built from ``vlm_cfg``: its
            tokenizer gets ``extra_tokens`` as added special tokens, its chat template and image
            processor make the prompts (``llava_cfg`` and ``image_prompt`` are then unused).
        vlm_cfg: the HF VLM backbone's config (``backbone`` other than ``llava``).

    Returns:
        ``(model, processor)`` on CPU, every parameter trainable, the prompt source in LLaVA's dtype.
    """
    vlm: VlmAdapter | None = None
    if backbone != "llava" and (vlm_cfg is None or input_encoders is not None):
        raise ConfigError(
            f"{family} on backbone {backbone!r}: needs the vlm config and no input encoders (an "
            "HF VLM scatters its own image features; region encoders need the LLaVA backbone)"
        )
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if backbone == "llava":
            tokenizer = load_tokenizer(
                llava_cfg, extra_tokens=extra_tokens, extra_first=extra_first
            )
            llava = build_llava(llava_cfg, tokenizer)
        else:
            assert vlm_cfg is not None
            tokenizer = load_vlm_tokenizer(backbone, vlm_cfg)
            tokenizer.add_tokens(list(extra_tokens), special_tokens=True)
            llava, vlm = build_vlm(backbone, vlm_cfg, tokenizer)
        sam = build_sam(sam_cfg)
        geo = sam_geometry(sam)
        d = int(llava.config.text_config.hidden_size)  # type: ignore[union-attr]
        prompts = SegTokenPrompts(d, geo.prompt_dim, token_id(tokenizer, SEG_TOKEN))
        encoders = dict(input_encoders(llava, tokenizer)) if input_encoders else {}
    prompts.to(llava.dtype)
    for encoder in encoders.values():
        encoder.to(llava.dtype)
    model = SegLMM(
        llava=llava,
        prompt_source=prompts,
        mask_head=mask_head_for(sam),
        input_encoders=encoders,
        config=config,
        family=family,
        vlm=vlm,
    )
    if vlm is not None:
        return model, VlmSegProcessor(
            tokenizer,
            adapter=vlm,
            targets=targets,
            sam_image_size=geo.input_size,
            max_length=max_length,
        )
    processor = SegProcessor(
        tokenizer,
        targets=targets,
        image_seq_length=image_seq_length(llava),
        clip_image_size=int(llava.config.vision_config.image_size),  # type: ignore[union-attr]
        sam_image_size=geo.input_size,
        use_im_start_end=uses_im_start_end(llava_cfg),
        max_length=max_length,
        image_prompt=image_prompt,
    )
    return model, processor
