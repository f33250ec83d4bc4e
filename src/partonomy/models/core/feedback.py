"""The mask-feedback loop: earlier masks of the same answer become the next span's dense prompt.

For span ``k > 0`` of an answer, every earlier span ``j < k`` contributes its low-res mask logits
``(1, 4h, 4w)`` and its pooled query ``q_j`` ``(D_sam,)``:

1. SAM's own mask-downscaling convolutions (the prompt encoder's ``mask_embed``, weights shared, not
   copied) with FiLM after each LayerNorm, conditioned on ``q_j``:
   conv1 -> LN -> FiLM -> GELU -> conv2 -> LN -> FiLM -> GELU -> conv3, giving ``(D_sam, h, w)``.
   FiLM: ``(scale, shift) = Linear(D_sam -> 2c)(q_j)``, ``x * (scale + 1) + shift``.
2. Plus SAM's dense positional embedding ``(D_sam, h, w)``.
3. Per-patch attention pooling across the history: each of the ``h*w`` positions is one batch row
   of ``nn.MultiheadAttention`` with one learned query (a parameter ``(h*w, 1, D_sam)``) and
   ``k`` keys/values (the history at that position).

The ``(1, D_sam, h, w)`` result replaces SAM's "no mask" dense prompt for span ``k``. Span 0 uses
the no-mask embedding. The history belongs to one answer (it resets between conversations), and it
is not detached: gradients flow through earlier masks in training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ATTENTION_ROWS = 32768
"""(answer, position) rows per pooling-attention call (a CUDA grid axis holds at most 65535)."""


class FiLM(nn.Module):
    """Feature-wise affine modulation ``x * (scale + 1) + shift`` from a conditioning vector.

    Args:
        cond_dim: conditioning width (``D_sam``).
        channels: channels of the modulated map.
    """

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``x`` ``(n, c, h, w)``, ``cond`` ``(n, cond_dim)`` -> ``(n, c, h, w)``."""
        scale, shift = self.proj(cond).chunk(2, dim=-1)  # (n, c) each
        return x * (scale[:, :, None, None] + 1) + shift[:, :, None, None]


class MaskFeedbackPooler(nn.Module):
    """FiLM-conditioned mask encoding plus per-patch attention pooling (module docstring).

    Args:
        prompt_dim: ``D_sam``.
        mask_channels: channels after SAM's first two mask convs, ``(c1, c2)`` = (4, 16) in SAM.
        embed_size: the image-embedding grid ``(h, w)``.
        heads: attention heads (must divide ``D_sam``).
    """

    def __init__(
        self,
        prompt_dim: int,
        mask_channels: tuple[int, int],
        embed_size: tuple[int, int],
        heads: int = 8,
    ) -> None:
        super().__init__()
        if prompt_dim % heads:
            raise ValueError(
                f"feedback pooler: prompt dim {prompt_dim} is not divisible by {heads} heads"
            )
        h, w = embed_size
        self.embed_size = (h, w)
        self.film1 = FiLM(prompt_dim, mask_channels[0])
        self.film2 = FiLM(prompt_dim, mask_channels[1])
        self.queries = nn.Parameter(torch.randn(h * w, 1, prompt_dim))
        self.attn = nn.MultiheadAttention(prompt_dim, heads, batch_first=True)

    def encode(
        self,
        mask_embed: Any,
        masks: torch.Tensor,
        queries: torch.Tensor,
        dense_pe: torch.Tensor,
    ) -> torch.Tensor:
        """Encode earlier masks into prompt-width maps.

        Args:
            mask_embed: SAM's ``prompt_encoder.mask_embed`` (conv1, layer_norm1, conv2, layer_norm2,
                conv3, activation); passed in so its weights stay SAM's.
            masks: ``(n, 1, 4h, 4w)`` low-res mask logits of earlier spans.
            queries: ``(n, D_sam)`` those spans' pooled queries.
            dense_pe: ``(1, D_sam, h, w)`` SAM's image-wide positional embedding.

        Returns:
            ``(n, D_sam, h, w)``.
        """
        dtype = self.queries.dtype
        queries = queries.to(dtype)
        x = mask_embed.layer_norm1(mask_embed.conv1(masks.to(dtype)))  # (n, c1, 2h, 2w)
        x = mask_embed.activation(self.film1(x, queries))
        x = mask_embed.layer_norm2(mask_embed.conv2(x))  # (n, c2, h, w)
        x = mask_embed.activation(self.film2(x, queries))
        return mask_embed.conv3(x) + dense_pe.to(dtype)  # (n, D, h, w)

    def forward(
        self,
        mask_embed: Any,
        masks: torch.Tensor,
        queries: torch.Tensor,
        dense_pe: torch.Tensor,
    ) -> torch.Tensor:
        """Pool histories into dense prompts, for one answer or for several of equal history length.

        Args:
            mask_embed: as :meth:`encode`.
            masks: ``(n, 1, 4h, 4w)`` one answer's history, or ``(R, n, 1, 4h, 4w)`` the histories of
                ``R`` answers that each have ``n >= 1`` earlier spans.
            queries: ``(n, D_sam)`` or ``(R, n, D_sam)``, aligned with ``masks``.
            dense_pe: ``(1, D_sam, h, w)``.

        Returns:
            ``(1, D_sam, h, w)`` for one history, ``(R, D_sam, h, w)`` for ``R``.
        """
        if masks.dim() == 4:  # one answer
            masks, queries = masks[None], queries[None]
        r, n = masks.shape[:2]
        feats = self.encode(
            mask_embed, masks.flatten(0, 1), queries.flatten(0, 1), dense_pe
        )  # (R*n, D, h, w)
        _, d, h, w = feats.shape
        if (h, w) != self.embed_size:
            raise ValueError(f"feedback pooler built for a {self.embed_size} grid, got ({h}, {w})")
        # One attention batch row per (answer, position): one learned query, n keys.
        keys = feats.reshape(r, n, d, h * w).permute(0, 3, 1, 2).reshape(r * h * w, n, d)
        query = self.queries.repeat(r, 1, 1)  # (R*h*w, 1, D)
        # Rows are independent; CUDA attention kernels put them on one grid axis (at most 65535),
        # so many answers at once (the predictor batches whole benchmark batches) go in chunks.
        step = ATTENTION_ROWS
        pooled = torch.cat(
            [
                self.attn(
                    query[i : i + step], keys[i : i + step], keys[i : i + step], need_weights=False
                )[0]
                for i in range(0, query.shape[0], step)
            ]
        )  # (R*h*w, 1, D)
        return pooled.reshape(r, h * w, d).permute(0, 2, 1).reshape(r, d, h, w)
