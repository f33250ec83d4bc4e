"""Greedy generation on an HF VLM backbone (Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision).

The own KV-cached loop of :mod:`partonomy.models.core.generation` embeds the prompt LLaVA's way
(CLIP features scattered over ``<image>``, 1-D positions). An HF VLM has its own vision inputs
(Qwen: flattened patches + ``image_grid_thw``; LLaVA-OneVision: anyres crops + ``image_sizes``),
its own positions (Qwen's 3-D multimodal RoPE, with a per-row offset after the image) and its own
cache handling, so decoding goes through the model's own ``generate`` (greedy, ``num_beams=1``,
ties to the lowest id as ``argmax``): it prefills the image and prompt once and decodes with its
KV cache, left padding handled through the attention mask. The hidden states the prompt source
needs (PLUM's span tagger, ``[SEG]`` positions) then come from one teacher-forced pass over prompt
+ answer through :meth:`~partonomy.models.backbones.hf_vlm.VlmAdapter.forward`, the same
right-padded forward training and scoring use, so tags and masks see exactly the states they
were trained on.

The image placeholder tokens (image, video, vision start / end) are never generated: only the
processor places them, with the count the image needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers.generation.streamers import BaseStreamer

from partonomy.models.backbones.hf_vlm import VlmAdapter
from partonomy.models.backbones.preprocess import VisionInput
from partonomy.models.core.generation_batch import Generation, left_pad
from partonomy.models.core.generation_reference import replay_tokens

if TYPE_CHECKING:
    from partonomy.models.core.model import SegLMM
    from partonomy.models.core.processing import SegExample


@dataclass(frozen=True)
class VlmVision:
    """An HF VLM's vision input for :func:`generate_vlm`, one image per prompt.

    Attributes:
        adapter: the backbone's adapter.
        rows: the model's keyword arguments with one image per prompt, in prompt order
            (:meth:`~partonomy.models.backbones.hf_vlm.VlmAdapter.rows`): ``pixel_values`` and
            ``image_grid_thw (B, 3)`` or ``image_sizes (B, 2)``.
    """

    adapter: VlmAdapter
    rows: dict[str, torch.Tensor]


def lm_vision_input(model: SegLMM, prompts: Sequence[SegExample]) -> torch.Tensor | VlmVision:
    """The vision input of ``prompts`` (one image each) as generation takes it: LLaVA's stacked
    ``(B, 3, S, S)`` CLIP inputs, or an HF VLM's :class:`VlmVision`."""
    if model.vlm is None:
        return torch.stack([p.pixel_values for p in prompts])
    pixels, extras = model.vlm.collate([VisionInput(p.pixel_values, p.vision) for p in prompts])
    index = torch.arange(len(prompts))
    return VlmVision(model.vlm, model.vlm.rows(pixels, extras, index))


class _TokenStream(BaseStreamer):
    """HF ``generate``'s streamer (batch of one) -> ``on_token`` with each ``(1,)`` CPU token
    (``generate`` puts the prompt first; it is skipped)."""

    def __init__(self, on_token: Callable[[torch.Tensor], None]) -> None:
        self.on_token = on_token
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.on_token(value.reshape(-1).clone())

    def end(self) -> None:
        return None


def _to(rows: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    return {
        k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in rows.items()
    }


@torch.no_grad()
def generate_vlm(
    lm: Any,
    vision: VlmVision,
    prompts: Sequence[torch.Tensor],
    *,
    stop_token_ids: Sequence[int],
    max_new_tokens: int = 512,
    pad_token_id: int = 0,
    return_hidden: bool = True,
    on_token: Callable[[torch.Tensor], None] | None = None,
    banned_token_ids: Sequence[int] = (),
) -> list[Generation]:
    """Greedy-decode one answer per prompt with the VLM's own ``generate`` (module docstring).

    Args:
        lm: the HF ``*ForConditionalGeneration`` (or its PEFT wrapper), in eval mode.
        vision: the prompts' images (:func:`lm_vision_input`).
        prompts: B int64 ``(L_b,)`` prompts up to and including the assistant anchor, each with
            its image's tokens.
        stop_token_ids: ids that end an answer (the chat template's end of turn).
        max_new_tokens: at most this many tokens per answer (the stop token included).
        pad_token_id: any valid id (masked out).
        return_hidden: compute the ``(L_b + n, d)`` last hidden states of prompt + answer.
        on_token: called with each step's ``(B,)`` CPU tokens: as they come for one prompt
            (the stop token included), after decoding for several (stop tokens not passed).
        banned_token_ids: ids never generated, besides the image placeholders.

    Returns:
        One :class:`~partonomy.models.core.generation.Generation` per prompt, in order.
    """
    if not prompts:
        return []
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    get_base = getattr(lm, "get_base_model", None)
    hf = get_base() if callable(get_base) else lm
    weight = next(hf.parameters())
    device, dtype = weight.device, weight.dtype
    rows = _to(vision.rows, device, dtype)
    ids, mask = left_pad(prompts, pad_token_id, device)
    if vision.adapter.uses_mrope:  # Qwen's 3-D positions need to know which tokens are image
        rows["mm_token_type_ids"] = (ids == vision.adapter.image_token_id).int()
    banned = sorted({*map(int, banned_token_ids), *vision.adapter.placeholder_token_ids})
    streamer = _TokenStream(on_token) if on_token is not None and len(prompts) == 1 else None
    out = hf.generate(
        input_ids=ids,
        attention_mask=mask,
        **rows,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=[int(t) for t in stop_token_ids],
        pad_token_id=pad_token_id,
        suppress_tokens=banned,
        streamer=streamer,
    )
    stops = {int(t) for t in stop_token_ids}
    kept: list[tuple[torch.Tensor, bool]] = []
    for row in out[:, ids.shape[1] :].cpu():
        tokens = row.tolist()
        cut = next((i for i, t in enumerate(tokens) if t in stops), None)
        kept.append((row[: len(tokens) if cut is None else cut], cut is not None))
    sequences = [torch.cat([p.cpu(), k]) for p, (k, _) in zip(prompts, kept, strict=True)]
    hidden: list[torch.Tensor | None] = [None] * len(prompts)
    if return_hidden:
        hidden = [*_teacher_forced_hidden(hf, vision.adapter, sequences, rows, pad_token_id)]
    results = [
        Generation(int(p.shape[0]), seq.to(device), h, stopped)
        for p, seq, h, (_, stopped) in zip(prompts, sequences, hidden, kept, strict=True)
    ]
    if on_token is not None and streamer is None:
        replay_tokens(results, on_token, pad_token_id)
    return results


def _teacher_forced_hidden(
    hf: Any,
    adapter: VlmAdapter,
    sequences: Sequence[torch.Tensor],
    rows: dict[str, Any],
    pad_token_id: int,
) -> list[torch.Tensor]:
    """Per sequence, its ``(L, d)`` last hidden states from one right-padded forward."""
    device = rows["pixel_values"].device
    width = max(int(s.shape[0]) for s in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(sequences):
        ids[r, : s.shape[0]] = s.to(device)
        mask[r, : s.shape[0]] = 1
    vision = {k: v for k, v in rows.items() if k != "mm_token_type_ids"}  # forward makes its own
    states = adapter.forward(hf.model, ids, mask, vision)[0].last_hidden_state
    return [states[r, : s.shape[0]] for r, s in enumerate(sequences)]
