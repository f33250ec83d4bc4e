"""PixelLM's light multi-scale mask decoder and the mask head around it.

The head owns everything between CLIP's hidden states and the mask logits:

* ``out_mm_projector``: ``Linear(C, 2d) -> GELU -> Linear(2d, d)`` on each mask layer's patch
  features (``C`` the CLIP width, ``d`` the LLM width; separate from the LLM's projector);
* ``image_feature_neck``: ``Conv1x1(d, D) -> LN2d -> Conv3x3(D, D) -> LN2d`` (``D`` = 256), shared by
  the scales, giving ``(scales, D, g, g)`` per image (``g`` the CLIP patch grid, 32 at 448 px);
* ``prompt_encoder``: transformers' ``SamPromptEncoder`` (its random-Fourier positional matrix
  gives the ``g x g`` positional embedding, ``no_mask_embed`` the dense prompt; the point and
  mask-downscaling weights exist, and load, but are unused, as in the original);
* ``mask_decoder``: :class:`MultiScaleMaskDecoder`, trained from scratch.

Decoding runs coarse to fine: scale 0 decodes the ``g x g`` features into ``2g x 2g`` logits; scale 1
upsamples its features 2x, gates them by ``1 + sigmoid(previous logits)``, decodes at ``2g`` with its
own positional embedding (``pe1``) and gives ``4g x 4g`` logits. The scale outputs, resized to
``4g``, are averaged (the original's unregistered ``multiscale_scalar``, fixed at ``1 / scales``):
``(R, 4g, 4g)`` low-res logits over the padded square CLIP input (128 x 128 for 448 px).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.sam.configuration_sam import (
    SamConfig,
    SamMaskDecoderConfig,
    SamPromptEncoderConfig,
    SamVisionConfig,
)
from transformers.models.sam.modeling_sam import (
    SamFeedForward,
    SamLayerNorm,
    SamPositionalEmbedding,
    SamPromptEncoder,
    SamTwoWayTransformer,
)

from partonomy.models.core.mask_heads import MaskHead
from partonomy.models.pixellm.config import DecoderConfig

TRANSFORMER_LAYER_NORM_EPS = 1e-5
"""``nn.LayerNorm``'s default, as in the original two-way transformer (transformers' SAM: 1e-6)."""
MASK_IN_CHANS = 16
"""The prompt encoder's mask-downscaling width (unused by PixelLM, kept so released keys load)."""


def grid_positional_embedding(pe: SamPositionalEmbedding, h: int, w: int) -> torch.Tensor:
    """``(1, C, h, w)`` random-Fourier embedding of the cell centres of an ``h x w`` grid in
    ``[0, 1]^2`` (segment-anything's ``PositionEmbeddingRandom.forward(size)``)."""
    weight = pe.positional_embedding
    ys = (torch.arange(h, device=weight.device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=weight.device, dtype=torch.float32) + 0.5) / w
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([xx, yy], dim=-1)[None]  # (1, h, w, 2), x first
    return pe(coords).permute(0, 3, 1, 2).to(weight.dtype)  # type: ignore[no-any-return]


def redraw_positional_matrix(module: SamPositionalEmbedding) -> SamPositionalEmbedding:
    """Redraw the module's Gaussian matrix ``N(0, 1)``, as the original's ``PositionEmbeddingRandom``
    (transformers scales it by ``C / 2``). The original holds it as a buffer (saved, never
    trained); here it stays a parameter, kept frozen by the trainable spec
    (``sam_positional_matrix: false``)."""
    with torch.no_grad():
        module.positional_embedding.normal_()
    return module


def _random_fourier(num_pos_feats: int) -> SamPositionalEmbedding:
    """A positional module with the original's ``N(0, 1)`` Gaussian matrix."""
    return redraw_positional_matrix(
        SamPositionalEmbedding(SimpleNamespace(scale=1.0, num_pos_feats=num_pos_feats))
    )


def _layer_norm_2d(channels: int) -> SamLayerNorm:
    return SamLayerNorm(channels, eps=1e-6, data_format="channels_first")


class MultiScaleMaskDecoder(nn.Module):
    """The original's ``MaskDecoderMultiScale`` on transformers' SAM parts (module docstring).

    Args:
        cfg: widths and depths.
        scales: feature scales (1 or 2; released 2). Each has its own two-way transformer.

    Keys follow the original (``transformer.{scale}``, ``iou_token``, ``mask_tokens``,
    ``output_upscaling``, ``upsample_2x``, ``pe1``, ``output_hypernetworks_mlps``,
    ``iou_prediction_head``, ``level_embed``) with transformers' names inside the SAM parts.
    """

    def __init__(self, cfg: DecoderConfig, scales: int) -> None:
        super().__init__()
        if scales not in (1, 2):
            raise ValueError(f"the multi-scale decoder runs 1 or 2 scales, got {scales}")
        d = cfg.prompt_dim
        hf = SamMaskDecoderConfig(
            hidden_size=d,
            num_hidden_layers=cfg.depth,
            num_attention_heads=cfg.heads,
            mlp_dim=cfg.mlp_dim,
            attention_downsample_rate=2,
            layer_norm_eps=TRANSFORMER_LAYER_NORM_EPS,
        )
        hf._attn_implementation = "sdpa"  # built standalone, outside a PreTrainedModel
        self.scales = scales
        self.transformer = nn.ModuleList([SamTwoWayTransformer(hf) for _ in range(scales)])
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(cfg.mask_tokens, d)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(d, d // 8, kernel_size=2, stride=2),
            _layer_norm_2d(d // 8),
            nn.GELU(),
        )
        self.upsample_2x = nn.Sequential(
            nn.ConvTranspose2d(d, d, kernel_size=2, stride=2), _layer_norm_2d(d), nn.GELU()
        )
        self.pe1 = _random_fourier(d // 2)
        self.output_hypernetworks_mlps = nn.ModuleList(
            [SamFeedForward(d, d, d // 8, 3) for _ in range(cfg.mask_tokens)]
        )
        self.iou_prediction_head = SamFeedForward(d, cfg.iou_head_hidden, cfg.mask_tokens, 3)
        self.level_embed = nn.Embedding(scales, d)

    def decode_scale(
        self,
        level: int,
        image: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        previous: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One scale.

        Args:
            level: the scale index (0 = coarse).
            image: ``(R, D, g, g)`` this scale's features.
            image_pe: ``(1, D, g, g)`` positional embedding of the coarse grid.
            sparse: ``(R, 1, D)`` this scale's prompt token.
            dense: ``(R, D, g, g)`` dense prompt.
            previous: ``(R, 2g, 2g)`` the previous scale's logits (``level > 0``), else None.

        Returns:
            ``(masks (R, M, s, s), iou (R, M))`` with ``s = 2g`` at level 0, ``4g`` at level 1.
        """
        rows = image.shape[0]
        tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([tokens[None].expand(rows, -1, -1), sparse.to(tokens.dtype)], dim=1)
        tokens = tokens + self.level_embed.weight[level]
        src = image
        if level > 0:
            if previous is None:
                raise ValueError("a finer scale needs the previous scale's logits")
            src = self.upsample_2x(src)  # (R, D, 2g, 2g)
            h, w = src.shape[-2:]
            src = (torch.sigmoid(previous.to(src.dtype))[:, None] + 1) * src
            image_pe = grid_positional_embedding(self.pe1, h, w)
            dense = F.interpolate(dense.float(), (h, w), mode="bilinear", align_corners=False)
        src = src + dense.to(src.dtype)
        b, c, h, w = src.shape
        queries, keys = self.transformer[level](
            point_embeddings=tokens[:, None],  # (R, 1, N, D): transformers' point-batch axis
            image_embeddings=src,
            image_positional_embeddings=image_pe.to(src.dtype).expand(b, -1, -1, -1),
            attention_similarity=None,
        )
        queries, keys = queries[:, 0], keys[:, 0]  # (R, N, D), (R, h*w, D)
        n_masks = self.mask_tokens.weight.shape[0]
        mask_out = queries[:, 1 : 1 + n_masks]
        upscaled = self.output_upscaling(keys.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack(
            [mlp(mask_out[:, k]) for k, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # (R, M, D/8)
        _, c8, hu, wu = upscaled.shape
        masks = (hyper @ upscaled.reshape(b, c8, hu * wu)).reshape(b, n_masks, hu, wu)
        return masks, self.iou_prediction_head(queries[:, 0])

    def forward(
        self,
        images: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All scales, coarse to fine.

        Args:
            images: ``(R, scales, D, g, g)``.
            image_pe: ``(1, D, g, g)``.
            sparse: ``(R, scales, D)``, one prompt token per scale.
            dense: ``(R, D, g, g)``.

        Returns:
            ``(low_res (R, s, s), iou (R,))``: the first mask token's logits averaged over the
            scales at the finest size ``s = g * 2 ** scales``; the last scale's predicted IoU.
        """
        g = images.shape[-1]
        size = g * 2**self.scales
        total = images.new_zeros((images.shape[0], size, size), dtype=torch.float32)
        previous: torch.Tensor | None = None
        iou = images.new_zeros(images.shape[0])
        for level in range(self.scales):
            masks, ious = self.decode_scale(
                level, images[:, level], image_pe, sparse[:, level : level + 1], dense, previous
            )
            previous = masks[:, 0]
            iou = ious[:, 0]
            resized = F.interpolate(
                previous[:, None].float(), (size, size), mode="bilinear", align_corners=False
            )[:, 0]
            total = total + resized / self.scales  # the fixed 1 / scales fusion weights
        return total.to(images.dtype), iou


class PixelLMMaskHead(MaskHead):
    """CLIP mask-layer features -> mask logits, behind the interface of
    :class:`~partonomy.models.core.mask_heads.SamMaskHead` (module docstring).

    Args:
        clip_hidden: CLIP width ``C``.
        llm_hidden: LLM width ``d`` (the projector's output, as in the original).
        decoder: the decoder's sizes.
        scales: mask layers (1 or 2).
        grid: CLIP patch grid ``g``.
        input_size: CLIP input side ``T`` (the padded square the low-res logits cover).

    Unlike SAM's head, :meth:`image_embeddings` takes CLIP hidden states, not pixels: the model
    (:class:`~partonomy.models.pixellm.vision.PixelLMModel`) runs the LLaVA backbone's CLIP tower.
    """

    def __init__(
        self,
        *,
        clip_hidden: int,
        llm_hidden: int,
        decoder: DecoderConfig,
        scales: int,
        grid: int,
        input_size: int,
    ) -> None:
        super().__init__()
        d = decoder.prompt_dim
        self.grid = grid
        self._input_size = input_size
        self.out_mm_projector = nn.Sequential(
            nn.Linear(clip_hidden, 2 * llm_hidden), nn.GELU(), nn.Linear(2 * llm_hidden, llm_hidden)
        )
        self.image_feature_neck = nn.Sequential(
            nn.Conv2d(llm_hidden, d, kernel_size=1, bias=False),
            _layer_norm_2d(d),
            nn.Conv2d(d, d, kernel_size=3, padding=1, bias=False),
            _layer_norm_2d(d),
        )
        self.prompt_encoder = SamPromptEncoder(
            SamConfig(
                vision_config=SamVisionConfig(num_pos_feats=d // 2),
                prompt_encoder_config=SamPromptEncoderConfig(
                    hidden_size=d,
                    image_size=input_size,
                    patch_size=input_size // grid,
                    mask_input_channels=MASK_IN_CHANS,
                ),
            )
        )
        redraw_positional_matrix(self.prompt_encoder.shared_embedding)
        self.mask_decoder = MultiScaleMaskDecoder(decoder, scales)

    # ----------------------------------------------------------------------------- geometry
    @property
    def input_size(self) -> int:
        """CLIP input side ``T`` in pixels."""
        return self._input_size

    @property
    def prompt_dim(self) -> int:
        return int(self.mask_decoder.iou_token.weight.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.mask_decoder.iou_token.weight.dtype

    def positional_embedding(self) -> torch.Tensor:
        """``(1, D, g, g)`` positional embedding of the coarse grid, in the decoder's dtype."""
        pe = grid_positional_embedding(self.prompt_encoder.shared_embedding, self.grid, self.grid)
        return pe.to(self.dtype)

    # -------------------------------------------------------------------------------- parts
    def image_embeddings(self, layer_features: torch.Tensor) -> torch.Tensor:
        """``(N, scales, D, g, g)`` from CLIP patch features ``(N, scales, g * g, C)`` (no CLS)."""
        n, s, p, _ = layer_features.shape
        if p != self.grid * self.grid:
            raise ValueError(f"expected {self.grid}x{self.grid} patch features, got {p}")
        dtype = self.dtype
        projected = self.out_mm_projector(layer_features.to(dtype))  # (N, S, P, d)
        maps = projected.transpose(2, 3).reshape(n * s, -1, self.grid, self.grid)
        return self.image_feature_neck(maps).reshape(n, s, -1, self.grid, self.grid)  # type: ignore[no-any-return]

    def no_mask_dense(self, rows: int) -> torch.Tensor:
        """``(R, D, g, g)``: the prompt encoder's learned "no mask" embedding on the grid."""
        weight = self.prompt_encoder.no_mask_embed.weight
        return weight.reshape(1, -1, 1, 1).expand(rows, -1, self.grid, self.grid).to(self.dtype)

    def decode(
        self, embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask per row.

        Args:
            embeddings: ``(R, scales, D, g, g)`` image features of each row.
            sparse: ``(R, scales, D)`` one fused codebook prompt per scale.
            dense: ``(R, D, g, g)`` dense prompts.

        Returns:
            ``(low_res (R, 4g, 4g), iou (R,))`` for two scales (``2g`` for one).
        """
        return self.mask_decoder(  # type: ignore[no-any-return]
            embeddings.to(self.dtype),
            self.positional_embedding(),
            sparse.to(self.dtype),
            dense.to(self.dtype),
        )

    def postprocess(
        self, low_res: torch.Tensor, input_size: Sequence[int], original_size: Sequence[int]
    ) -> torch.Tensor:
        """Low-res logits ``(n, s, s)`` -> float32 ``(n, H, W)``: upsample to ``T``, crop the
        padding (keep the resized ``(h_in, w_in)``), upsample to ``(H, W)`` (bilinear)."""
        side = self.input_size
        x = F.interpolate(
            low_res[:, None].float(), (side, side), mode="bilinear", align_corners=False
        )
        x = x[..., : int(input_size[0]), : int(input_size[1])]
        x = F.interpolate(
            x, tuple(int(s) for s in original_size), mode="bilinear", align_corners=False
        )
        return x[:, 0]
