"""SAM 2 and SAM-HQ mask heads, and choosing a head by the segmenter's type.

Both keep :class:`~partonomy.models.core.mask_heads.SamMaskHead`'s interface, so the segmentation
LMM, the feedback loop and the predictor's image-embedding cache work unchanged:

* the span query is the sparse prompt (``(R, t, D)`` tokens, one point batch);
* the feedback loop encodes earlier masks with the model's own mask-input path
  (``prompt_encoder.mask_embed``: conv1, layer_norm1, conv2, layer_norm2, conv3 in all three);
* an image's embedding is **one tensor** ``(D', h, w)``, so it is cached and indexed like SAM's:
  the extra features each model's decoder reads are packed beside the embedding on the channel
  axis and unpacked in :meth:`decode`:

  - SAM 2: the FPN's stride-4 and stride-8 levels (after the decoder's ``conv_s0`` / ``conv_s1``,
    ``D/8`` and ``D/4`` channels) are folded to the stride-16 grid with ``pixel_unshuffle``
    (``2D`` and ``D`` channels), then ``[s16 (D), s8 (D), s4 (2D)]``: ``D' = 4D``; the last level
    carries SAM 2's ``no_memory_embedding`` as in single-image SAM 2;
  - SAM-HQ: ``[embedding (D), first global ViT block's features (vit_dim)]``: ``D' = D + vit_dim``.

One mask per prompt (``multimask_output=False``): SAM 2's single-mask token (its
stability-based fallback to the multimask tokens is switched off, so training and evaluation
use the same output), SAM-HQ's SAM + HQ mask sum (``hq_token_only=False``, the HF default).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from partonomy.models.core.mask_heads import SamMaskHead


def _encoder_context(module: nn.Module) -> Any:
    """``no_grad`` for a frozen module (the image encoder's default), else the caller's mode."""
    if any(p.requires_grad for p in module.parameters()):
        return contextlib.nullcontext()
    return torch.no_grad()


class Sam2MaskHead(SamMaskHead):
    """SAM 2 (HF ``Sam2Model``, Hiera encoder) as a mask head (module docstring)."""

    def __init__(self, sam: nn.Module) -> None:
        super().__init__(sam)
        # One output for an LLM prompt, the same in train and eval mode.
        self.sam.mask_decoder.dynamic_multimask_via_stability = False

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 4D, h, w)`` packed SAM 2 features of ``(N, 3, T, T)`` inputs."""
        sam = self.sam
        n = pixel_values.shape[0]
        dtype = next(sam.vision_encoder.parameters()).dtype
        with _encoder_context(sam.vision_encoder):
            feats = sam.vision_encoder(pixel_values.to(dtype), return_dict=True).fpn_hidden_states
        with _encoder_context(sam.mask_decoder):
            s4 = sam.mask_decoder.conv_s0(feats[0])  # (N, D/8, 4h, 4w)
            s8 = sam.mask_decoder.conv_s1(feats[1])  # (N, D/4, 2h, 2w)
        s16 = feats[2] + sam.no_memory_embedding.reshape(1, -1, 1, 1)  # (N, D, h, w)
        packed = torch.cat([s16, F.pixel_unshuffle(s8, 2), F.pixel_unshuffle(s4, 4)], 1)
        return packed.reshape(n, -1, *s16.shape[-2:])

    def decode(
        self, embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows, d = embeddings.shape[0], self.prompt_dim
        dtype = self.dtype
        emb = embeddings.to(dtype)
        s16, s8, s4 = emb[:, :d], emb[:, d : 2 * d], emb[:, 2 * d :]
        low, iou, _, _ = self.sam.mask_decoder(
            image_embeddings=s16,
            image_positional_embeddings=self.positional_embedding().expand(rows, -1, -1, -1),
            sparse_prompt_embeddings=sparse.to(dtype)[:, None],
            dense_prompt_embeddings=dense.to(dtype),
            multimask_output=False,
            high_resolution_features=[F.pixel_shuffle(s4, 4), F.pixel_shuffle(s8, 2)],
        )  # low: (R, 1, 1, 4h, 4w), iou: (R, 1, 1)
        return low[:, 0, 0], iou.reshape(rows)


class SamHQMaskHead(SamMaskHead):
    """SAM-HQ (HF ``SamHQModel``) as a mask head (module docstring)."""

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, D + vit_dim, h, w)``: the embedding and the first global block's ViT features."""
        encoder = self.sam.vision_encoder
        dtype = next(encoder.parameters()).dtype
        with _encoder_context(encoder):
            out = encoder(pixel_values=pixel_values.to(dtype))
        vit = out.intermediate_embeddings[0].permute(0, 3, 1, 2)  # (N, vit_dim, h, w)
        return torch.cat([out.last_hidden_state, vit.to(out.last_hidden_state.dtype)], 1)

    def decode(
        self, embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows, d = embeddings.shape[0], self.prompt_dim
        dtype = self.dtype
        emb = embeddings.to(dtype)
        low, iou = self.sam.mask_decoder(
            image_embeddings=emb[:, :d],
            image_positional_embeddings=self.positional_embedding().expand(rows, -1, -1, -1),
            sparse_prompt_embeddings=sparse.to(dtype)[:, None],
            dense_prompt_embeddings=dense.to(dtype),
            multimask_output=False,
            hq_token_only=False,
            intermediate_embeddings=[emb[:, d:].permute(0, 2, 3, 1)],
        )  # low: (R, 1, 1, 4h, 4w), iou: (R, 1, 1)
        return low[:, 0, 0], iou.reshape(rows)


def mask_head_for(sam: nn.Module) -> SamMaskHead:
    """The head that fits a built segmenter: ``Sam2Model`` -> :class:`Sam2MaskHead`,
    ``SamHQModel`` -> :class:`SamHQMaskHead`, ``SamModel`` -> :class:`SamMaskHead`."""
    name = type(sam).__name__
    if name == "Sam2Model":
        return Sam2MaskHead(sam)
    if name == "SamHQModel":
        return SamHQMaskHead(sam)
    return SamMaskHead(sam)
