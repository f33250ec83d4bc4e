"""SAM 2 (Hiera) and SAM-HQ as mask heads: tiny random configs and loading (``sam.kind``).

Both are transformers models (``Sam2Model``, ``SamHQModel``) with SAM's prompt interface: sparse
prompt tokens and a dense prompt of the image-embedding grid, with ``prompt_encoder.mask_embed``
as the mask-input path (the feedback loop reuses it). What they add is read by their heads
(:mod:`partonomy.models.core.mask_heads_hf`): SAM 2's two high-resolution FPN levels, SAM-HQ's
early ViT features and HQ token.

Tiny sizes reuse :class:`~partonomy.models.backbones.sam.SamConfig`'s fields: ``image_size``,
``decoder_hidden`` (prompt / decoder width ``D``), ``decoder_layers``, ``vision_hidden``,
``vision_layers``, ``vision_heads``. SAM 2's image embedding has stride 16 whatever
``patch_size`` says (Hiera: a stride-4 patch embedding, then three 2x poolings; the embedding is the
third FPN level).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from partonomy.errors import ConfigError

if TYPE_CHECKING:
    from partonomy.models.backbones.sam import SamConfig

SAM2_STRIDE = 16
"""Pixels per cell of SAM 2's image embedding (the prompt encoder's ``patch_size``)."""


def _decoder(cfg: SamConfig) -> dict[str, Any]:
    d = cfg.decoder_hidden
    return {
        "hidden_size": d,
        "mlp_dim": 8 * d,
        "num_attention_heads": max(1, min(8, d // 8)),
        "iou_head_hidden_dim": d,
        "num_hidden_layers": cfg.decoder_layers,
    }


def tiny_sam2_config(cfg: SamConfig) -> Any:
    """A tiny HF ``Sam2Config``: a 4-stage Hiera of width ``vision_hidden`` (doubling per stage),
    an FPN of width ``decoder_hidden`` and SAM 2's prompt encoder / decoder at that width."""
    from transformers import Sam2Config

    stride = cfg.patch_size if cfg.encoder == "conv" else SAM2_STRIDE
    if cfg.image_size % (2 * SAM2_STRIDE) and cfg.encoder != "conv":
        raise ConfigError(
            f"sam.kind=sam2 needs sam.image_size divisible by 32, got {cfg.image_size}"
        )
    width = cfg.vision_hidden
    # Stage 3 holds the depth; its last block attends globally (SAM 2's pattern). A global block
    # cannot be a stage's first (pooling) block, so stage 3 has at least two.
    third = max(2, cfg.vision_layers)
    dims = [width, 2 * width, 4 * width, 8 * width]
    side = cfg.image_size
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": width,
        "num_attention_heads": 1,
        "image_size": [side, side],
        "blocks_per_stage": [1, 1, third, 1],
        "embed_dim_per_stage": dims,
        "num_attention_heads_per_stage": [1, 1, max(1, cfg.vision_heads), max(1, cfg.vision_heads)],
        "window_size_per_stage": [4, 4, 4, 2],
        "global_attention_blocks": [1 + third],
        "window_positional_embedding_background_size": [side // 16, side // 16],
    }
    vision = {
        "backbone_config": backbone,
        "backbone_channel_list": dims[::-1],
        "backbone_feature_sizes": [[side // s, side // s] for s in (4, 8, 16)],
        "fpn_hidden_size": cfg.decoder_hidden,
    }
    prompt = {"hidden_size": cfg.decoder_hidden, "image_size": side, "patch_size": stride}
    decoder = _decoder(cfg) | {"dynamic_multimask_via_stability": False}
    return Sam2Config(
        vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder
    )


def tiny_sam_hq_config(cfg: SamConfig) -> Any:
    """A tiny HF ``SamHQConfig``: :func:`~partonomy.models.backbones.sam.tiny_sam_config`'s sizes,
    with the HQ decoder reading the ViT width."""
    from transformers import SamHQConfig

    from partonomy.models.backbones.sam import tiny_sam_config

    base: Any = tiny_sam_config(cfg)
    vision = base.vision_config.to_dict()
    prompt = base.prompt_encoder_config.to_dict()
    decoder = _decoder(cfg) | {"vit_dim": cfg.vision_hidden}
    for d in (vision, prompt):
        d.pop("model_type", None)
    return SamHQConfig(
        vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder
    )


def build_sam_variant(cfg: SamConfig) -> Any:
    """Build (tiny, random) or load a ``Sam2Model`` / ``SamHQModel`` (``cfg.kind``), on CPU.

    Raises:
        ConfigError: ``pretrained`` is not a local HF directory of that model.
    """
    import transformers

    cls = transformers.Sam2Model if cfg.kind == "sam2" else transformers.SamHQModel
    if cfg.pretrained is None:
        config = tiny_sam2_config(cfg) if cfg.kind == "sam2" else tiny_sam_hq_config(cfg)
        model = cls(config)
        if cfg.encoder == "conv":
            from partonomy.models.backbones.conv_encoder import ConvPyramidEncoder

            model.vision_encoder = ConvPyramidEncoder(
                patch_size=cfg.patch_size, width=cfg.conv_width, out_channels=cfg.decoder_hidden
            )
        return model
    if cfg.layout != "hf" or not Path(cfg.pretrained).is_dir():
        raise ConfigError(
            f"sam.kind={cfg.kind}: sam.pretrained={cfg.pretrained!r} must be a local directory of "
            f"an HF {cls.__name__} checkpoint (layout: hf)"
        )
    return cls.from_pretrained(cfg.pretrained, local_files_only=True)
