"""Streaming: generate()'s per-step on_token callback and SegPredictor's on_token (text so far).

The callbacks only observe: the tokens, text, spans and masks are those of a run without them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LlavaForConditionalGeneration

from partonomy.models.core.generation import generate
from partonomy.models.core.loading import build_predictor
from partonomy.models.core.predictor import SegPredictor

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

IMAGE_TOKEN, N_IMAGE = 299, 16  # the tiny LLaVA of conftest.py's ``lm``


def test_generate_calls_on_token_once_per_step(lm: LlavaForConditionalGeneration) -> None:
    prompts = [
        torch.tensor([1, 10, *[IMAGE_TOKEN] * N_IMAGE, 20]),
        torch.tensor([1, *[IMAGE_TOKEN] * N_IMAGE, 23]),
    ]
    pv = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = generate(lm, prompts, pv, stop_token_ids=[2], max_new_tokens=6)
    steps: list[list[int]] = []
    streamed = generate(
        lm,
        prompts,
        pv,
        stop_token_ids=[2],
        max_new_tokens=6,
        on_token=lambda t: steps.append(t.tolist()),
    )
    assert len(steps) == 6 and all(len(s) == 2 for s in steps)
    for row, (a, b) in enumerate(zip(plain, streamed, strict=True)):
        assert a.sequence.tolist() == b.sequence.tolist()
        assert [s[row] for s in steps] == a.new_tokens.tolist()


@pytest.fixture(scope="module")
def predictor(one_thread: None) -> SegPredictor:
    return build_predictor("plum", device="cpu", dtype="float32", max_new_tokens=10)


def test_answer_streams_the_text_so_far(predictor: SegPredictor) -> None:
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    question = "What parts of the airplane are visible?"
    plain = predictor.answer(image, question)
    texts: list[str] = []
    streamed = predictor.answer(image, question, on_token=texts.append)
    assert streamed.text == plain.text and streamed.spans == plain.spans
    assert all(np.array_equal(a, b) for a, b in zip(plain.masks, streamed.masks, strict=True))
    assert texts and texts[-1] == plain.text
    assert all(plain.text.startswith(t.rstrip()) for t in texts)  # each a prefix of the answer


def test_static_cache_path_replays_the_tokens(lm: LlavaForConditionalGeneration) -> None:
    prompts = [torch.tensor([1, 10, *[IMAGE_TOKEN] * N_IMAGE, 20])]
    pv = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    steps: list[int] = []
    out = generate(
        lm,
        prompts,
        pv,
        stop_token_ids=[2],
        max_new_tokens=5,
        static_cache=True,
        on_token=lambda t: steps.append(int(t[0])),
    )
    assert steps == out[0].new_tokens.tolist()
