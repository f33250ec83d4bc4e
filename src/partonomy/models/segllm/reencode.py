"""``<seg_input>``: an earlier round's mask read back by the LLM (SegLLM's mask-encode and
box-encode, ``process_extra_replacement_data`` in ``llava_llama.py``).

A reference to an earlier mask is two ``<seg_input>`` tokens, in this order:

1. **mask-encode**: the image is masked with the mask (black outside), cropped to the mask's box,
   zero-padded to a square (object at the top-left, as the original pads), resized to the CLIP
   input side ``S``, CLIP-normalised; CLIP's CLS feature (at LLaVA's ``vision_feature_layer``) goes
   through the multimodal projector -> ``(d,)``.
2. **box-encode**: the mask's box ``(x0, y0, x1, y1)`` in the decoder's padded ``T x T`` input frame,
   divided by ``T`` (the original divides by 1024), through ``Linear(4, d)`` (``mask_enc_head``).

Each encoding is *added* to the token's own embedding (the original adds it to the ``<video>``
token's embedding; its attempt to zero that embedding first writes into a copy). In training each
encoding of each reference is kept or dropped (x1 / x0) with probability ``keep_prob`` (0.5); at
evaluation it is scaled by ``eval_scale`` (0.5). Either encoding can be switched off.

Which mask: reference ``r`` of a conversation is its ``r``-th target (the rounds are the targets in
token order; the target scheme writes the reference to round ``k - 1`` before round ``k``). The
masks are ``batch.span_targets`` (ground truth in training and in the ``gt`` evaluation mode; the
model's own earlier predictions in the auto-regressive mode). A reference without a mask is encoded
as the original's dummy: the whole image unmasked and an all-zero box. Frames: images are the
decoder inputs ``batch.sam_pixel_values`` (SAM/ImageNet-normalised, longest side ``T``, padded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from partonomy.errors import ConfigError
from partonomy.models.backbones.preprocess import CLIP_MEAN, CLIP_STD, SAM_MEAN, SAM_STD
from partonomy.models.core.model import InputEncoder
from partonomy.models.core.processing import SegBatch

TOKENS_PER_REFERENCE = 2
"""mask-encode, then box-encode."""


@dataclass
class ReencodeConfig:
    """How earlier masks are re-encoded (module docstring).

    Attributes:
        mask_encode: add the CLIP CLS encoding of the masked object.
        box_encode: add the box encoding.
        keep_prob: training: probability that an encoding is kept (x1) rather than dropped (x0).
        eval_scale: evaluation: the factor of every encoding.
    """

    mask_encode: bool = True
    box_encode: bool = True
    keep_prob: float = 0.5
    eval_scale: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.keep_prob <= 1.0:
            raise ConfigError(f"reencode.keep_prob must be in [0, 1], got {self.keep_prob}")
        if self.eval_scale < 0:
            raise ConfigError(f"reencode.eval_scale must be >= 0, got {self.eval_scale}")


def mask_box(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` inclusive pixel box of a bool ``(h, w)`` mask, or None when empty."""
    ys = mask.any(dim=1).nonzero().flatten()
    xs = mask.any(dim=0).nonzero().flatten()
    if ys.numel() == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])


def object_crop(
    image: torch.Tensor, mask: torch.Tensor | None, clip_size: int
) -> tuple[torch.Tensor, tuple[int, int, int, int] | None]:
    """The CLIP input of a masked, box-cropped, square-padded object, and its box.

    Args:
        image: ``(3, h, w)`` float RGB in 0..255 (the resized image, padding cropped away).
        mask: ``(h, w)`` bool, or None for the dummy (the whole image, unmasked).
        clip_size: CLIP input side ``S``.

    Returns:
        ``((3, S, S)`` CLIP-normalised float32, the mask's box in ``image`` pixels or None).
    """
    box = None if mask is None else mask_box(mask)
    if box is None:
        obj = image  # dummy or empty mask: the whole image
    else:
        assert mask is not None
        x0, y0, x1, y1 = box
        obj = (image * mask[None].to(image.dtype))[:, y0 : y1 + 1, x0 : x1 + 1]
    side = max(obj.shape[1], obj.shape[2])
    square = obj.new_zeros((3, side, side))
    square[:, : obj.shape[1], : obj.shape[2]] = obj
    resized = F.interpolate(
        square[None].float(),
        (clip_size, clip_size),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[0]
    mean = torch.tensor(CLIP_MEAN, device=image.device)[:, None, None] * 255.0
    std = torch.tensor(CLIP_STD, device=image.device)[:, None, None] * 255.0
    return (resized - mean) / std, box


class MaskReencoder(InputEncoder):
    """SegLLM's mask-encode + box-encode for ``<seg_input>`` (module docstring).

    Args:
        token_id: id of ``<seg_input>``.
        llm_hidden: LLM width ``d``.
        clip_size: CLIP input side ``S``.
        decoder_size: the decoder's input side ``T`` (box frame).
        config: switches and scales.
        clip_cls: ``(n, 3, S, S) -> (n, d)`` projected CLIP CLS features (the LLaVA backbone's
            tower and projector, held outside the module tree).
        token_embedding: ``ids -> embeddings`` (the LLM's input embedding, held outside the tree).
    """

    def __init__(
        self,
        *,
        token_id: int,
        llm_hidden: int,
        clip_size: int,
        decoder_size: int,
        config: ReencodeConfig | None = None,
        clip_cls: Callable[[torch.Tensor], torch.Tensor] | None = None,
        token_embedding: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.token_id = token_id
        self.clip_size = clip_size
        self.decoder_size = decoder_size
        self.config = config or ReencodeConfig()
        # SegLLM's ``model.mask_enc_head``: Linear(4, d) of the normalised box.
        self.mask_enc_head = nn.Linear(4, llm_hidden)
        self._backbone = [clip_cls, token_embedding]  # a list: kept out of the module tree

    def _scales(self, n: int, device: torch.device) -> torch.Tensor:
        """``(n,)`` factor of each encoding: Bernoulli(keep_prob) in training, eval_scale otherwise."""
        if self.training:
            return (torch.rand(n, device=device) < self.config.keep_prob).float()
        return torch.full((n,), self.config.eval_scale, device=device)

    def forward(
        self, batch: SegBatch, image_features: Mapping[str, torch.Tensor]
    ) -> list[torch.Tensor]:
        """Per conversation, ``(2 * n_refs, d)`` embeddings for its ``<seg_input>`` tokens.

        Raises:
            ValueError: a conversation holds an odd number of ``<seg_input>`` tokens.
        """
        clip_cls, embed = self._backbone
        if clip_cls is None or embed is None:
            raise RuntimeError(
                "MaskReencoder was built without the LLaVA backbone's CLIP and embeddings"
            )
        weight = self.mask_enc_head.weight
        device, dtype = weight.device, weight.dtype
        counts = (batch.input_ids == self.token_id).sum(1).tolist()
        crops, boxes, owners = [], [], []
        sam_mean = torch.tensor(SAM_MEAN, device=device)[:, None, None]
        sam_std = torch.tensor(SAM_STD, device=device)[:, None, None]
        for b, count in enumerate(counts):
            if count % TOKENS_PER_REFERENCE:
                raise ValueError(
                    f"conversation {b}: {count} <seg_input> tokens; a reference is "
                    f"{TOKENS_PER_REFERENCE} (mask-encode, box-encode)"
                )
            if not count:
                continue
            h, w = (int(s) for s in batch.sam_input_sizes[b])
            pixels = batch.sam_pixel_values[int(batch.image_index[b])].to(device).float()
            image = (pixels[:, :h, :w] * sam_std + sam_mean).clamp(0, 255)
            targets = batch.span_targets[b] if b < len(batch.span_targets) else []
            for r in range(count // TOKENS_PER_REFERENCE):
                mask = None
                if r < len(targets):
                    full = (targets[r].to(device) == 1).float()[None, None]
                    mask = F.interpolate(full, (h, w), mode="nearest")[0, 0] > 0.5
                crop, box = object_crop(image, mask, self.clip_size)
                crops.append(crop)
                frame = torch.zeros(4) if box is None else torch.tensor(box, dtype=torch.float32)
                boxes.append(frame / float(self.decoder_size))
                owners.append(b)
        d = self.mask_enc_head.out_features
        if not owners:
            return [torch.zeros(0, d, dtype=dtype, device=device) for _ in counts]
        n = len(owners)
        token = embed(torch.full((1,), self.token_id, device=device, dtype=torch.long))[0]
        encodings = torch.zeros(n, TOKENS_PER_REFERENCE, d, dtype=dtype, device=device)
        if self.config.mask_encode:
            cls = clip_cls(torch.stack(crops).to(dtype)).to(dtype)  # (n, d)
            encodings[:, 0] = cls * self._scales(n, device)[:, None].to(dtype)
        if self.config.box_encode:
            box_enc = self.mask_enc_head(torch.stack(boxes).to(device=device, dtype=dtype))
            encodings[:, 1] = box_enc * self._scales(n, device)[:, None].to(dtype)
        rows = encodings + token.to(dtype)
        index = torch.tensor(owners, device=device)
        return [rows[index == b].reshape(-1, d) for b in range(len(counts))]


def build_reencoder(
    llava: Any, tokenizer: Any, *, decoder_size: int, config: ReencodeConfig | None = None
) -> MaskReencoder:
    """The re-encoder sized from a built HF ``LlavaForConditionalGeneration``, reading its CLIP tower,
    projector and input embeddings; ``<seg_input>`` is looked up in ``tokenizer``."""
    from partonomy.models.backbones.llava import token_id
    from partonomy.models.segllm.targets import SEG_INPUT_TOKEN

    inner = llava.model
    select = llava.config.vision_feature_layer
    layer = int(select if isinstance(select, int) else select[-1])

    def clip_cls(pixels: torch.Tensor) -> torch.Tensor:
        tower = inner.vision_tower
        out = tower(pixels.to(next(tower.parameters()).dtype), output_hidden_states=True)
        cls = out.hidden_states[layer][:, 0]  # (n, C): the CLS feature at the select layer
        return inner.multi_modal_projector(cls)  # type: ignore[no-any-return]

    def embed(ids: torch.Tensor) -> torch.Tensor:
        return inner.get_input_embeddings()(ids)  # type: ignore[no-any-return]

    return MaskReencoder(
        token_id=token_id(tokenizer, SEG_INPUT_TOKEN),
        llm_hidden=int(llava.config.text_config.hidden_size),
        clip_size=int(llava.config.vision_config.image_size),
        decoder_size=decoder_size,
        config=config,
        clip_cls=clip_cls,
        token_embedding=embed,
    )
