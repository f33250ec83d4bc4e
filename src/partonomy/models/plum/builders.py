"""Assembling PLUM from its parts, and the named configs (presets).

``build_plum(cfg)`` builds the tokenizer, LLaVA and SAM (tiny random or loaded from local
checkpoints), then PLUM's own modules sized from them, and returns the model with its processor.
``tiny_config()`` builds offline in a few seconds and is what tests and the quickstart use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from partonomy.config import merge_overrides
from partonomy.errors import ConfigError
from partonomy.models.backbones.hf_vlm import (
    VlmAdapter,
    VlmConfig,
    build_vlm,
    load_vlm_tokenizer,
)
from partonomy.models.backbones.llava import (
    LlavaConfig,
    build_llava,
    image_seq_length,
    load_tokenizer,
    uses_im_start_end,
)
from partonomy.models.backbones.sam import SamConfig, build_sam, sam_geometry
from partonomy.models.core.feedback import MaskFeedbackPooler
from partonomy.models.core.mask_heads_hf import mask_head_for
from partonomy.models.core.model import SegLMM
from partonomy.models.core.processing import SegProcessor
from partonomy.models.core.processing_vlm import VlmSegProcessor
from partonomy.models.plum.config import PlumConfig
from partonomy.models.plum.prompts import BioSpanPrompts
from partonomy.models.plum.span_extractor import SpanExtractor
from partonomy.models.plum.span_query import SpanQuery
from partonomy.models.plum.targets import BioTargets


def build_processor(cfg: PlumConfig, llava: Any | None = None) -> SegProcessor:
    """The processor for ``cfg`` (sizes from a built ``llava`` when given, else from ``cfg.llava``).

    Building only the processor needs the tokenizer, not the weights, when ``cfg.llava`` is tiny.
    An HF VLM backbone needs its built model (its image processor and token ids): use
    :func:`build_plum`.
    """
    if cfg.backbone != "llava":
        raise ConfigError(f"build_processor: backbone {cfg.backbone!r} needs build_plum")
    tokenizer = load_tokenizer(cfg.llava)
    if llava is not None:
        seq = image_seq_length(llava)
        clip_size = int(llava.config.vision_config.image_size)
    elif cfg.llava.pretrained is None:
        seq = (cfg.llava.image_size // cfg.llava.patch_size) ** 2
        clip_size = cfg.llava.image_size
    else:
        raise ConfigError(
            "build_processor: pass the built llava model when llava.pretrained is set"
        )
    return SegProcessor(
        tokenizer,
        targets=BioTargets(),
        image_seq_length=seq,
        clip_image_size=clip_size,
        sam_image_size=cfg.sam.image_size if cfg.sam.pretrained is None else 0,
        use_im_start_end=uses_im_start_end(cfg.llava),
        max_length=cfg.max_length,
    )


def build_plum(cfg: PlumConfig) -> tuple[SegLMM, SegProcessor]:
    """Build PLUM and its processor.

    Returns:
        ``(model, processor)``; the model is on CPU in ``cfg.llava.dtype`` for LLaVA and PLUM's own
        modules and ``cfg.sam.dtype`` for SAM, in train mode, with every parameter trainable (the
        training recipe decides what to freeze).

    Raises:
        ConfigError: a checkpoint path is missing, or sizes are inconsistent.
    """
    vlm: VlmAdapter | None = None
    with torch.random.fork_rng(devices=[]):
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        if cfg.backbone == "llava":
            tokenizer = load_tokenizer(cfg.llava)
            llava = build_llava(cfg.llava, tokenizer)
        else:
            tokenizer = load_vlm_tokenizer(cfg.backbone, cfg.vlm)
            llava, vlm = build_vlm(cfg.backbone, cfg.vlm, tokenizer)
        sam = build_sam(cfg.sam)
        return assemble_plum(cfg, tokenizer=tokenizer, llava=llava, sam=sam, vlm=vlm)


def assemble_plum(
    cfg: PlumConfig, *, tokenizer: Any, llava: Any, sam: Any, vlm: VlmAdapter | None = None
) -> tuple[SegLMM, SegProcessor]:
    """PLUM's own modules sized from already-built backbones, and the model and processor.

    :func:`build_plum` builds the backbones from ``cfg``; a caller that builds them otherwise
    (e.g. a benchmark at a published full-size shape with random weights) passes them here.
    Only ``cfg``'s head fields (``bidir_*``, ``feedback_*``, ``use_feedback``,
    ``span_extractor_order``, ``max_length``) are read; the heads take the caller's RNG.

    Args:
        cfg: the config (stored on the model).
        tokenizer: the backbone's tokenizer.
        llava: the HF ``LlavaForConditionalGeneration`` or, with ``vlm``, another HF VLM.
        sam: the HF ``SamModel`` / ``Sam2Model`` / ``SamHQModel``.
        vlm: the :class:`VlmAdapter` of an HF VLM backbone, None for LLaVA.

    Raises:
        ConfigError: head sizes that do not divide the backbones' widths.
    """
    geo = sam_geometry(sam)
    d = int(llava.config.text_config.hidden_size)
    if d % cfg.bidir_heads:
        raise ConfigError(f"bidir_heads ({cfg.bidir_heads}) must divide the LLM width ({d})")
    if geo.prompt_dim % cfg.feedback_heads:
        raise ConfigError(
            f"feedback_heads ({cfg.feedback_heads}) must divide SAM's prompt width ({geo.prompt_dim})"
        )
    extractor = SpanExtractor(
        d,
        heads=cfg.bidir_heads,
        ff=cfg.bidir_ff,
        dropout=cfg.bidir_dropout,
        order=cfg.span_extractor_order,
    )
    query = SpanQuery(d, geo.prompt_dim)
    pooler = (
        MaskFeedbackPooler(geo.prompt_dim, geo.mask_channels, geo.embed_size, cfg.feedback_heads)
        if cfg.use_feedback
        else None
    )
    dtype = llava.dtype
    for module in (extractor, query, pooler):
        if module is not None:
            module.to(dtype)
    model = SegLMM(
        llava=llava,
        prompt_source=BioSpanPrompts(extractor, query),
        mask_head=mask_head_for(sam),
        feedback=pooler,
        config=cfg,
        family="plum",
        vlm=vlm,
    )
    if vlm is not None:
        return model, VlmSegProcessor(
            tokenizer,
            adapter=vlm,
            targets=BioTargets(),
            sam_image_size=geo.input_size,
            max_length=cfg.max_length,
        )
    processor = SegProcessor(
        tokenizer,
        targets=BioTargets(),
        image_seq_length=image_seq_length(llava),
        clip_image_size=int(llava.config.vision_config.image_size),
        sam_image_size=geo.input_size,
        use_im_start_end=uses_im_start_end(cfg.llava),
        max_length=cfg.max_length,
    )
    return model, processor


def tiny_config(**overrides: Any) -> PlumConfig:
    """A tiny random PLUM that builds offline in seconds (tests, quickstart, CI).

    LLaVA: LLaMA 64-d / 2 layers with the real 32k SentencePiece vocabulary, CLIP 64-d / 2 layers at
    64 px, patch 8 (64 image tokens). SAM: ViT 64-d / 2 layers at 128 px, patch 8 (16x16 grid),
    ``D_sam`` = 32. Span extractor: 4 heads, feed-forward 128, no dropout (deterministic tests).

    Args:
        overrides: top-level :class:`PlumConfig` fields; ``llava=`` / ``sam=`` take dicts of their
            fields, e.g. ``tiny_config(use_feedback=False, sam={"image_size": 64})``.
    """
    base = PlumConfig(
        llava=LlavaConfig(),
        sam=SamConfig(),
        bidir_heads=4,
        bidir_ff=128,
        bidir_dropout=0.0,
        feedback_heads=4,
        max_length=512,
    )
    return merge_overrides(base, overrides, "tiny_config")


def plum_13b_config() -> PlumConfig:
    """PLUM-13B: LLaVA-LLaMA-2-13B-chat lightning preview (v1 layout) + SAM ViT-H (original .pth).

    The paths are placeholders for local copies; override ``llava.pretrained`` / ``sam.pretrained``.
    """
    return PlumConfig(
        llava=LlavaConfig(
            pretrained="checkpoints/llava-llama-2-13b-chat-lightning-preview",
            layout="llava_v1",
            dtype="bfloat16",
        ),
        sam=SamConfig(
            pretrained="checkpoints/sam_vit_h_4b8939.pth", layout="original", dtype="bfloat16"
        ),
    )


def plum_7b_config() -> PlumConfig:
    """PLUM-7B: LLaVA-LLaMA-2-7B-chat lightning (v1 layout, LoRA merged) + SAM ViT-H."""
    cfg = plum_13b_config()
    cfg.llava.pretrained = "checkpoints/llava-llama-2-7b-chat-lightning-preview"
    return cfg


def plum_qwen2_5_vl_7b_config() -> PlumConfig:
    """PLUM on Qwen2.5-VL-7B-Instruct with SAM 2.1-L (HF checkpoints at placeholder paths)."""
    return PlumConfig(
        backbone="qwen2_5_vl",
        vlm=VlmConfig(pretrained="checkpoints/Qwen2.5-VL-7B-Instruct", dtype="bfloat16"),
        sam=SamConfig(
            kind="sam2", pretrained="checkpoints/sam2.1-hiera-large", layout="hf", dtype="bfloat16"
        ),
    )


def _tiny_on(backbone: str = "llava", sam_kind: str = "sam") -> Callable[[], PlumConfig]:
    """A tiny preset on another backbone / mask head (random, offline, seconds to build)."""

    def preset() -> PlumConfig:
        return tiny_config(backbone=backbone, sam={"kind": sam_kind, "vision_hidden": 16})

    return preset


PRESETS: dict[str, Callable[[], PlumConfig]] = {
    "tiny": tiny_config,
    "tiny_qwen2_5_vl": _tiny_on("qwen2_5_vl"),
    "tiny_qwen3_vl": _tiny_on("qwen3_vl"),
    "tiny_llava_onevision": _tiny_on("llava_onevision"),
    "tiny_sam2": _tiny_on(sam_kind="sam2"),
    "tiny_sam_hq": _tiny_on(sam_kind="sam_hq"),
    "tiny_qwen2_5_vl_sam2": _tiny_on("qwen2_5_vl", "sam2"),
    "plum_qwen2_5_vl_7b": plum_qwen2_5_vl_7b_config,
    "plum_7b": plum_7b_config,
    "plum_13b": plum_13b_config,
}
"""Named configs: ``tiny`` builds offline; the real ones need local weights at their paths."""
