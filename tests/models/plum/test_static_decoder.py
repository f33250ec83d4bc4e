"""The static-cache decoder behind ``generate``: reuse across calls, copies, banned ids, and (on a
GPU) the CUDA-graph replay giving the eager loop's tokens. On a CPU, ``cuda_graphs=True`` runs the
static decoder's steps eagerly (what a graph would replay)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from partonomy.models.core.generation import (
    BUCKET,
    DecoderSlot,
    StaticDecoder,
    generate,
    release_decoder,
)

IMAGE, N_IMAGE = 299, 16  # the tiny LLaVA of conftest.py's ``lm``

pytestmark = pytest.mark.usefixtures("one_thread")


def _prompts(n: int = 3) -> tuple[list[torch.Tensor], torch.Tensor]:
    heads = [[1, 10, 11], [1, 12], [1, 13, 14, 15, 16, 17]][:n]
    prompts = [torch.tensor([*h, *[IMAGE] * N_IMAGE, 20 + i]) for i, h in enumerate(heads)]
    return prompts, torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def _decoder(lm: torch.nn.Module) -> StaticDecoder | None:
    slot = lm.__dict__.get(DecoderSlot.ATTRIBUTE)
    return slot.decoder if isinstance(slot, DecoderSlot) else None


def test_decoder_is_reused_and_results_do_not_depend_on_history(
    lm: LlavaForConditionalGeneration,
) -> None:
    prompts, pv = _prompts()
    first = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=6, cuda_graphs=True)
    decoder = _decoder(lm)
    assert decoder is not None and decoder.key.length == BUCKET  # 27 + 6 positions, one bucket
    # a shorter call of the same shape reuses the cache (it is reset, not reallocated) ...
    generate(lm, prompts[:1] * 3, pv, stop_token_ids=[2], max_new_tokens=3, cuda_graphs=True)
    assert _decoder(lm) is decoder
    again = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=6, cuda_graphs=True)
    assert _decoder(lm) is decoder
    for a, b in zip(first, again, strict=True):  # ... and leaves nothing behind
        assert a.sequence.tolist() == b.sequence.tolist()
        assert a.hidden is not None and b.hidden is not None
        torch.testing.assert_close(a.hidden, b.hidden, atol=0, rtol=0)
    # another batch size gets its own decoder, which replaces the old one
    alone = generate(
        lm, prompts[:1], pv[:1], stop_token_ids=[2], max_new_tokens=6, cuda_graphs=True
    )[0]
    assert _decoder(lm) is not decoder and alone.sequence.tolist() == first[0].sequence.tolist()
    release_decoder(lm)
    assert _decoder(lm) is None


def test_copies_of_the_model_start_without_a_decoder(lm: LlavaForConditionalGeneration) -> None:
    prompts, pv = _prompts(1)
    out = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=4, cuda_graphs=True)[0]
    assert _decoder(lm) is not None
    twin = copy.deepcopy(lm)
    assert _decoder(twin) is None
    slot = pickle.loads(pickle.dumps(lm.__dict__[DecoderSlot.ATTRIBUTE]))
    assert isinstance(slot, DecoderSlot) and slot.decoder is None
    again = generate(twin, prompts, pv, stop_token_ids=[2], max_new_tokens=4, cuda_graphs=True)
    assert again[0].sequence.tolist() == out.sequence.tolist()


@pytest.mark.parametrize("static", [True, False], ids=["static_steps", "eager_loop"])
def test_banned_ids_are_never_generated(lm: LlavaForConditionalGeneration, static: bool) -> None:
    prompts, pv = _prompts()
    free = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=6, cuda_graphs=static)
    banned = sorted({int(t) for g in free for t in g.new_tokens})
    out = generate(
        lm, prompts, pv, stop_token_ids=[2], max_new_tokens=6, banned_token_ids=banned,
        cuda_graphs=static,
    )  # fmt: skip
    ref = generate(
        lm, prompts, pv, stop_token_ids=[2], max_new_tokens=6, banned_token_ids=banned,
        use_cache=False,
    )  # fmt: skip
    for a, b in zip(out, ref, strict=True):
        assert not set(a.new_tokens.tolist()) & set(banned)
        assert a.sequence.tolist() == b.sequence.tolist()


@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager_steps(lm: LlavaForConditionalGeneration) -> None:
    gpu = copy.deepcopy(lm).to("cuda")
    prompts, pv = _prompts()
    eager = generate(gpu, prompts, pv, stop_token_ids=[2], max_new_tokens=12, cuda_graphs=False)
    stop = int(eager[1].new_tokens[4])  # one row stops early, the others run to the limit
    eager = generate(gpu, prompts, pv, stop_token_ids=[stop], max_new_tokens=12, cuda_graphs=False)
    steps: list[list[int]] = []
    for _ in range(2):  # the first call captures, the second replays the kept graph
        steps.clear()
        graphed = generate(
            gpu, prompts, pv, stop_token_ids=[stop], max_new_tokens=12, cuda_graphs=True,
            on_token=lambda t: steps.append(t.tolist()),
        )  # fmt: skip
        decoder = _decoder(gpu)
        assert decoder is not None and decoder.graph is not None
        for a, b in zip(eager, graphed, strict=True):
            assert a.sequence.tolist() == b.sequence.tolist() and a.stopped == b.stopped
            assert a.hidden is not None and b.hidden is not None
            torch.testing.assert_close(a.hidden, b.hidden, atol=1e-5, rtol=1e-5)
        assert len(steps) == 12
        assert [s[1] for s in steps[:5]] == [*eager[1].new_tokens.tolist(), stop]
