"""PixelLM's vision side: the 448 preprocessing, the CLIP position interpolation, the LLM's own
projector, and the model's two CLIP paths.

* Preprocessing (``pad_*_clip_images``): ResizeLongestSide to ``T`` (448) and zero padding
  bottom/right, normalised on the 0-255 scale with SAM's (ImageNet) mean/std, the original's quirk,
  or with CLIP's mean/std (``normalize: clip``). The same tensor feeds the LLM and the mask branch.
* Position interpolation (``resize_vision_tower``): CLIP-L/14-336's ``24 x 24`` patch positions are
  resized bilinearly to ``32 x 32``. The original treats the *last* row of the table as the CLS row
  and the first ``g0 * g0`` rows (CLS included) as the patch grid, then appends that last row after
  the resized grid (:func:`interpolate_positions` with ``original_order=True`` reproduces it;
  released weights were trained on it).
* LLM path: select layer (-2) patch features ``g x g`` resized (bilinear) to ``llm_grid x llm_grid``
  (16 -> 256 tokens), then ``mm_projector`` ``Linear(C, 2d) -> GELU -> Linear(2d, d)``; both steps
  are :class:`PixelLMProjector`, in the place of transformers' projector.
* Mask path: the ``mask_layers`` hidden states (patches only) to the mask head.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from partonomy.models.backbones.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    SAM_MEAN,
    SAM_STD,
    sam_resized_size,
)
from partonomy.models.core.model import SegLMM, unwrap_peft
from partonomy.models.core.processing import SegProcessor


def pad_preprocess(
    image: np.ndarray, size: int, normalize: str = "sam"
) -> tuple[np.ndarray, tuple[int, int]]:
    """``(H, W, 3)`` uint8 -> (``(3, size, size)`` float32, resized ``(h, w)`` before padding).

    ResizeLongestSide (bilinear) then zero padding after normalisation; ``normalize="sam"``: SAM's
    0-255 mean/std (the original); ``"clip"``: CLIP's mean/std on the 0-1 scale.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    h, w = sam_resized_size(image.shape[0], image.shape[1], size)
    resized = np.asarray(
        Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32
    )
    if normalize == "sam":
        normed = (resized - np.array(SAM_MEAN, np.float32)) / np.array(SAM_STD, np.float32)
    elif normalize == "clip":
        normed = (resized / 255.0 - np.array(CLIP_MEAN, np.float32)) / np.array(
            CLIP_STD, np.float32
        )
    else:
        raise ValueError(f"normalize must be 'sam' or 'clip', got {normalize!r}")
    out = np.zeros((3, size, size), np.float32)
    out[:, :h, :w] = normed.transpose(2, 0, 1)
    return out, (h, w)


class PixelLMProcessor(SegProcessor):
    """:class:`SegProcessor` with PixelLM's padded CLIP input for both image tensors.

    Args:
        normalize: ``"sam"`` (the original's quirk) or ``"clip"``.
        *args, **kwargs: as :class:`SegProcessor` (``clip_image_size == sam_image_size``).
    """

    def __init__(self, *args: Any, normalize: str = "sam", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if normalize not in ("sam", "clip"):
            raise ValueError(f"normalize must be 'sam' or 'clip', got {normalize!r}")
        self.normalize = normalize

    def preprocess_image(
        self, image: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], tuple[int, int]]:
        """``(H, W, 3)`` uint8 -> (CLIP input, the same tensor for the mask branch, ``(H, W)``,
        resized ``(h, w)``)."""
        pixels, resized = pad_preprocess(image, self.clip_image_size, self.normalize)
        tensor = torch.from_numpy(pixels)
        return tensor, tensor, (int(image.shape[0]), int(image.shape[1])), resized


def interpolate_positions(
    weight: torch.Tensor, grid: int, *, original_order: bool = True
) -> torch.Tensor:
    """CLIP's position table ``(1 + g0*g0, C)`` resized to ``(1 + grid*grid, C)`` (bilinear).

    ``original_order=True`` reproduces the original's row handling (module docstring): rows
    ``[:-1]`` are resized as the grid and row ``-1`` is appended last. ``False`` resizes the true
    patch rows ``[1:]`` and keeps the CLS row first.
    """
    g0 = round((weight.shape[0] - 1) ** 0.5)
    if g0 * g0 + 1 != weight.shape[0]:
        raise ValueError(f"position table of {weight.shape[0]} rows is not 1 + a square grid")
    if weight.is_meta:
        return torch.empty((grid * grid + 1, weight.shape[1]), dtype=weight.dtype, device="meta")
    if original_order:
        patches, cls = weight[:-1], weight[-1:]
    else:
        cls, patches = weight[:1], weight[1:]
    square = patches.float().T.reshape(1, -1, g0, g0)
    resized = F.interpolate(square, (grid, grid), mode="bilinear", align_corners=False)
    flat = resized[0].flatten(1).T.to(weight.dtype)
    return torch.cat([flat, cls]) if original_order else torch.cat([cls, flat])


def resize_vision_tower(llava: Any, image_size: int, *, original_order: bool = True) -> None:
    """Make the LLaVA backbone's CLIP tower run at ``image_size`` (in place; no-op if it does)."""
    vision = unwrap_peft(llava).model.vision_tower
    embeddings = vision.embeddings
    if int(vision.config.image_size) == image_size:
        return
    patch = int(vision.config.patch_size)
    if image_size % patch:
        raise ValueError(f"CLIP input {image_size} is not a multiple of its patch size {patch}")
    grid = image_size // patch
    old = embeddings.position_embedding.weight.data
    new = interpolate_positions(old, grid, original_order=original_order)
    embeddings.position_embedding = nn.Embedding.from_pretrained(new, freeze=False)
    embeddings.num_patches = grid * grid
    embeddings.num_positions = grid * grid + 1
    embeddings.image_size = image_size
    embeddings.register_buffer(
        "position_ids", torch.arange(grid * grid + 1).expand((1, -1)), persistent=False
    )
    vision.config.image_size = image_size
    unwrap_peft(llava).config.vision_config.image_size = image_size


class PixelLMProjector(nn.Module):
    """The LLM-side ``mm_projector`` with the original's token pooling in front: patch features
    ``(N, g*g, C)`` resized (bilinear) to ``(N, llm_grid**2, C)``, then
    ``Linear(C, 2d) -> GELU -> Linear(2d, d)`` (wider than transformers' LLaVA projector, whose
    hidden width is ``d``). It sits where transformers' projector does, so every path that runs
    ``LlavaModel`` with pixels (scoring, generation) gives the LLM PixelLM's tokens.

    Args:
        clip_hidden: CLIP width ``C``; llm_hidden: LLM width ``d``; llm_grid: pooled grid side.
    """

    def __init__(self, clip_hidden: int, llm_hidden: int, llm_grid: int) -> None:
        super().__init__()
        self.llm_grid = llm_grid
        self.linear_1 = nn.Linear(clip_hidden, 2 * llm_hidden)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(2 * llm_hidden, llm_hidden)

    def pool(self, patches: torch.Tensor) -> torch.Tensor:
        """``(N, g*g, C)`` -> ``(N, llm_grid**2, C)`` (bilinear, ``align_corners=False``)."""
        n, p, c = patches.shape
        g = round(p**0.5)
        if g * g != p:
            raise ValueError(f"{p} patch features are not a square grid")
        if g == self.llm_grid:
            return patches
        square = patches.transpose(1, 2).reshape(n, c, g, g).float()
        pooled = F.interpolate(
            square, (self.llm_grid, self.llm_grid), mode="bilinear", align_corners=False
        )
        return pooled.flatten(2).transpose(1, 2).to(patches.dtype)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        tokens = self.pool(patches).to(self.linear_1.weight.dtype)
        return self.linear_2(self.act(self.linear_1(tokens)))  # type: ignore[no-any-return]


class PixelLMModel(SegLMM):
    """:class:`SegLMM` whose mask head reads CLIP's hidden states (module docstring).

    Args:
        mask_layers: CLIP hidden-state indices of the mask branch, coarse scale first.
        **kwargs: as :class:`SegLMM`.

    The LLM path is :class:`SegLMM`'s (transformers' ``get_image_features``), with
    :class:`PixelLMProjector` pooling the tokens. CLIP runs once for the LLM tokens and once for
    the mask branch (the original runs it once and keeps both); the results are the same.
    """

    def __init__(self, *, mask_layers: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_layers = list(mask_layers)

    def clip_hidden_states(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """CLIP's hidden states ``(N, 1 + g*g, C)`` per layer (embeddings first)."""
        tower = unwrap_peft(self.llava).model.vision_tower
        dtype = next(tower.parameters()).dtype
        out = tower(pixel_values.to(dtype), output_hidden_states=True)
        return tuple(out.hidden_states)

    def image_embeddings(self, sam_pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, scales, D, g, g)``: the mask layers' patch features through the mask head."""
        states = self.clip_hidden_states(sam_pixel_values)
        layers = torch.stack([states[k][:, 1:] for k in self.mask_layers], dim=1)  # (N, S, P, C)
        return self.mask_head.image_embeddings(layers)
