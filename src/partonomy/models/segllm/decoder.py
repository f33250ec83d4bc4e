"""SegLLM's mask decoder: a text-conditioned query decoder in the place of HIPIE, built from
transformers' Mask2Former parts.

HIPIE (the decoder SegLLM ships, ``hipie.yaml`` -> ``r50_pretrain.yaml``) is a ResNet-50 backbone,
a deformable-attention pixel decoder, a query transformer decoder with 900 queries, early fusion of
(BERT) text features into the image features, and class scores that are query-text similarities.
SegLLM feeds it 8 x 768 pseudo-text tokens per ``<seg>`` instead of BERT features: the first 4 are
the *reference* class, the last 4 the *target* class. At inference the highest-scoring query of the
target class is the answer's mask (always exactly one, never empty by construction).

Here (all shapes for one prompt row; ``Q`` queries, ``C`` hidden width, image input ``T x T``):

1. ``image_embeddings``: ``Mask2FormerModel.pixel_level_module`` (a ``ResNetConfig`` backbone with
   frozen batch norm as in detectron2, the
   multi-scale deformable pixel decoder): mask features ``(C_m, T/4, T/4)`` and three levels
   ``(C, T/32..T/8)``, packed into one ``(C, P)`` tensor per image so they can be cached per image.
2. ``decode``: the text tokens ``(8, 768)`` are projected to ``C``; every level and the mask
   features attend to them (one cross-attention per level, residual: the early text fusion);
   the masked-attention query decoder of ``Mask2FormerModel.transformer_module``, its learned
   queries offset by the projected mean text token (HIPIE's queries come from text-fused
   proposals), gives ``Q`` query states and
   ``Q`` mask logits ``(T/4, T/4)``; class logits ``(Q, 2)`` are the scaled dot product of each
   query with the mean of the reference / target text tokens, plus a learned bias.
3. The selected mask: ``argmax`` of the target-class logits; its logit is the returned score.

Frames: inputs as SAM's (longest side resized to ``T``, zero-padded bottom/right; HIPIE uses the
same ResizeLongestSide(1024) + pad and the same ImageNet mean/std); mask logits are ``(T/4, T/4)``
over the padded square and :meth:`QueryMaskHead.postprocess` maps them to the original frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from partonomy.errors import ConfigError

REFERENCE, TARGET = 0, 1
"""Class indices of the decoder's two text classes."""


@dataclass
class DecoderConfig:
    """The query decoder's sizes (defaults: HIPIE R50 as far as Mask2Former's parts allow).

    Attributes:
        image_size: input side ``T`` (HIPIE: 1024).
        text_dim: width of a pseudo-text token (BERT-base: 768).
        text_tokens: pseudo-text tokens per ``<seg>`` (8: 4 reference + 4 target).
        hidden_dim: query / pixel-decoder width ``C`` (HIPIE: 256).
        mask_dim: mask-feature width (256).
        num_queries: queries (HIPIE: 900).
        decoder_layers: masked-attention decoder layers (HIPIE's deformable decoder: 6).
        encoder_layers: deformable pixel-decoder layers (6).
        heads: attention heads (8).
        ffn_dim: decoder feed-forward width (2048).
        encoder_ffn_dim: pixel-decoder feed-forward width (1024).
        backbone_depths, backbone_widths, backbone_stem, backbone_block: the ResNet backbone
            (ResNet-50: depths 3/4/6/3, widths 256/512/1024/2048, stem 64, ``bottleneck``).
    """

    image_size: int = 1024
    text_dim: int = 768
    text_tokens: int = 8
    hidden_dim: int = 256
    mask_dim: int = 256
    num_queries: int = 900
    decoder_layers: int = 6
    encoder_layers: int = 6
    heads: int = 8
    ffn_dim: int = 2048
    encoder_ffn_dim: int = 1024
    backbone_depths: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    backbone_widths: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])
    backbone_stem: int = 64
    backbone_block: str = "bottleneck"

    def __post_init__(self) -> None:
        if self.image_size % 32:
            raise ConfigError(f"decoder.image_size must be a multiple of 32, got {self.image_size}")
        if self.text_tokens % 2:
            raise ConfigError(
                f"decoder.text_tokens must be even (reference + target halves), got {self.text_tokens}"
            )
        if self.hidden_dim % self.heads or self.mask_dim % self.heads:
            raise ConfigError(
                "decoder.hidden_dim and decoder.mask_dim must be divisible by decoder.heads"
            )
        if len(self.backbone_depths) != 4 or len(self.backbone_widths) != 4:
            raise ConfigError("decoder.backbone_depths and backbone_widths need 4 stages each")
        if self.backbone_block not in ("bottleneck", "basic"):
            raise ConfigError(
                f"decoder.backbone_block must be 'bottleneck' or 'basic', got {self.backbone_block!r}"
            )
        if self.num_queries < 1 or self.decoder_layers < 1 or self.encoder_layers < 1:
            raise ConfigError("decoder.num_queries, decoder_layers and encoder_layers must be >= 1")


def mask2former_config(cfg: DecoderConfig) -> Any:
    """The transformers ``Mask2FormerConfig`` (ResNet backbone, random init) of ``cfg``."""
    from transformers import Mask2FormerConfig, ResNetConfig

    backbone: dict[str, Any] = {
        "embedding_size": cfg.backbone_stem,
        "hidden_sizes": list(cfg.backbone_widths),
        "depths": list(cfg.backbone_depths),
        "layer_type": cfg.backbone_block,
        "out_features": ["stage1", "stage2", "stage3", "stage4"],
    }
    sizes: dict[str, Any] = {
        "use_pretrained_backbone": False,
        "feature_size": cfg.hidden_dim,
        "mask_feature_size": cfg.mask_dim,
        "hidden_dim": cfg.hidden_dim,
        "encoder_feedforward_dim": cfg.encoder_ffn_dim,
        "encoder_layers": cfg.encoder_layers,
        "decoder_layers": cfg.decoder_layers,
        "num_attention_heads": cfg.heads,
        "dim_feedforward": cfg.ffn_dim,
        "num_queries": cfg.num_queries,
    }
    return Mask2FormerConfig(backbone_config=ResNetConfig(**backbone), **sizes)


@dataclass
class QueryDecoding:
    """All queries of ``R`` prompt rows.

    Attributes:
        masks: ``(R, Q, T/4, T/4)`` mask logits over the padded input square.
        class_logits: ``(R, Q, 2)`` reference / target class logits.
    """

    masks: torch.Tensor
    class_logits: torch.Tensor

    def selected(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masks (R, T/4, T/4), scores (R,))`` of each row's best target-class query."""
        scores, best = self.class_logits[..., TARGET].max(dim=1)
        rows = torch.arange(self.masks.shape[0], device=self.masks.device)
        return self.masks[rows, best], scores


class TextFusion(nn.Module):
    """Image features attend to the pseudo-text tokens (one residual cross-attention + norm)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``features (R, C, h, w)``, ``text (R, t, C)`` -> ``(R, C, h, w)``."""
        r, c, h, w = features.shape
        x = features.flatten(2).transpose(1, 2)  # (R, hw, C)
        attended, _ = self.attention(x, text, text, need_weights=False)
        x = self.norm(x + attended)
        return x.transpose(1, 2).reshape(r, c, h, w)


class ClassHead(nn.Module):
    """Query-text class logits: ``<W_q q, W_t mean(class tokens)> / sqrt(C) + bias`` (the bias
    starts at the focal-loss prior ``-log(99)``, as in Deformable-DETR)."""

    def __init__(self, hidden_dim: int, text_dim: int) -> None:
        super().__init__()
        self.query_projection = nn.Linear(hidden_dim, hidden_dim)
        self.text_projection = nn.Linear(text_dim, hidden_dim)
        self.bias = nn.Parameter(torch.tensor(-math.log((1 - 0.01) / 0.01)))

    def forward(self, queries: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``queries (R, Q, C)``, ``text (R, t, D)`` (halves: reference, target) -> ``(R, Q, 2)``."""
        half = text.shape[1] // 2
        classes = torch.stack([text[:, :half].mean(1), text[:, half:].mean(1)], dim=1)  # (R, 2, D)
        keys = self.text_projection(classes)  # (R, 2, C)
        logits = torch.einsum("rqc,rkc->rqk", self.query_projection(queries), keys)
        return logits / math.sqrt(queries.shape[-1]) + self.bias


class QueryMaskHead(nn.Module):
    """The mask head of SegLLM (module docstring); the same methods as
    :class:`~partonomy.models.core.mask_heads.SamMaskHead` where they make sense.

    Args:
        cfg: the decoder sizes.
    """

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        from transformers import Mask2FormerModel
        from transformers.models.detr.modeling_detr import replace_batch_norm

        self.cfg = cfg
        # The whole HF model, so that its weight initialisation runs (its parts alone leave some
        # parameters, e.g. the pixel decoder's level embeddings, uninitialised).
        self.mask2former = Mask2FormerModel(mask2former_config(cfg))
        # HIPIE's (detectron2's) ResNet uses frozen batch norm: fixed statistics, no batch
        # dependence, and nothing but parameters to save (checkpoints hold parameters only).
        replace_batch_norm(self.mask2former.pixel_level_module.encoder)
        self.text_projection = nn.Linear(cfg.text_dim, cfg.hidden_dim)
        self.mask_text_projection = nn.Linear(cfg.text_dim, cfg.mask_dim)
        self.level_fusion = nn.ModuleList(TextFusion(cfg.hidden_dim, cfg.heads) for _ in range(3))
        self.mask_fusion = TextFusion(cfg.mask_dim, cfg.heads)
        self.class_head = ClassHead(cfg.hidden_dim, cfg.text_dim)
        # Text-conditioned queries: HIPIE's queries are selected from text-fused encoder proposals;
        # here every learned query is offset by the projected mean of the row's text tokens.
        self.query_text = nn.Linear(cfg.text_dim, cfg.hidden_dim)

    # ----------------------------------------------------------------------------- geometry
    @property
    def input_size(self) -> int:
        """Input side ``T`` in pixels."""
        return self.cfg.image_size

    @property
    def prompt_dim(self) -> int:
        """Width of a pseudo-text token."""
        return self.cfg.text_dim

    @property
    def dtype(self) -> torch.dtype:
        return self.text_projection.weight.dtype

    def level_shapes(self) -> list[tuple[int, int]]:
        """``(h, w)`` of the three decoder levels (coarsest first) and of the mask features."""
        t = self.cfg.image_size
        return [(t // 32, t // 32), (t // 16, t // 16), (t // 8, t // 8), (t // 4, t // 4)]

    # -------------------------------------------------------------------------------- parts
    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, T, T)`` inputs -> ``(N, C, P)`` packed features (three levels, then the mask
        features; needs ``hidden_dim == mask_dim``)."""
        if self.cfg.hidden_dim != self.cfg.mask_dim:
            raise ValueError(
                "packing the image features needs decoder.hidden_dim == decoder.mask_dim"
            )
        out = self.mask2former.pixel_level_module(
            pixel_values.to(self.dtype), output_hidden_states=True
        )
        parts = [f.flatten(2) for f in out.decoder_hidden_states]
        parts.append(out.decoder_last_hidden_state.flatten(2))
        return torch.cat(parts, dim=2)

    def unpack(self, embeddings: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``(R, C, P)`` -> (three levels ``(R, C, h, w)``, mask features ``(R, C, T/4, T/4)``)."""
        shapes = self.level_shapes()
        sizes = [h * w for h, w in shapes]
        if embeddings.shape[-1] != sum(sizes):
            raise ValueError(
                f"packed image features hold {embeddings.shape[-1]} positions, expected {sum(sizes)} "
                f"for a {self.cfg.image_size}-px input"
            )
        chunks = embeddings.split(sizes, dim=2)
        maps = [c.reshape(*c.shape[:2], h, w) for c, (h, w) in zip(chunks, shapes, strict=True)]
        return maps[:3], maps[3]

    def no_mask_dense(self, rows: int) -> torch.Tensor:
        """``(R, 0)``: the query decoder takes no dense prompt (kept for the mask-head interface)."""
        return torch.zeros(rows, 0, dtype=self.dtype, device=self.text_projection.weight.device)

    def _query_decoder(
        self, levels: list[torch.Tensor], mask_features: torch.Tensor, query_offset: torch.Tensor
    ) -> Any:
        """Mask2Former's masked-attention decoder over the three levels, its learned query features
        offset per row by ``query_offset`` ``(R, C)`` (the transformer module's own ``forward``
        takes no per-row queries, so its parts are driven here)."""
        module = self.mask2former.transformer_module
        features, positions, sizes = [], [], []
        for i, level in enumerate(levels):  # (R, C, h, w), coarsest first
            sizes.append(level.shape[-2:])
            pos = module.position_embedder(level.shape, level.device, level.dtype, None)
            positions.append(pos.flatten(2).permute(2, 0, 1))  # (hw, R, C)
            projected = module.input_projections[i](level).flatten(2)
            features.append(
                (projected + module.level_embed.weight[i][None, :, None]).permute(2, 0, 1)
            )
        rows = levels[0].shape[0]
        query_pos = module.queries_embedder.weight[:, None].expand(-1, rows, -1)  # (Q, R, C)
        queries = module.queries_features.weight[:, None] + query_offset[None]  # (Q, R, C)
        return module.decoder(
            inputs_embeds=queries,
            multi_stage_positional_embeddings=positions,
            pixel_embeddings=mask_features,
            encoder_hidden_states=features,
            query_position_embeddings=query_pos,
            feature_size_list=sizes,
            return_dict=True,
        )

    def decode_queries(self, embeddings: torch.Tensor, text: torch.Tensor) -> QueryDecoding:
        """Every query of ``R`` rows.

        Args:
            embeddings: ``(R, C, P)`` packed image features of each row's image.
            text: ``(R, t, text_dim)`` pseudo-text tokens (first half reference, second target).
        """
        text = text.to(self.dtype)
        levels, mask_features = self.unpack(embeddings.to(self.dtype))
        tokens = self.text_projection(text)  # (R, t, C)
        levels = [
            fuse(level, tokens) for fuse, level in zip(self.level_fusion, levels, strict=True)
        ]
        mask_features = self.mask_fusion(mask_features, self.mask_text_projection(text))
        out = self._query_decoder(levels, mask_features, self.query_text(text.mean(1)))
        masks = out.masks_queries_logits[-1]  # (R, Q, T/4, T/4)
        queries = out.intermediate_hidden_states[-1].transpose(0, 1)  # (R, Q, C)
        return QueryDecoding(masks=masks, class_logits=self.class_head(queries, text))

    def decode(
        self, embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The selected target mask per row: ``(low_res (R, T/4, T/4), score (R,))``; ``sparse`` are
        the pseudo-text tokens, ``dense`` is ignored."""
        return self.decode_queries(embeddings, sparse).selected()

    def postprocess(
        self, low_res: torch.Tensor, input_size: Sequence[int], original_size: Sequence[int]
    ) -> torch.Tensor:
        """``(n, T/4, T/4)`` -> float32 ``(n, H, W)`` logits: upsample to ``T``, crop the padding,
        resize to the original size (bilinear)."""
        side = self.input_size
        x = F.interpolate(
            low_res[:, None].float(), (side, side), mode="bilinear", align_corners=False
        )
        x = x[..., : int(input_size[0]), : int(input_size[1])]
        x = F.interpolate(
            x, tuple(int(s) for s in original_size), mode="bilinear", align_corners=False
        )
        return x[:, 0]


def target_in_frame(
    target: torch.Tensor, input_size: Sequence[int], side: int, out_size: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``(H, W)`` uint8 target (0/1, 255 ignored) in the decoder's low-res frame.

    Resized (nearest) to the ``input_size`` inside the ``side x side`` padded square, then
    area-averaged to ``out_size``. Returns ``(soft target, validity)``, both float32 ``out_size``;
    the padding is valid background.
    """
    h, w = int(input_size[0]), int(input_size[1])
    t = target.float()[None, None]
    fg = F.interpolate((t == 1).float(), (h, w), mode="nearest")
    valid = F.interpolate((t != 255).float(), (h, w), mode="nearest")
    pad = (0, side - w, 0, side - h)
    fg = F.pad(fg, pad, value=0.0)
    valid = F.pad(valid, pad, value=1.0)
    size = (int(out_size[0]), int(out_size[1]))
    return F.adaptive_avg_pool2d(fg, size)[0, 0], (
        F.adaptive_avg_pool2d(valid, size)[0, 0] > 0.5
    ).float()
