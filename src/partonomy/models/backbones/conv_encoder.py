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


@dataclass
class ConvPyramidOutput(ModelOutput):
    """``fpn_hidden_states``: ``[(N, D, 4h, 4w), (N, D, 2h, 2w), (N, D, h, w)]``, finest first
    (the levels ``Sam2VisionModel`` gives SAM 2's mask decoder)."""

    fpn_hidden_states: list[torch.Tensor] | None = None


class ConvPyramidEncoder(nn.Module):
    """:class:`ConvImageEncoder`'s layers with SAM 2's three feature levels tapped: a random tiny
    SAM 2 (``sam.kind: sam2``, ``sam.encoder: conv``) gets the same fast-learning encoder.

    Args:
        patch_size: stride ``p`` of the coarsest level (the image embedding; a power of two >= 4);
            the other two levels have strides ``p/4`` and ``p/2``.
        width: channels inside the encoder (a multiple of 8).
        out_channels: level width ``D`` (SAM 2's FPN width = the decoder width).
    """

    def __init__(self, *, patch_size: int, width: int, out_channels: int) -> None:
        super().__init__()
        if patch_size < 4 or patch_size & (patch_size - 1):
            raise ValueError(f"patch_size must be a power of two >= 4, got {patch_size}")
        if width % 8:
            raise ValueError(f"width must be a multiple of 8 (GroupNorm groups), got {width}")
        steps = int(math.log2(patch_size))
        stages: list[nn.Module] = [nn.Sequential(*_conv_block(3, width))]  # the stem, stride 1
        for k in range(steps):
            block = _conv_block(width, width) + _conv_block(width, width, stride=2)
            if k == steps - 1:  # context at the coarsest level, as in ConvImageEncoder
                block += _conv_block(width, width, dilation=2) + _conv_block(
                    width, width, dilation=4
                )
            stages.append(nn.Sequential(*block))
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(nn.Conv2d(width, out_channels, 1) for _ in range(3))

    def forward(self, pixel_values: torch.Tensor, **_: object) -> ConvPyramidOutput:
        """``(N, 3, T, T)`` -> three levels at strides ``p/4``, ``p/2``, ``p`` (finest first)."""
        x, taps = pixel_values, []
        for stage in self.stages:
            x = stage(x)
            taps.append(x)
        levels = [head(t) for head, t in zip(self.heads, taps[-3:], strict=True)]
        return ConvPyramidOutput(fpn_hidden_states=levels)
