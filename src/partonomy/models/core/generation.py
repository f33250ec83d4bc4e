"""Greedy generation with a KV cache, collecting the last-layer hidden states as it goes.

The original PLUM sets ``use_cache=False`` and so recomputes the whole sequence at every new token.
Here the prompt (image included) is prefilled once and each step feeds one token per row over the
cache; the hidden state of each fed token is kept, so the span tagger gets the full sequence's
hidden states without another forward. ``use_cache=False`` keeps the recomputing loop as the
reference (tests check both give the same tokens) and then runs one forward for the hidden states.

Batching: prompts of different lengths are left-padded, with explicit position ids so each row sees
the positions it would have alone. Decoding is greedy (the original's ``num_beams=1``, no sampling);
ties go to the lowest token id (``argmax``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from partonomy.models.core.scoring import base_and_head, cache_kwargs, output_cache


@dataclass(eq=False)
class Generation:
    """One generated answer.

    Attributes:
        prompt_length: number of prompt tokens (image placeholders included).
        sequence: ``(prompt_length + n,)`` int64: the prompt then the ``n`` generated tokens, the
            stop token excluded.
        hidden: ``(prompt_length + n, d)`` last-layer hidden states (after the final norm) of
            ``sequence``, model dtype, or None when not requested.
        stopped: True if a stop token ended it, False if ``max_new_tokens`` did.
    """

    prompt_length: int
    sequence: torch.Tensor
    hidden: torch.Tensor | None
    stopped: bool

    @property
    def new_tokens(self) -> torch.Tensor:
        """``(n,)`` the generated tokens, stop token excluded."""
        return self.sequence[self.prompt_length :]


def _left_pad(
    prompts: Sequence[torch.Tensor], pad_token_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(int(p.shape[0]) for p in prompts)
    ids = torch.full((len(prompts), n), pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), n), dtype=torch.long, device=device)
    for r, p in enumerate(prompts):
        ids[r, n - p.shape[0] :] = p.to(device)
        mask[r, n - p.shape[0] :] = 1
    return ids, mask


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token (pads get 0)."""
    return (mask.cumsum(1) - 1).clamp(min=0)


@torch.no_grad()
def generate(
    lm: nn.Module,
    prompts: Sequence[torch.Tensor],
    pixel_values: torch.Tensor,
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
) -> list[Generation]:
    """Greedy-decode one answer per prompt.

    Args:
        lm: an HF causal LM (``LlavaForConditionalGeneration``) in eval mode.
        prompts: B int64 tensors ``(L_b,)``: each prompt up to and including ``ASSISTANT:``, with its
            image placeholder tokens.
        pixel_values: ``(B, 3, S, S)`` the LM's vision input, one image per prompt.
        stop_token_ids: ids that end an answer (EOS, i.e. the llava_v1 ``</s>`` separator).
        max_new_tokens: at most this many tokens per answer (the stop token included).
        pad_token_id: any valid id, used for padding (masked out).
        use_cache: False recomputes the full sequence at every step (the slow reference).
        return_hidden: collect the hidden states of prompt and answer.
        static_cache: decode with HF ``generate`` over a static KV cache instead of the own loop;
            on a GPU HF then compiles the decoding step with CUDA graphs (one compile of ~30 s
            for a 7B model, then ~3x the tokens/s at batch 1), and the hidden states come from
            one forward over the final sequences. Same tokens as the loop up to kernel numerics.
        prompt_embeds: per prompt ``(L_b, d)`` input embeddings to use instead of embedding the
            prompt ids and scattering ``pixel_values`` (models whose input encoders replace
            special tokens, e.g. GLaMM's ``<bbox>``); the own KV loop only.
        on_token: called after each decoding step with the ``(B,)`` int64 tokens chosen at that
            step (a row that has already stopped gets ``pad_token_id``; the stop token itself is
            passed too), e.g. to stream an answer. With ``static_cache`` it is called after
            decoding has finished, once per step of the longest kept answer (stop tokens are not
            passed; rows already done get ``pad_token_id``). None: no callback, no host sync.
        banned_token_ids: ids never generated (their logits are -inf before the argmax): the
            image placeholder tokens, which only the processor may place (a generated ``<image>``
            would break the next forward's image-token count).

    Returns:
        One :class:`Generation` per prompt, in order.
    """
    if not prompts:
        return []
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if prompt_embeds is not None and (static_cache or not use_cache):
        raise ValueError("prompt_embeds needs the KV-cached loop (static_cache=False, use_cache)")
    if static_cache:
        results = _generate_static(
            lm,
            prompts,
            pixel_values,
            stop_token_ids,
            max_new_tokens,
            pad_token_id,
            return_hidden,
            banned_token_ids,
        )
        if on_token is not None:
            steps = max(int(r.new_tokens.shape[0]) for r in results)
            for t in range(steps):
                on_token(
                    torch.tensor(
                        [
                            int(r.new_tokens[t]) if t < r.new_tokens.shape[0] else pad_token_id
                            for r in results
                        ]
                    )
                )
        return results
    base, head = base_and_head(lm)
    weight = next(head.parameters())
    device = weight.device
    pixel_values = pixel_values.to(device, weight.dtype)
    ids, mask = _left_pad(prompts, pad_token_id, device)
    batch, width = ids.shape
    stops = torch.tensor(sorted(set(stop_token_ids)), device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    stopped = torch.zeros(batch, dtype=torch.bool, device=device)
    # generated tokens kept per row (stop token excluded), on the device: no host sync per step
    kept = torch.full((batch,), max_new_tokens, dtype=torch.long, device=device)
    new: list[torch.Tensor] = []  # each (B,): the token of every row at that step
    step_hidden: list[torch.Tensor] = []  # each (B, 1, d): hidden state of the token fed

    if prompt_embeds is None:
        first: dict[str, Any] = {"input_ids": ids, "pixel_values": pixel_values}
    else:
        embeds = torch.zeros(
            (batch, width, prompt_embeds[0].shape[-1]), dtype=weight.dtype, device=device
        )
        for r, e in enumerate(prompt_embeds):  # left-padded like the ids
            embeds[r, width - e.shape[0] :] = e.to(device, weight.dtype)
        first = {"inputs_embeds": embeds}
    out = base(
        **first,
        attention_mask=mask,
        position_ids=_positions(mask),
        use_cache=use_cache,
    )
    prompt_hidden, cache = out.last_hidden_state, output_cache(out) if use_cache else None
    last = prompt_hidden[:, -1]
    banned = sorted({int(t) for t in banned_token_ids})
    for _step in range(max_new_tokens):
        logits = head(last)
        if banned:
            logits[:, banned] = float("-inf")
        token = logits.argmax(-1)
        token = torch.where(done, torch.full_like(token, pad_token_id), token)
        hit = torch.isin(token, stops) & ~done
        kept = torch.where(hit, len(new), kept)
        stopped |= hit
        done |= hit
        new.append(token)
        if on_token is not None:
            on_token(token)
        if bool(done.all()) or len(new) == max_new_tokens:
            break
        # Finished rows keep feeding (masked) pads so the batch stays rectangular.
        mask = torch.cat([mask, (~done).long()[:, None]], 1)
        if use_cache:
            out = base(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=_positions(mask)[:, -1:],
                use_cache=True,
                **cache_kwargs(base, cache),
            )
            cache = output_cache(out)
            step_hidden.append(out.last_hidden_state)
        else:
            out = base(
                input_ids=torch.cat([ids, torch.stack(new, 1)], 1),
                pixel_values=pixel_values,
                attention_mask=mask,
                position_ids=_positions(mask),
            )
        last = out.last_hidden_state[:, -1]

    tokens = torch.stack(new, 1)  # (B, T)
    lengths = kept.tolist()
    hidden = None
    if return_hidden:
        if use_cache:
            # Rows cut by max_new_tokens still need their last token's hidden state: one more step.
            pending = [r for r in range(batch) if not bool(stopped[r])]
            parts = [prompt_hidden, *step_hidden]
            if pending and len(step_hidden) < tokens.shape[1]:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
                out = base(
                    input_ids=tokens[:, -1:],
                    attention_mask=mask,
                    position_ids=_positions(mask)[:, -1:],
                    use_cache=True,
                    **cache_kwargs(base, cache),
                )
                parts.append(out.last_hidden_state)
            hidden = torch.cat(parts, 1)
        else:
            full = torch.cat([ids, tokens], 1)
            full_mask = torch.cat([mask, torch.ones_like(tokens)], 1)[:, : full.shape[1]]
            hidden = base(
                input_ids=full,
                pixel_values=pixel_values,
                attention_mask=full_mask,
                position_ids=_positions(full_mask),
            ).last_hidden_state
    results = []
    for r, p in enumerate(prompts):
        plen, n = int(p.shape[0]), lengths[r]
        seq = torch.cat([p.to(device), tokens[r, :n]])
        h = None if hidden is None else hidden[r, width - plen : width + n]
        results.append(Generation(plen, seq, h, bool(stopped[r])))
    return results


def _generate_static(
    lm: nn.Module,
    prompts: Sequence[torch.Tensor],
    pixel_values: torch.Tensor,
    stop_token_ids: Sequence[int],
    max_new_tokens: int,
    pad_token_id: int,
    return_hidden: bool,
    banned_token_ids: Sequence[int] = (),
) -> list[Generation]:
    """:func:`generate` through HF ``generate(cache_implementation="static")``."""
    base, head = base_and_head(lm)
    weight = next(head.parameters())
    device = weight.device
    pixel_values = pixel_values.to(device, weight.dtype)
    ids, mask = _left_pad(prompts, pad_token_id, device)
    width = ids.shape[1]
    out = lm.generate(  # type: ignore[operator]
        input_ids=ids,
        attention_mask=mask,
        pixel_values=pixel_values,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=list(stop_token_ids),
        pad_token_id=pad_token_id,
        cache_implementation="static",
        suppress_tokens=sorted({int(t) for t in banned_token_ids}) or None,
    )
    new = out[:, width:].cpu()
    stops = set(int(t) for t in stop_token_ids)
    results: list[Generation] = []
    kept: list[tuple[torch.Tensor, bool]] = []
    for row in new:
        tokens = row.tolist()
        cut = next((i for i, t in enumerate(tokens) if t in stops), None)
        kept.append((row[: len(tokens) if cut is None else cut], cut is not None))
    hidden = None
    if return_hidden:
        full = [torch.cat([p.cpu(), k]) for p, (k, _) in zip(prompts, kept, strict=True)]
        full_ids, full_mask = _left_pad(full, pad_token_id, device)
        hidden = base(
            input_ids=full_ids,
            pixel_values=pixel_values,
            attention_mask=full_mask,
            position_ids=_positions(full_mask),
        ).last_hidden_state
    for r, (p, (k, stopped)) in enumerate(zip(prompts, kept, strict=True)):
        seq = torch.cat([p.to(device), k.to(device)])
        h = None if hidden is None else hidden[r, hidden.shape[1] - seq.numel() :]
        results.append(Generation(int(p.shape[0]), seq, h, stopped))
    return results


# ------------------------------------------------------------------------- answer text and spans
@dataclass(frozen=True)
class TextSpan:
    """A span of answer tokens and the characters it covers.

    Attributes:
        tokens: indices into the answer's token list, ascending and contiguous.
        start, end: character offsets into the answer text, end exclusive, whitespace trimmed.
    """

    tokens: tuple[int, ...]
    start: int
    end: int


def decode_with_offsets(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decode ``ids`` and give each token the character range it adds to the text.

    Uses incremental decoding (the text of ``ids[:k + 1]`` minus that of ``ids[:k]``), so it is
    exact for any tokenizer whose decoding is prefix-stable, SentencePiece's word-start spaces
    included. Special tokens are skipped (they cover an empty range). A token that completes a
    multi-byte character started by earlier byte tokens may shift the range; ranges are clamped to
    stay monotonic.

    Returns:
        ``(text, offsets)`` with ``offsets[k] = (start, end)`` into ``text``.
    """
    offsets: list[tuple[int, int]] = []
    previous = 0
    text = ""
    for k in range(len(ids)):
        text = tokenizer.decode(list(ids[: k + 1]), skip_special_tokens=True)
        end = max(previous, len(text))
        offsets.append((previous, end))
        previous = end
    return text, offsets


def char_span(text: str, offsets: Sequence[tuple[int, int]], tokens: Sequence[int]) -> TextSpan:
    """The :class:`TextSpan` of answer tokens ``tokens``, leading/trailing whitespace trimmed."""
    start, end = offsets[tokens[0]][0], offsets[tokens[-1]][1]
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return TextSpan(tuple(tokens), start, end)


def find_phrases(
    text: str, offsets: Sequence[tuple[int, int]], phrases: Sequence[str]
) -> list[TextSpan]:
    """Highlight-to-segment: every occurrence of each phrase in the answer, as token spans.

    Matching is on characters, case-insensitive, whole words only (the characters on either side
    of a match may not be letters or digits), longest phrase first; a match that overlaps an
    earlier one (in characters or in tokens) is skipped, as BIO tags cannot express overlaps. A
    match covers every token whose character range overlaps it, so a phrase that starts or ends
    inside a token takes that whole token. Empty phrases are ignored.

    Returns:
        The spans in token order (a phrase that is not found contributes none).
    """
    lowered = text.lower()
    taken = [False] * len(text)
    used: set[int] = set()  # tokens already in a span
    found: list[TextSpan] = []
    for phrase in sorted({p.strip() for p in phrases if p.strip()}, key=lambda p: -len(p)):
        needle = phrase.lower()
        at = lowered.find(needle)
        while at >= 0:
            end = at + len(needle)
            whole = (at == 0 or not text[at - 1].isalnum()) and (
                end == len(text) or not text[end].isalnum()
            )
            tokens = [k for k, (s, e) in enumerate(offsets) if s < end and e > at and e > s]
            if whole and tokens and not any(taken[at:end]) and not used & set(tokens):
                taken[at:end] = [True] * (end - at)
                used.update(tokens)
                found.append(TextSpan(tuple(tokens), at, end))
            at = lowered.find(needle, at + 1)
    return sorted(found, key=lambda s: s.tokens[0])
