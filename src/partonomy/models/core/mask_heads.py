"""Mask heads: what turns prompt embeddings into mask logits, behind one interface.

A segmentation LMM (:class:`~partonomy.models.core.model.SegLMM`) asks its mask head for

* ``image_embeddings(pixels)``: one embedding per distinct image, computed once per batch;
* ``decode(embeddings, sparse, dense)``: low-resolution mask logits for ``R`` prompts at once;
* ``no_mask_dense(R)``: the dense prompt of a mask without history (SAM's ``no_mask_embed``);
* ``postprocess(low_res, input_size, original_size)``: logits in the original image frame.

:class:`SamMaskHead` wraps transformers' ``SamModel`` (prompt encoder + two-way mask decoder),
as LISA, GLaMM and PLUM use it. PixelLM's light decoder
(:class:`~partonomy.models.pixellm.decoder.PixelLMMaskHead`) or a query decoder implements the
same methods (:class:`MaskHead`); the feedback loop (PLUM) additionally reads
:attr:`SamMaskHead.mask_embed`, which only SAM-like heads have.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from partonomy.models.backbones.sam import SamGeometry, sam_geometry


class MaskHead(nn.Module, ABC):
    """The interface a :class:`~partonomy.models.core.model.SegLMM` asks of its mask head (module
    docstring); shapes are the head's own (SAM: ``(N, D, h, w)`` embeddings, one prompt row per
    mask). The feedback loop additionally needs SAM's ``mask_embed``."""

    @abstractmethod
    def image_embeddings(self, inputs: torch.Tensor) -> torch.Tensor:
        """One embedding per distinct image, batched along dim 0."""

    @abstractmethod
    def no_mask_dense(self, rows: int) -> torch.Tensor:
        """``(R, ...)`` dense prompts of masks without history."""

    @abstractmethod
    def positional_embedding(self) -> torch.Tensor:
        """The dense positional embedding of the image grid."""

    @abstractmethod
    def decode(
        self, embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low_res (R, s, s), iou (R,))``: one mask per prompt row."""

    @abstractmethod
    def postprocess(
        self, low_res: torch.Tensor, input_size: Sequence[int], original_size: Sequence[int]
    ) -> torch.Tensor:
        """Low-res logits ``(n, s, s)`` -> float32 logits ``(n, H, W)`` in the original frame."""


class SamMaskHead(MaskHead):
    """SAM's image encoder, prompt encoder and mask decoder as a mask head.

    Args:
        sam: a transformers ``SamModel`` (or one built by :func:`~partonomy.models.backbones.sam.build_sam`).

    Frames: the encoder sees a ``(T, T)`` input (longest side resized to ``T``, zero-padded
    bottom/right); low-res logits are ``(4h, 4w)`` over that padded square.
    """

    sam: Any  # HF SamModel; HF types are loose

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.sam = sam

    # ----------------------------------------------------------------------------- geometry
    @property
    def geometry(self) -> SamGeometry:
        return sam_geometry(self.sam)

    @property
    def input_size(self) -> int:
        """Encoder input side ``T`` in pixels."""
        return int(self.sam.config.prompt_encoder_config.image_size)

    @property
    def prompt_dim(self) -> int:
        """Width ``D`` of a prompt token."""
        return int(self.sam.config.prompt_encoder_config.hidden_size)

    @property
    def dtype(self) -> torch.dtype:
        return self.sam.mask_decoder.iou_token.weight.dtype  # type: ignore[no-any-return]

    @property
    def mask_embed(self) -> Any:
        """SAM's mask-downscaling convolutions (the feedback loop reuses them, weights shared)."""
        return self.sam.prompt_encoder.mask_embed

    def positional_embedding(self) -> torch.Tensor:
        """``(1, D, h, w)`` dense positional embedding of the image grid, in the decoder's dtype."""
        return self.sam.get_image_wide_positional_embeddings().to(self.dtype)  # type: ignore[no-any-return]

    # -------------------------------------------------------------------------------- parts
    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, D, h, w)`` embeddings of ``(N, 3, T, T)`` inputs, batched.

        Runs under ``no_grad`` when no encoder parameter requires grad (the frozen default).
        """
        encoder = self.sam.vision_encoder
        dtype = next(encoder.parameters()).dtype
        pixels = pixel_values.to(dtype)
        if any(p.requires_grad for p in encoder.parameters()):
            return encoder(pixels)[0]  # type: ignore[no-any-return]
        with torch.no_grad():
            return encoder(pixels)[0]  # type: ignore[no-any-return]

    def no_mask_dense(self, rows: int) -> torch.Tensor:
        """``(R, D, h, w)``: SAM's learned "no mask" dense prompt, broadcast over the grid."""
        h, w = self.geometry.embed_size
        weight = self.sam.prompt_encoder.no_mask_embed.weight
        return weight.reshape(1, -1, 1, 1).expand(rows, -1, h, w).to(self.dtype)  # type: ignore[no-any-return]

    def decode(
        self, embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask per prompt row.

        Args:
            embeddings: ``(R, D, h, w)`` image embedding of each row.
            sparse: ``(R, t, D)`` sparse prompt tokens (``t = 1`` for LISA / GLaMM / PLUM).
            dense: ``(R, D, h, w)`` dense prompts.

        Returns:
            ``(low_res (R, 4h, 4w), iou (R,))``: one mask (``multimask_output=False``) per row.
        """
        rows = embeddings.shape[0]
        dtype = self.dtype
        pe = self.positional_embedding()
        low, iou = self.sam.mask_decoder(
            image_embeddings=embeddings.to(dtype),
            image_positional_embeddings=pe.expand(rows, -1, -1, -1),
            # (R, point_batch 1, tokens t, D)
            sparse_prompt_embeddings=sparse.to(dtype)[:, None],
            dense_prompt_embeddings=dense.to(dtype),
            multimask_output=False,
        )  # low: (R, 1, 1, 4h, 4w), iou: (R, 1, 1)
        return low[:, 0, 0], iou.reshape(rows)

    def postprocess(
        self, low_res: torch.Tensor, input_size: Sequence[int], original_size: Sequence[int]
    ) -> torch.Tensor:
        """Low-res logits ``(n, 4h, 4w)`` -> float32 logits ``(n, H, W)`` in the original frame.

        Upsample (bilinear) to the input side ``T``, crop the padding away (keep the resized
        ``(h_in, w_in)``), upsample to ``(H, W)``.
        """
        side = self.input_size
        x = bilinear_resize(low_res.float(), (side, side))
        x = x[..., : int(input_size[0]), : int(input_size[1])]
        return bilinear_resize(x, (int(original_size[0]), int(original_size[1])))


def bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(mode="bilinear", align_corners=False)`` of ``x`` (n, h, w) to ``size``.

    CUDA's bilinear backward adds into the input gradient with atomics, so it is not
    reproducible; under ``torch.use_deterministic_algorithms`` (training's ``deterministic``)
    a CUDA tensor that needs a gradient is resized as ``R_h @ x @ R_w^T`` with the same
    interpolation weights instead (matrix products are deterministic; equal to 1e-5 relative).
    """
    deterministic = torch.are_deterministic_algorithms_enabled()
    if not (deterministic and x.is_cuda and x.requires_grad):
        return F.interpolate(x[:, None], size, mode="bilinear", align_corners=False)[:, 0]
    rows = _interpolation_matrix(x.shape[-2], size[0], x.device)
    cols = _interpolation_matrix(x.shape[-1], size[1], x.device)
    return rows @ x @ cols.T


def _interpolation_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """(n_out, n_in) fp32 weights of 1-D linear interpolation, half-pixel centres, edges clamped
    (PyTorch's ``align_corners=False``)."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    dst = torch.arange(n_out, dtype=torch.float32)
    src = ((dst + 0.5) * scale - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo.float()
    out = torch.zeros(n_out, n_in, dtype=torch.float32)
    row = torch.arange(n_out)
    out.index_put_((row, lo), 1 - frac, accumulate=True)
    out.index_put_((row, hi), frac, accumulate=True)
    return out.to(device)
