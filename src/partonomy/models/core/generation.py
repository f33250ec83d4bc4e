"""Greedy generation with a KV cache, collecting the last-layer hidden states as it goes.

The original PLUM sets ``use_cache=False`` and so recomputes the whole sequence at every new token.
Here the prompt (image included) is prefilled once into a KV cache and each step feeds one token
per row; the hidden state of each fed token is kept, so the span tagger gets the full sequence's
hidden states without another forward. On a GPU the decoding step runs over a static cache and is
captured once as a CUDA graph and replayed, and the host reads the tokens a few steps behind the
GPU, so batch-1 decoding runs near the memory-bandwidth limit (:class:`StaticDecoder`). Without a
graph (a CPU, or ``cuda_graphs=False``) the steps run eagerly over HF's dynamic cache, each
dispatching fewer operators than a step of HF ``generate``
(:class:`~partonomy.models.core.generation_eager.EagerDecoder`). ``use_cache=False`` keeps a
recomputing loop as the reference (tests check both give the same tokens), and
``static_cache=True`` HF's own ``generate``.

Batching: prompts of different lengths are left-padded, with explicit position ids so each row sees
the positions it would have alone. Decoding is greedy (the original's ``num_beams=1``, no sampling);
ties go to the lowest token id (``argmax``).

Modules: :mod:`~partonomy.models.core.generation_batch` (the :class:`Generation` result, left
padding), :mod:`~partonomy.models.core.static_decoder` (the default path on a GPU),
:mod:`~partonomy.models.core.generation_eager` (eager steps),
:mod:`~partonomy.models.core.generation_host` (reading tokens behind the device),
:mod:`~partonomy.models.core.generation_reference` (recomputing loop, HF ``generate``),
:mod:`~partonomy.models.core.answer_text` (token offsets, phrase spans). Their public names are
re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from partonomy.models.core.answer_text import TextSpan, char_span, decode_with_offsets, find_phrases
from partonomy.models.core.fused_kernels import KERNEL_SETS
from partonomy.models.core.generation_batch import Generation, left_pad
from partonomy.models.core.generation_eager import EagerDecoder
from partonomy.models.core.generation_host import HOST_LAG
from partonomy.models.core.generation_reference import (
    generate_hf,
    generate_recompute,
    replay_tokens,
)
from partonomy.models.core.generation_vlm import VlmVision, generate_vlm
from partonomy.models.core.hf_lm import base_and_head
from partonomy.models.core.static_decoder import (
    BUCKET,
    DecoderKey,
    DecoderSlot,
    StaticDecoder,
    bucket,
    collect_results,
    release_decoder,
)

__all__ = [
    "BUCKET",
    "HOST_LAG",
    "DecoderKey",
    "DecoderSlot",
    "EagerDecoder",
    "Generation",
    "StaticDecoder",
    "TextSpan",
    "char_span",
    "decode_with_offsets",
    "find_phrases",
    "generate",
    "release_decoder",
]

logger = logging.getLogger(__name__)


@torch.no_grad()
def generate(
    lm: nn.Module,
    prompts: Sequence[torch.Tensor],
    pixel_values: torch.Tensor | VlmVision,
    *,
    stop_token_ids: Sequence[int],
    max_new_tokens: int = 512,
    pad_token_id: int = 0,
    use_cache: bool = True,
    return_hidden: bool = True,
    static_cache: bool = False,
    prompt_embeds: Sequence[torch.Tensor] | None = None,
    on_token: Callable[[torch.Tensor], None] | None = None,
    banned_token_ids: Sequence[int] = (),
    cuda_graphs: bool | None = None,
    fused_kernels: bool | str | None = None,
) -> list[Generation]:
    """Greedy-decode one answer per prompt.

    Args:
        lm: an HF causal LM (``LlavaForConditionalGeneration``) in eval mode.
        prompts: B int64 tensors ``(L_b,)``: each prompt up to and including ``ASSISTANT:``, with its
            image placeholder tokens.
        pixel_values: ``(B, 3, S, S)`` the LM's vision input, one image per prompt; an HF VLM
            backbone's :class:`~partonomy.models.core.generation_vlm.VlmVision` instead goes to
            :func:`~partonomy.models.core.generation_vlm.generate_vlm` (the rest of the options
            do not apply there).
        stop_token_ids: ids that end an answer (EOS, i.e. the llava_v1 ``</s>`` separator).
        max_new_tokens: at most this many tokens per answer (the stop token included).
        pad_token_id: any valid id, used for padding (masked out).
        use_cache: False recomputes the full sequence at every step (the slow reference).
        return_hidden: collect the hidden states of prompt and answer.
        static_cache: decode with HF ``generate`` over a static KV cache instead of the own loop
            (HF compiles its decoding step on a GPU: ~30-40 s once per process); the hidden
            states then come from one forward over the final sequences. Kept as a reference.
        prompt_embeds: per prompt ``(L_b, d)`` input embeddings to use instead of embedding the
            prompt ids and scattering ``pixel_values`` (models whose input encoders replace
            special tokens, e.g. GLaMM's ``<bbox>``); the own KV loop only.
        on_token: called with the ``(B,)`` int64 CPU tokens chosen at each step, in step order (a
            row that has already stopped gets ``pad_token_id``; the stop token itself is passed
            too; no call after every row has stopped), e.g. to stream an answer. On a GPU the
            calls trail the decoding by a few steps (:data:`HOST_LAG` tokens), so that reading
            the tokens never stalls the GPU. With ``static_cache`` it is called after decoding
            has finished, once per step of the longest kept answer (stop tokens not passed).
        banned_token_ids: ids never generated (their logits are -inf before the argmax): the
            image placeholder tokens, which only the processor may place (a generated ``<image>``
            would break the next forward's image-token count).
        cuda_graphs: decode over a static KV cache with the step captured in a CUDA graph
            (:class:`StaticDecoder`; None: on a CUDA device). The capture happens at the first
            call for a batch size and cache length and costs about one step; later calls of the
            same shape replay it. False: eager steps over HF's dynamic cache
            (:class:`~partonomy.models.core.generation_eager.EagerDecoder`, the lightest step
            without a graph; the default on a CPU). True on a CPU runs the static decoder's
            steps eagerly (what the graph would replay: for tests).
        fused_kernels: capture the graph with fused RMSNorm, SwiGLU and rotary kernels swapped
            in (:mod:`~partonomy.models.core.fused_kernels`; the model itself is left as it
            was): ``"liger"`` (``liger-kernel``'s), ``"compiled"`` (``torch.compile``'d
            references), None or True (the default: Liger's when installed, else the compiled
            ones), False (plain kernels). Only on a CUDA device, for a LLaMA-shaped model whose
            kernels pass a self-test; otherwise plain kernels. Graphed decoding only (called
            eagerly, the compiled kernels cost more host time than they save).

    Returns:
        One :class:`Generation` per prompt, in order.
    """
    if not prompts:
        return []
    if isinstance(pixel_values, VlmVision):  # an HF VLM backbone decodes with its own generate
        return generate_vlm(lm, pixel_values, prompts, stop_token_ids=stop_token_ids,
                            max_new_tokens=max_new_tokens, pad_token_id=pad_token_id,
                            return_hidden=return_hidden, on_token=on_token,
                            banned_token_ids=banned_token_ids)  # fmt: skip
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if prompt_embeds is not None and (static_cache or not use_cache):
        raise ValueError("prompt_embeds needs the KV-cached loop (static_cache=False, use_cache)")
    args = (lm, prompts, pixel_values, stop_token_ids, max_new_tokens, pad_token_id)
    if static_cache:
        results = generate_hf(*args, return_hidden, banned_token_ids)
        if on_token is not None:
            replay_tokens(results, on_token, pad_token_id)
        return results
    if not use_cache:
        return generate_recompute(*args, return_hidden, on_token, banned_token_ids)
    _, head = base_and_head(lm)
    weight = next(head.parameters())
    device = weight.device
    ids, mask = left_pad(prompts, pad_token_id, device)
    batch, width = ids.shape
    stops = tuple(sorted({int(t) for t in stop_token_ids}))
    banned = tuple(sorted({int(t) for t in banned_token_ids}))
    graphs = device.type == "cuda" if cuda_graphs is None else cuda_graphs
    choice = _kernel_choice(fused_kernels)  # validated on any device
    decoder: StaticDecoder | EagerDecoder | None
    if graphs:
        key = DecoderKey(
            batch=batch,
            length=bucket(width + max_new_tokens),
            stops=stops,
            banned=banned,
            pad=pad_token_id,
            weight=weight.data_ptr(),
            inference_mode=torch.is_inference_mode_enabled(),
            fused=choice if device.type == "cuda" else "",
        )
        decoder = StaticDecoder.of(lm, key)
    else:
        decoder = EagerDecoder.of(lm, stops, banned, pad_token_id)
    if decoder is None:  # a sliding-window or hybrid cache: HF knows its masks, we do not
        if prompt_embeds is not None:
            raise NotImplementedError(
                f"{type(lm).__name__}: prompt_embeds need the own loop, which supports only "
                "full-attention layers"
            )
        logger.warning("%s has sliding-window layers: generating with HF generate", type(lm))
        results = generate_hf(*args, return_hidden, banned_token_ids, "dynamic")
        if on_token is not None:
            replay_tokens(results, on_token, pad_token_id)
        return results
    if prompt_embeds is None:
        first: dict[str, Any] = {
            "input_ids": ids,
            "pixel_values": pixel_values.to(device, weight.dtype),
        }
    else:
        embeds = torch.zeros(
            (batch, width, prompt_embeds[0].shape[-1]), dtype=weight.dtype, device=device
        )
        for r, e in enumerate(prompt_embeds):  # left-padded like the ids
            embeds[r, width - e.shape[0] :] = e.to(device, weight.dtype)
        first = {"inputs_embeds": embeds}
    if fused_kernels not in (None, False) and getattr(decoder, "kernels", None) is None:
        logger.warning("fused_kernels=%r asked, but unavailable or unsuited here", fused_kernels)
    if isinstance(decoder, StaticDecoder):
        prompt_hidden = decoder.prefill(first, mask, max_new_tokens)
        tokens, steps = decoder.run(max_new_tokens, return_hidden, on_token, graphs)
    else:
        padded = len({int(p.shape[0]) for p in prompts}) > 1
        prompt_hidden = decoder.prefill(first, mask, max_new_tokens, padded)
        tokens, steps = decoder.run(max_new_tokens, return_hidden, on_token)
    answer_hidden = decoder.answer_hidden(steps) if return_hidden else None
    return collect_results(prompts, tokens, prompt_hidden, answer_hidden, stops)


def _kernel_choice(fused_kernels: bool | str | None) -> str:
    """``generate``'s ``fused_kernels`` as a :func:`~partonomy.models.core.fused_kernels.decoder_kernels`
    choice ("" for plain kernels)."""
    if fused_kernels is None or fused_kernels is True:
        return "auto"
    if fused_kernels is False:
        return ""
    if fused_kernels not in KERNEL_SETS:
        raise ValueError(
            f"fused_kernels must be a bool, None or one of {', '.join(KERNEL_SETS)}; "
            f"got {fused_kernels!r}"
        )
    return fused_kernels
