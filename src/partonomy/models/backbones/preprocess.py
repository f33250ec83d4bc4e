"""Image preprocessing for the two vision inputs: CLIP (the LLM's eyes) and SAM (the mask encoder).

Both take an ``(H, W, 3)`` uint8 RGB array in the original image frame and return float32 CHW
arrays. Sizes come from the built models' configs.

* CLIP (LLaVA v1, as PLUM/LISA feed it): resize the shorter side to ``S`` (bicubic), centre-crop
  ``S x S``, scale to [0, 1], normalise with OpenAI CLIP's mean/std.
* SAM (segment-anything's ResizeLongestSide): resize so the longer side is ``T`` (bilinear,
  ``new = int(old * T / max(H, W) + 0.5)``), normalise on the 0-255 scale with SAM's pixel mean/std,
  then zero-pad bottom/right to ``T x T``. The resized size ``(h, w)`` before padding is returned:
  masks are cropped to it before being resized back to ``(H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SAM_MEAN = (123.675, 116.28, 103.53)
SAM_STD = (58.395, 57.12, 57.375)


@dataclass
class VisionInput:
    """One image as the language model's vision side takes it.

    Attributes:
        pixel_values: LLaVA: ``(3, S, S)`` CLIP input; an HF VLM: its image processor's output for
            this image alone (Qwen: ``(patches, C*t*p*p)``; LLaVA-OneVision: ``(crops, 3, S, S)``).
        extras: the other per-image tensors the model takes, each with a leading image axis of 1
            (``image_grid_thw (1, 3)``, ``image_sizes (1, 2)``); empty for LLaVA.
        n_tokens: LM positions (image tokens) this image occupies.
    """

    pixel_values: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    n_tokens: int = 0


def _check_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )
    return image


def clip_preprocess(image: np.ndarray, size: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(3, size, size)`` float32, CLIP-normalised (module docstring)."""
    image = _check_rgb(image)
    h, w = image.shape[:2]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    crop = np.asarray(resized, dtype=np.float32)[top : top + size, left : left + size] / 255.0
    out = (crop - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def sam_resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(h, w)`` of an ``(height, width)`` image after ResizeLongestSide to ``size``."""
    scale = size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def sam_resize(image: np.ndarray, size: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(h, w, 3)`` uint8, resized so the longer side is ``size`` (bilinear)."""
    image = _check_rgb(image)
    h, w = sam_resized_size(image.shape[0], image.shape[1], size)
    return np.array(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))  # writable


def sam_preprocess(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``(H, W, 3)`` uint8 -> (``(3, size, size)`` float32 SAM input, resized ``(h, w)`` before padding)."""
    resized = sam_resize(image, size).astype(np.float32)
    h, w = resized.shape[:2]
    normed = (resized - np.array(SAM_MEAN, np.float32)) / np.array(SAM_STD, np.float32)
    out = np.zeros((3, size, size), np.float32)  # zero padding after normalisation, as SAM does
    out[:, :h, :w] = normed.transpose(2, 0, 1)
    return out, (h, w)


def sam_normalize(resized: torch.Tensor, size: int) -> torch.Tensor:
    """The second half of :func:`sam_preprocess` in torch, on any device: ``(h, w, 3)`` uint8
    (from :func:`sam_resize`) -> ``(3, size, size)`` float32, normalised then zero-padded.

    The same float32 subtract and divide as the numpy path, so the result is bit-identical to it.
    """
    h, w = int(resized.shape[0]), int(resized.shape[1])
    mean = torch.tensor(SAM_MEAN, dtype=torch.float32).to(resized.device, non_blocking=True)
    std = torch.tensor(SAM_STD, dtype=torch.float32).to(resized.device, non_blocking=True)
    normed = (resized.float() - mean) / std
    out = resized.new_zeros((3, size, size), dtype=torch.float32)
    out[:, :h, :w] = normed.permute(2, 0, 1)
    return out
