"""The own loop's eager steps (dynamic cache, no CUDA graph; the default on a CPU): the tokens of HF
``generate``, the static decoder's tokens and hidden states, and fewer operators per step than
either (the CPU-checkable side of issue 12's "own loop never slower than HF generate")."""

from __future__ import annotations

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from partonomy.models.core.generation import generate
from partonomy.models.core.generation_ops import ops_per_step

IMAGE, N_IMAGE = 299, 16  # the tiny LLaVA of conftest.py's ``lm``

pytestmark = pytest.mark.usefixtures("one_thread")


def _prompts(n: int = 3) -> tuple[list[torch.Tensor], torch.Tensor]:
    heads = [[1, 10, 11], [1, 12], [1, 13, 14, 15, 16, 17]][:n]
    prompts = [torch.tensor([*h, *[IMAGE] * N_IMAGE, 30 + i]) for i, h in enumerate(heads)]
    return prompts, torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(5))


def _hf_generate(
    lm: LlavaForConditionalGeneration, prompts: list[torch.Tensor], pv: torch.Tensor, n: int
) -> torch.Tensor:
    """HF ``generate``'s greedy ``(B, n)`` new tokens, its dynamic cache, left padding."""
    width = max(p.numel() for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - p.numel() :], mask[r, width - p.numel() :] = p, 1
    out = lm.generate(
        input_ids=ids, attention_mask=mask, pixel_values=pv, max_new_tokens=n,
        min_new_tokens=n, do_sample=False, num_beams=1, pad_token_id=0,
        suppress_tokens=[IMAGE],
    )  # fmt: skip
    return out[:, width:]


@pytest.mark.parametrize("batch", [1, 3])
def test_eager_loop_gives_hf_generate_tokens(lm: LlavaForConditionalGeneration, batch: int) -> None:
    prompts, pv = _prompts(batch)
    ours = generate(
        lm, prompts, pv, stop_token_ids=[-1], max_new_tokens=8, cuda_graphs=False,
        banned_token_ids=[IMAGE],
    )  # fmt: skip
    hf = _hf_generate(lm, prompts, pv, 8)
    assert [g.new_tokens.tolist() for g in ours] == hf.tolist()


def test_eager_loop_equals_the_static_decoder_steps(lm: LlavaForConditionalGeneration) -> None:
    """Same tokens, stops, stream and hidden states as the static decoder's steps (what its CUDA
    graph replays), with one row stopping early while the others run to the limit."""
    prompts, pv = _prompts()
    free = generate(lm, prompts, pv, stop_token_ids=[-1], max_new_tokens=9, cuda_graphs=False)
    stop = int(free[1].new_tokens[3])
    runs = {}
    for static in (False, True):
        steps: list[list[int]] = []
        out = generate(
            lm, prompts, pv, stop_token_ids=[stop], max_new_tokens=9, cuda_graphs=static,
            on_token=lambda t, s=steps: s.append(t.tolist()),
        )  # fmt: skip
        runs[static] = (out, steps)
    (eager, eager_steps), (static_out, static_steps) = runs[False], runs[True]
    assert eager[1].stopped and eager[1].new_tokens.numel() <= 3
    assert eager_steps == static_steps
    for a, b in zip(eager, static_out, strict=True):
        assert a.sequence.tolist() == b.sequence.tolist() and a.stopped == b.stopped
        assert a.hidden is not None and b.hidden is not None
        torch.testing.assert_close(a.hidden, b.hidden, atol=1e-5, rtol=0)
    # the finished row streams its stop token, then pads
    after = [s[1] for s in eager_steps[eager[1].new_tokens.numel() :]]
    assert after[0] == stop and set(after[1:]) <= {0}


def test_eager_step_dispatches_fewer_operators_than_hf_generate(
    lm: LlavaForConditionalGeneration,
) -> None:
    """Per decoding step: fewer non-view operators (GPU kernel launches) than HF ``generate``'s
    step and than the static decoder's steps run eagerly; same model, same prompt."""
    prompts, pv = _prompts(1)

    def ours(static: bool) -> object:
        return lambda n: generate(
            lm, prompts, pv, stop_token_ids=[-1], max_new_tokens=n, cuda_graphs=static,
            banned_token_ids=[IMAGE],
        )  # fmt: skip

    eager = ops_per_step(ours(False))
    static = ops_per_step(ours(True))
    hf = ops_per_step(lambda n: _hf_generate(lm, prompts, pv, n))
    assert eager.kernels < hf.kernels and eager.kernels < static.kernels
    assert eager.total < hf.total
