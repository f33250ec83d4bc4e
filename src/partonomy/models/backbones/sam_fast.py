"""A faster SAM ViT image encoder: flash attention with SAM's decomposed relative positions.

SAM's ViT blocks (windowed and global) add a decomposed relative-position term to the attention
logits of query ``i = (h_i, w_i)`` and key ``j = (h_j, w_j)``::

    logit[i, j] = scale * q_i . k_j + q_i . Rh[h_i - h_j] + q_i . Rw[w_i - w_j]

transformers' ``SamVisionAttention`` materialises that term as a dense ``(B, heads, N, N)`` bias
(``N = 4096`` tokens in a global block of ViT-H at 1024 px, 512 MiB per image in bf16), which also
rules out the flash kernel. Here the term goes *into the dot product* instead: with
``rel_h[i, :] = q_i . Rh[h_i - :]`` (``H`` values) and ``rel_w[i, :]`` (``W`` values),

    q'_i = [scale * q_i, rel_h[i], rel_w[i]]      k'_j = [k_j, onehot_H(h_j), onehot_W(w_j)]

gives ``q'_i . k'_j = logit[i, j]`` exactly, so a plain ``scaled_dot_product_attention(q', k', v',
scale=1)`` (``v`` zero-padded to the same width, the extra output columns dropped) computes the
block with no bias tensor, and on a GPU in bf16 with the flash kernel (head width
``80 + 64 + 64 = 208`` for ViT-H's global blocks, ``80 + 14 + 14`` padded to 112 for its windows).
Widths above 256 (flash's limit), and inputs off the GPU (no flash kernel there, and the wider
dot product costs more than the bias), use SDPA with the additive bias instead, as transformers does.

:func:`use_flash_attention` swaps each block's attention for :class:`FlashRelPosAttention`, which
holds the *same* parameter objects under the same names, so state-dict keys, checkpoints, LoRA
targets and ``requires_grad`` flags are unchanged. :func:`compile_blocks` compiles each block in
place (regional compilation: the identical blocks share one compiled graph per block kind).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FLASH_MAX_HEAD_DIM = 256
"""Widest head the flash kernel takes; a wider augmented head uses an additive bias instead."""


def relative_table(size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """``(size, size, c)``: the relative-position embedding of every (query, key) offset along one
    axis, ``table[i, j] = rel_pos[i - j + size - 1]``.

    ``rel_pos`` ``(2 * size - 1, c)`` is used as it is; another length is linearly resized first,
    as segment-anything does when the input grid differs from the pretraining one.
    """
    length = 2 * size - 1
    if rel_pos.shape[0] != length:
        rel_pos = F.interpolate(rel_pos.t()[None], size=length, mode="linear", align_corners=False)[
            0
        ].t()
    coords = torch.arange(size, device=rel_pos.device)
    return rel_pos[coords[:, None] - coords[None, :] + size - 1]


class FlashRelPosAttention(nn.Module):
    """SAM's ViT attention (module docstring) over the parameters of a transformers
    ``SamVisionAttention``.

    Args:
        source: the ``SamVisionAttention`` whose ``qkv``, ``proj``, ``rel_pos_h`` and
            ``rel_pos_w`` this module takes over (shared, not copied).

    Input ``(B, H, W, C)`` tokens of one window (or the whole grid), output ``((B, H, W, C), None)``
    like the module it replaces (no attention weights).

    Attributes:
        fold: fold the relative positions into the dot product: None (default) on CUDA inputs
            only, True / False always / never (tests compare both on the CPU).
    """

    fold: bool | None = None

    def __init__(self, source: Any) -> None:
        super().__init__()
        self.qkv = source.qkv
        self.proj = source.proj
        self.num_attention_heads = int(source.num_attention_heads)
        self.scale = float(source.scale)
        self.use_rel_pos = bool(source.use_rel_pos)
        if self.use_rel_pos:
            self.rel_pos_h = source.rel_pos_h
            self.rel_pos_w = source.rel_pos_w

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool | None = None
    ) -> tuple[torch.Tensor, None]:
        b, h, w, _ = hidden_states.shape
        n, heads = h * w, self.num_attention_heads
        qkv = self.qkv(hidden_states).reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, N, c) each
        c = q.shape[-1]
        if not self.use_rel_pos:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            grid = q.reshape(b, heads, h, w, c)
            table_h = relative_table(h, self.rel_pos_h).to(q.dtype)  # (H, H, c)
            table_w = relative_table(w, self.rel_pos_w).to(q.dtype)  # (W, W, c)
            rel_h = torch.einsum("bnhwc,hkc->bnhwk", grid, table_h).reshape(b, heads, n, h)
            rel_w = torch.einsum("bnhwc,wkc->bnhwk", grid, table_w).reshape(b, heads, n, w)
            width = c + h + w
            fold = q.is_cuda if self.fold is None else self.fold
            if fold and width <= FLASH_MAX_HEAD_DIM:
                out = self._augmented(q, k, v, rel_h, rel_w)
            else:  # too wide for flash: the additive bias, as transformers does
                bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, heads, n, n)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.reshape(b, heads, h, w, c).permute(0, 2, 3, 1, 4).reshape(b, h, w, heads * c)
        return self.proj(out), None

    def _augmented(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        rel_h: torch.Tensor,
        rel_w: torch.Tensor,
    ) -> torch.Tensor:
        """Attention with the relative terms folded into ``q . k`` (module docstring)."""
        b, heads, n, c = q.shape
        h, w = rel_h.shape[-1], rel_w.shape[-1]
        width = c + h + w
        pad = -width % 8  # kernels want a head width that is a multiple of 8
        token = torch.arange(n, device=q.device)
        onehot = torch.cat([F.one_hot(token // w, h), F.one_hot(token % w, w)], dim=1).to(
            q.dtype
        )  # (N, H + W): key j's row and column
        q2 = torch.cat([q * self.scale, rel_h, rel_w], dim=-1)
        k2 = torch.cat([k, onehot.expand(b, heads, n, h + w)], dim=-1)
        if pad:
            q2, k2 = F.pad(q2, (0, pad)), F.pad(k2, (0, pad))
        v2 = F.pad(v, (0, width + pad - c))
        return F.scaled_dot_product_attention(q2, k2, v2, scale=1.0)[..., :c]


def use_flash_attention(vision_encoder: nn.Module) -> int:
    """Swap every ViT block's attention of a transformers ``SamVisionEncoder`` for
    :class:`FlashRelPosAttention` (same parameters); returns how many were swapped (0 for an
    encoder without such blocks, e.g. the tiny conv encoder). Idempotent."""
    swapped = 0
    for layer in getattr(vision_encoder, "layers", ()):
        attn = getattr(layer, "attn", None)
        if attn is None or isinstance(attn, FlashRelPosAttention) or not hasattr(attn, "qkv"):
            continue
        layer.attn = FlashRelPosAttention(attn)
        swapped += 1
    return swapped


def compile_blocks(vision_encoder: nn.Module) -> int:
    """``torch.compile`` each ViT block in place (regional compilation: one graph per block kind,
    reused by every block of that kind); returns how many were compiled."""
    layers = list(getattr(vision_encoder, "layers", ()))
    for layer in layers:
        layer.compile()
    return len(layers)
