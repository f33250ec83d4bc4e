"""KV-cached greedy generation gives the same tokens and hidden states as recomputing everything."""

from __future__ import annotations

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from partonomy.models.core.generation import generate

# The tiny LLaVA of conftest.py's ``lm`` fixture.
VOCAB = 300
IMAGE = VOCAB - 1
N_IMAGE = 16
HIDDEN = 32

pytestmark = pytest.mark.usefixtures("one_thread")


def _prompts() -> tuple[list[torch.Tensor], torch.Tensor]:
    heads = [[1, 10, 11], [1, 12], [1, 13, 14, 15, 16, 17]]
    tails = [[20, 21, 22], [23], [24, 25]]
    prompts = [
        torch.tensor([*h, *[IMAGE] * N_IMAGE, *t]) for h, t in zip(heads, tails, strict=True)
    ]
    pv = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    return prompts, pv


def test_cached_equals_uncached(lm: LlavaForConditionalGeneration) -> None:
    prompts, pv = _prompts()
    cached = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=10)
    slow = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=10, use_cache=False)
    for a, b in zip(cached, slow, strict=True):
        assert a.sequence.tolist() == b.sequence.tolist()
        assert a.new_tokens.numel() == 10 and not a.stopped
        assert a.hidden is not None and b.hidden is not None
        torch.testing.assert_close(a.hidden, b.hidden, atol=1e-5, rtol=0)


def test_batched_equals_one_at_a_time_and_a_plain_forward(
    lm: LlavaForConditionalGeneration,
) -> None:
    prompts, pv = _prompts()
    batched = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=6)
    for r, p in enumerate(prompts):
        alone = generate(lm, [p], pv[r : r + 1], stop_token_ids=[2], max_new_tokens=6)[0]
        assert alone.sequence.tolist() == batched[r].sequence.tolist()
        # the kept hidden states are those of one full forward over the final sequence
        with torch.no_grad():
            ref = lm(
                input_ids=alone.sequence[None],
                pixel_values=pv[r : r + 1],
                output_hidden_states=True,
            )
        assert batched[r].hidden is not None
        assert batched[r].hidden.shape == (alone.sequence.numel(), HIDDEN)
        torch.testing.assert_close(batched[r].hidden, ref.hidden_states[-1][0], atol=1e-5, rtol=0)
        # greedy: every generated token is the argmax after the tokens before it
        assert ref.logits[0, p.numel() - 1 : -1].argmax(-1).tolist() == alone.new_tokens.tolist()


def test_stop_token_ends_one_row_and_is_dropped(lm: LlavaForConditionalGeneration) -> None:
    prompts, pv = _prompts()
    free = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=8)
    stop = int(free[0].new_tokens[3])  # row 0's 4th token becomes the stop token
    first = free[0].new_tokens.tolist().index(stop)
    for use_cache in (True, False):
        out = generate(
            lm, prompts, pv, stop_token_ids=[stop], max_new_tokens=8, use_cache=use_cache
        )
        assert out[0].stopped and out[0].new_tokens.tolist() == free[0].new_tokens[:first].tolist()
        assert out[0].hidden is not None and out[0].hidden.shape[0] == out[0].sequence.numel()
        for r in (1, 2):  # the other rows go on unchanged until their own stop
            ref = free[r].new_tokens.tolist()
            cut = ref.index(stop) if stop in ref else len(ref)
            assert out[r].new_tokens.tolist() == ref[:cut]


def test_cached_steps_feed_one_token(lm: LlavaForConditionalGeneration) -> None:
    prompts, pv = _prompts()
    widths: list[int] = []
    embed = lm.get_input_embeddings()
    handle = embed.register_forward_hook(lambda _m, args, _o: widths.append(args[0].shape[1]))
    try:
        generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=5)
    finally:
        handle.remove()
    longest = max(p.numel() for p in prompts)
    # prefill once, then one token per step (4 steps, and 1 for the last token's hidden state)
    assert widths == [longest, 1, 1, 1, 1, 1]


def test_bad_max_new_tokens(lm: LlavaForConditionalGeneration) -> None:
    prompts, pv = _prompts()
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=0)


def test_static_cache_path_equals_the_loop(lm: LlavaForConditionalGeneration) -> None:
    """HF generate over a static cache (compiled on GPU) gives the loop's tokens and hidden states."""
    prompts, pv = _prompts()
    loop = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=7)
    stop = int(loop[1].new_tokens[2])  # end one row early, the others run to the limit
    loop = generate(lm, prompts, pv, stop_token_ids=[stop], max_new_tokens=7)
    static = generate(lm, prompts, pv, stop_token_ids=[stop], max_new_tokens=7, static_cache=True)
    for a, b in zip(loop, static, strict=True):
        assert a.sequence.tolist() == b.sequence.tolist() and a.stopped == b.stopped
        assert a.hidden is not None and b.hidden is not None
        torch.testing.assert_close(a.hidden, b.hidden, atol=1e-5, rtol=0)
    assert static[1].stopped
