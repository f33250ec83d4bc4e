"""A small convolutional image encoder that can stand in for SAM's ViT in from-scratch tiny models.

Why it exists: a randomly initialised ViT with 4x4 patches learns part masks slowly. On the
quickstart's Synth world, a SAM mask decoder prompted by a learned per-part embedding reached a
held-out IoU of 0.51 after 1,000 steps behind a 2-layer ViT, and 0.68-0.72 behind this encoder
(32 or 64 channels, same decoder, same steps; ``docs/quickstart.md``). Convolutions see
neighbouring pixels from the first layer on, which is what thin, small synthetic parts need.

It only replaces the encoder of a *randomly initialised* SAM (``sam.encoder: conv``): pretrained
SAM checkpoints always keep their ViT, so nothing here changes PLUM as the paper trains it.

The encoder keeps the interface PLUM uses from ``SamVisionEncoder``: called on pixels
``(N, 3, T, T)`` it returns an output whose ``[0]`` / ``last_hidden_state`` is the image embedding
``(N, D, T / p, T / p)``, the grid SAM's prompt encoder and mask decoder expect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput


@dataclass
class ConvEncoderOutput(ModelOutput):
    """``last_hidden_state``: ``(N, D, h, w)`` image embeddings (SAM's channel-first layout)."""

    last_hidden_state: torch.FloatTensor | None = None


def _conv_block(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    # 3x3 conv -> GroupNorm -> GELU. GroupNorm, not BatchNorm: a training micro-batch holds a
    # handful of images, and evaluation must not depend on running statistics.
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.GroupNorm(8, cout),
        nn.GELU(),
    ]


class ConvImageEncoder(nn.Module):
    """A 3x3-conv stem, ``log2(patch_size)`` stride-2 stages, then two dilated convs for context.

    Args:
        patch_size: total downsampling ``p`` (a power of two, >= 1): ``T x T`` pixels become an
            ``T/p x T/p`` grid, the same grid as a ViT with ``p x p`` patches.
        width: channels inside the encoder (a multiple of 8, for GroupNorm's 8 groups).
        out_channels: embedding width ``D``: SAM's prompt / decoder width.

    Shapes:
        input ``(N, 3, T, T)`` float, normalised pixels; output ``[0]`` ``(N, D, T/p, T/p)``.
        At ``p = 4`` one output cell sees a 63 x 63 pixel window.
    """

    def __init__(self, *, patch_size: int, width: int, out_channels: int) -> None:
        super().__init__()
        if patch_size < 1 or patch_size & (patch_size - 1):
            raise ValueError(f"patch_size must be a power of two, got {patch_size}")
        if width % 8:
            raise ValueError(f"width must be a multiple of 8 (GroupNorm groups), got {width}")
        layers: list[nn.Module] = _conv_block(3, width)
        for _ in range(int(math.log2(patch_size))):
            layers += _conv_block(width, width)
            layers += _conv_block(width, width, stride=2)
        layers += _conv_block(width, width, dilation=2)
        layers += _conv_block(width, width, dilation=4)
        layers.append(nn.Conv2d(width, out_channels, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, pixel_values: torch.Tensor, **_: object) -> ConvEncoderOutput:
        """Embed ``(N, 3, T, T)`` pixels into ``(N, D, T/p, T/p)``.

        Extra keyword arguments of ``SamVisionEncoder.forward`` (e.g. ``output_attentions``)
        are accepted and ignored.
        """
        return ConvEncoderOutput(last_hidden_state=self.layers(pixel_values))
