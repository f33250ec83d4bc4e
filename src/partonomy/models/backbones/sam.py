"""The segmentation backbone: HF ``SamModel``.

Two checkpoint layouts load into it:

* ``hf``: a ``save_pretrained`` directory of ``SamModel`` (e.g. facebook/sam-vit-huge on disk).
* ``original``: a segment-anything state-dict file such as ``sam_vit_h_4b8939.pth``, mapped by
  :mod:`partonomy.models.backbones.sam_layout` (the architecture is read off the tensor shapes).

With ``pretrained=None`` a tiny random SAM is built from the size fields, with SAM's ViT or, for
fast from-scratch learning, a small convolutional encoder in its place (``encoder: conv``).

Sizes that PLUM's modules need (prompt width ``D_sam``, image-embedding grid ``h x w``, low-res
mask size, encoder input side) are read from the built model's config by :func:`sam_geometry`,
never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import Dtype, torch_dtype

if TYPE_CHECKING:
    from transformers import SamModel


@dataclass
class SamConfig:
    """Which SAM to build.

    Attributes:
        kind: ``sam`` (SAM ViT-B/L/H), ``sam2`` (SAM 2, Hiera) or ``sam_hq`` (SAM-HQ); the last two
            are built by :mod:`~partonomy.models.backbones.sam_variants` (HF layout only).
        pretrained: local directory of an HF ``SamModel`` (``layout="hf"``) or a segment-anything
            checkpoint file (``layout="original"``); None builds a tiny random SAM.
        layout: the key layout of ``pretrained``.
        dtype: parameter dtype.
        image_size: tiny encoder input side (pixels; images are resized longest-side then padded).
        vision_hidden, vision_layers, vision_heads, patch_size: tiny ViT sizes.
        decoder_hidden: prompt / mask-decoder width ``D_sam`` (256 in real SAM: the paper's "256").
        decoder_layers: two-way transformer blocks of the tiny mask decoder (2 in real SAM).
        encoder: the tiny SAM's image encoder: ``vit`` (SAM's own architecture, scaled down) or
            ``conv`` (:class:`~partonomy.models.backbones.conv_encoder.ConvImageEncoder`, which
            learns small parts far faster from scratch). Only for ``pretrained=None``.
        conv_width: channels of the ``conv`` encoder (a multiple of 8).
        encoder_attention: the ViT blocks' attention: ``flash`` (relative positions folded into
            the dot product, flash-kernel SDPA: :mod:`~partonomy.models.backbones.sam_fast`; same
            outputs and parameters) or ``hf`` (transformers' own). Ignored by the conv encoder.
    """

    kind: Literal["sam", "sam2", "sam_hq"] = "sam"
    pretrained: str | None = None
    layout: Literal["hf", "original"] = "hf"
    dtype: Dtype = "float32"
    image_size: int = 128
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    patch_size: int = 8
    decoder_hidden: int = 32
    decoder_layers: int = 2
    encoder: Literal["vit", "conv"] = "vit"
    conv_width: int = 32
    encoder_attention: Literal["flash", "hf"] = "flash"

    def __post_init__(self) -> None:
        if self.kind == "sam_hq" and self.encoder != "vit":
            raise ConfigError(
                "sam.encoder='conv' is for sam.kind 'sam' or 'sam2' (SAM-HQ reads ViT features)"
            )
        if self.encoder == "conv":
            if self.pretrained is not None:
                raise ConfigError(
                    "sam.encoder='conv' builds a random tiny SAM; it cannot be combined with "
                    f"sam.pretrained={self.pretrained!r} (pretrained SAM keeps its ViT: remove "
                    "sam.encoder or sam.pretrained)"
                )
            if self.patch_size & (self.patch_size - 1):
                raise ConfigError(
                    f"sam.encoder='conv' needs a power-of-two sam.patch_size, got {self.patch_size}"
                )
            if self.conv_width % 8:
                raise ConfigError(f"sam.conv_width must be a multiple of 8, got {self.conv_width}")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"sam.image_size ({self.image_size}) must be a multiple of sam.patch_size ({self.patch_size})"
            )
        if self.vision_hidden % self.vision_heads:
            raise ConfigError(
                f"sam.vision_hidden ({self.vision_hidden}) must be divisible by sam.vision_heads "
                f"({self.vision_heads})"
            )
        if self.encoder_attention not in ("flash", "hf"):
            raise ConfigError(
                f"sam.encoder_attention must be 'flash' or 'hf', got {self.encoder_attention!r}"
            )
        if self.decoder_layers < 1:
            raise ConfigError(f"sam.decoder_layers must be >= 1, got {self.decoder_layers}")
        if self.decoder_hidden % 16:
            raise ConfigError(
                f"sam.decoder_hidden ({self.decoder_hidden}) must be a multiple of 16 "
                "(the decoder upscales to D/8 channels and uses 2x-downsampled attention heads)"
            )


@dataclass(frozen=True)
class SamGeometry:
    """Sizes of a built SAM that PLUM's modules depend on.

    Attributes:
        input_size: encoder input side ``T`` in pixels (square, after longest-side resize + pad).
        embed_size: image-embedding grid ``(h, w)``.
        low_res_size: mask-decoder output ``(4h, 4w)`` (two 2x transposed convs).
        prompt_dim: prompt / decoder width ``D_sam``.
        mask_channels: channels after the mask-downscaling convs ``(c1, c2)``, i.e. ``(4, 16)`` in SAM.
    """

    input_size: int
    embed_size: tuple[int, int]
    low_res_size: tuple[int, int]
    prompt_dim: int
    mask_channels: tuple[int, int]


def sam_geometry(sam: Any) -> SamGeometry:
    """Read :class:`SamGeometry` off a built ``SamModel``'s config."""
    prompt = sam.config.prompt_encoder_config
    side = int(prompt.image_size) // int(prompt.patch_size)
    c2 = prompt.mask_input_channels
    return SamGeometry(
        input_size=int(prompt.image_size),
        embed_size=(side, side),
        low_res_size=(4 * side, 4 * side),
        prompt_dim=int(prompt.hidden_size),
        mask_channels=(c2 // 4, c2),
    )


def tiny_sam_config(cfg: SamConfig) -> object:
    """The HF ``SamConfig`` for ``cfg``'s tiny sizes (every windowed/global choice derived from them)."""
    from transformers import SamConfig as HFSamConfig

    grid = cfg.image_size // cfg.patch_size
    d = cfg.decoder_hidden
    depth = cfg.vision_layers
    # SAM's pattern, scaled: windows of 14/64 of the grid, and each quarter's last block global
    # (ViT-H at 1024 px: window 14, global blocks 7, 15, 23, 31).
    global_layers = sorted({max(0, (q + 1) * depth // 4 - 1) for q in range(4)})
    vision = {
        "hidden_size": cfg.vision_hidden,
        "output_channels": d,
        "num_hidden_layers": depth,
        "num_attention_heads": cfg.vision_heads,
        "image_size": cfg.image_size,
        "patch_size": cfg.patch_size,
        "window_size": max(1, round(grid * 14 / 64)),
        "global_attn_indexes": global_layers if depth >= 4 else [depth - 1],
        "num_pos_feats": d // 2,
        "mlp_dim": 4 * cfg.vision_hidden,
    }
    prompt = {"hidden_size": d, "image_size": cfg.image_size, "patch_size": cfg.patch_size}
    decoder = {
        "hidden_size": d,
        "mlp_dim": 8 * d,  # 2048 at SAM's 256
        "num_attention_heads": max(1, min(8, d // 8)),  # 8 at SAM's 256
        "iou_head_hidden_dim": d,
        "num_hidden_layers": cfg.decoder_layers,
    }
    return HFSamConfig(
        vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder
    )


def build_sam(cfg: SamConfig) -> SamModel:
    """Build or load SAM.

    Returns:
        ``SamModel`` in ``cfg.dtype`` on CPU.

    Raises:
        ConfigError: ``pretrained`` does not exist or is the wrong kind of path for ``layout``.
    """
    from transformers import SamModel

    model: Any
    if cfg.kind != "sam":
        from partonomy.models.backbones.sam_variants import build_sam_variant

        model = build_sam_variant(cfg)
    elif cfg.pretrained is None:
        model = SamModel(tiny_sam_config(cfg))  # type: ignore[arg-type]
        if cfg.encoder == "conv":
            from partonomy.models.backbones.conv_encoder import ConvImageEncoder

            # Same output grid and width as the ViT it replaces, so the prompt encoder and
            # mask decoder built from the config above fit it unchanged.
            model.vision_encoder = ConvImageEncoder(
                patch_size=cfg.patch_size, width=cfg.conv_width, out_channels=cfg.decoder_hidden
            )
    elif cfg.layout == "hf":
        if not Path(cfg.pretrained).is_dir():
            raise ConfigError(
                f"sam.pretrained={cfg.pretrained!r} is not a local directory of an HF SamModel "
                "(for a segment-anything .pth file set sam.layout='original')"
            )
        model = SamModel.from_pretrained(cfg.pretrained, local_files_only=True)
    else:
        if not Path(cfg.pretrained).is_file():
            raise ConfigError(
                f"sam.pretrained={cfg.pretrained!r} is not a file "
                "(expected a segment-anything checkpoint such as sam_vit_h_4b8939.pth)"
            )
        from partonomy.models.backbones.sam_layout import load_sam_original

        model = load_sam_original(cfg.pretrained)
    if cfg.encoder_attention == "flash":
        from partonomy.models.backbones.sam_fast import use_flash_attention

        use_flash_attention(model.vision_encoder)
    return model.to(torch_dtype(cfg.dtype))
