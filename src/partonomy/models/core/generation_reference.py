"""The reference decoding paths: a loop that recomputes the whole sequence at every token (no
cache, the original PLUM's ``use_cache=False``) and HF ``generate`` (a static or dynamic cache).
Tests check that the default path (:mod:`~partonomy.models.core.static_decoder`) gives the same
tokens as these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from partonomy.models.core.generation_batch import Generation, left_pad, positions
from partonomy.models.core.hf_lm import base_and_head


def replay_tokens(
    results: Sequence[Generation], on_token: Callable[[torch.Tensor], None], pad_token_id: int
) -> None:
    """``on_token`` once per step of the longest answer, after the fact (HF ``generate`` paths)."""
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


def generate_recompute(
    lm: nn.Module,
    prompts: Sequence[torch.Tensor],
    pixel_values: torch.Tensor,
    stop_token_ids: Sequence[int],
    max_new_tokens: int,
    pad_token_id: int,
    return_hidden: bool,
    on_token: Callable[[torch.Tensor], None] | None,
    banned_token_ids: Sequence[int],
) -> list[Generation]:
    """The reference: a full forward over prompt + answer so far at every step, no cache.

    A finished row keeps receiving pads; they come after its stop token, so no kept position
    attends to them (causal attention) and they are left unmasked.
    """
    base, head = base_and_head(lm)
    weight = next(head.parameters())
    device = weight.device
    pixel_values = pixel_values.to(device, weight.dtype)
    ids, mask = left_pad(prompts, pad_token_id, device)
    width = ids.shape[1]
    stops = torch.tensor(sorted({int(t) for t in stop_token_ids}), device=device)
    banned = sorted({int(t) for t in banned_token_ids})
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    tokens = ids[:, :0]

    def forward() -> torch.Tensor:
        seq_mask = torch.cat([mask, torch.ones_like(tokens)], 1)
        return base(
            input_ids=torch.cat([ids, tokens], 1),
            pixel_values=pixel_values,
            attention_mask=seq_mask,
            position_ids=positions(seq_mask),
        ).last_hidden_state

    for _step in range(max_new_tokens):
        logits = head(forward()[:, -1])
        if banned:
            logits[:, banned] = float("-inf")
        token = torch.where(done, pad_token_id, logits.argmax(-1))
        done |= torch.isin(token, stops)
        tokens = torch.cat([tokens, token[:, None]], 1)
        if on_token is not None:
            on_token(token.cpu())
        if bool(done.all()):
            break
    hidden = forward() if return_hidden else None
    results = []
    for r, p in enumerate(prompts):
        row = tokens[r].tolist()
        cut = next((i for i, t in enumerate(row) if t in stops.tolist()), None)
        n = len(row) if cut is None else cut
        plen = int(p.shape[0])
        seq = torch.cat([p.to(device), tokens[r, :n]])
        h = None if hidden is None else hidden[r, width - plen : width + n]
        results.append(Generation(plen, seq, h, cut is not None))
    return results


def generate_hf(
    lm: nn.Module,
    prompts: Sequence[torch.Tensor],
    pixel_values: torch.Tensor,
    stop_token_ids: Sequence[int],
    max_new_tokens: int,
    pad_token_id: int,
    return_hidden: bool,
    banned_token_ids: Sequence[int] = (),
    cache_implementation: str = "static",
) -> list[Generation]:
    """:func:`generate` through HF ``generate`` (a static KV cache unless told otherwise)."""
    base, head = base_and_head(lm)
    weight = next(head.parameters())
    device = weight.device
    pixel_values = pixel_values.to(device, weight.dtype)
    ids, mask = left_pad(prompts, pad_token_id, device)
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
        cache_implementation=cache_implementation,
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
        full_ids, full_mask = left_pad(full, pad_token_id, device)
        hidden = base(
            input_ids=full_ids,
            pixel_values=pixel_values,
            attention_mask=full_mask,
            position_ids=positions(full_mask),
        ).last_hidden_state
    for r, (p, (k, stopped)) in enumerate(zip(prompts, kept, strict=True)):
        seq = torch.cat([p.to(device), k.to(device)])
        h = None if hidden is None else hidden[r, hidden.shape[1] - seq.numel() :]
        results.append(Generation(int(p.shape[0]), seq, h, stopped))
    return results
