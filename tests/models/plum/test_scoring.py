"""Shared-prefix choice scoring equals one full forward per choice (HF's own loss as reference)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from partonomy.models.core import scoring
from partonomy.models.core.scoring import (
    ChoiceGroup,
    conversation_mask,
    length_buckets,
    score_groups,
    score_groups_full,
)

# The tiny LLaVA of conftest.py's ``lm`` fixture.
VOCAB = 300
IMAGE = VOCAB - 1
N_IMAGE = 16

pytestmark = pytest.mark.usefixtures("one_thread")


def _conversation(prompt_tail: list[int], answer: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """BOS, a system prompt, the image, a question, then an answer and EOS; returns ids, answer mask."""
    ids = [1, 10, 11, 12, *[IMAGE] * N_IMAGE, 20, 21, 22, *prompt_tail]
    start = len(ids)
    ids += [*answer, 2]
    mask = torch.zeros(len(ids), dtype=torch.bool)
    mask[start:] = True
    return torch.tensor(ids), mask


def _group(
    answers: list[list[int]], prompt_tail: list[int], seed: int, keep: int | None = None
) -> ChoiceGroup:
    ids, masks = zip(*(_conversation(prompt_tail, a) for a in answers), strict=True)
    pv = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(seed))
    scored = [conversation_mask(i, torch.ones_like(i), IMAGE) for i in ids]
    return ChoiceGroup(list(ids), scored, list(masks), pv, keep_hidden=keep)


def _reference(lm: LlavaForConditionalGeneration, g: ChoiceGroup, mode: str) -> list[float]:
    """HF's built-in causal-LM loss, one full forward per choice."""
    out = []
    for ids, scored, answer in zip(g.input_ids, g.scored, g.answer, strict=True):
        keep = scored if mode == "conversation" else answer
        labels = torch.where(keep, ids, torch.full_like(ids, -100))
        with torch.no_grad():
            loss = lm(
                input_ids=ids[None], pixel_values=g.pixel_values[None], labels=labels[None]
            ).loss
        out.append(float(loss))
    return out


def _groups() -> list[ChoiceGroup]:
    return [
        # choices of different lengths; two share their first answer tokens (a longer prefix)
        _group(
            [[30, 31, 32], [30, 31, 40, 41, 42], [50], [60, 61], [70, 71, 72, 73]], [5, 6], 0, 1
        ),
        # a longer question (other prefix length) in the same batch
        _group([[80], [81, 82], [83, 84, 85], [86], [87, 88]], [5, 6, 7, 8, 9], 1, 0),
        # all choices share everything but the last answer token
        _group([[90, 91, 92], [90, 91, 93], [90, 91, 94], [90, 91, 95], [90, 91, 96]], [5], 2),
    ]


@pytest.mark.parametrize("layout", ["expand", "packed"])
@pytest.mark.parametrize("mode", ["conversation", "answer"])
def test_shared_prefix_equals_per_choice_forwards(
    lm: LlavaForConditionalGeneration, mode: str, layout: str
) -> None:
    groups = _groups()
    shared = score_groups(lm, groups, image_token_id=IMAGE, layout=layout)  # type: ignore[arg-type]
    for g, s in zip(groups, shared, strict=True):
        ref = _reference(lm, g, mode)
        assert s.select(mode) == pytest.approx(ref, abs=1e-5)


def test_row_chunking_and_full_path_agree(lm: LlavaForConditionalGeneration) -> None:
    groups = _groups()
    a = score_groups(lm, groups, image_token_id=IMAGE, max_rows=3, layout="expand")
    b = score_groups_full(lm, groups, max_rows=4)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x.conversation, y.conversation, atol=1e-5, rtol=0)
        torch.testing.assert_close(x.answer, y.answer, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", ["expand", "packed"])
def test_kept_hidden_is_the_full_sequence_last_layer(
    lm: LlavaForConditionalGeneration, layout: str
) -> None:
    groups = _groups()
    shared = score_groups(lm, groups, image_token_id=IMAGE, layout=layout)  # type: ignore[arg-type]
    for gi, g in enumerate(groups[:2]):
        k = g.keep_hidden
        assert k is not None
        ids = g.input_ids[k]
        with torch.no_grad():
            out = lm(
                input_ids=ids[None], pixel_values=g.pixel_values[None], output_hidden_states=True
            )
        s = shared[gi]
        assert s.hidden is not None and s.hidden.shape == (ids.shape[0], 32)
        torch.testing.assert_close(s.hidden, out.hidden_states[-1][0], atol=1e-5, rtol=0)
    assert shared[2].hidden is None


def test_packed_layout_with_eager_attention(lm: LlavaForConditionalGeneration) -> None:
    """The packed layout's 4-D mask is additive, so eager attention reads it the same way."""
    groups = _groups()
    ref = score_groups_full(lm, groups)
    lm.set_attn_implementation("eager")
    try:
        assert lm.config.text_config._attn_implementation == "eager"
        got = score_groups(lm, groups, image_token_id=IMAGE, layout="packed")
    finally:
        lm.set_attn_implementation("sdpa")
    for x, y in zip(got, ref, strict=True):
        torch.testing.assert_close(x.conversation, y.conversation, atol=1e-5, rtol=0)


def test_scores_differ_between_choices_and_modes(lm: LlavaForConditionalGeneration) -> None:
    s = score_groups(lm, _groups()[:1], image_token_id=IMAGE)[0]
    assert len(set(s.select("conversation"))) == 5
    # the answer score averages over fewer tokens, so it moves more between choices
    conv, ans = torch.tensor(s.select("conversation")), torch.tensor(s.select("answer"))
    assert float(ans.std()) > float(conv.std())


def test_image_token_after_the_shared_prefix_is_rejected(lm: LlavaForConditionalGeneration) -> None:
    g = _group([[30], [31]], [5], 0)
    bad = ChoiceGroup(
        [g.input_ids[0], torch.cat([g.input_ids[1][:-1], torch.tensor([IMAGE, 2])])],
        [g.scored[0], torch.cat([g.scored[1], torch.tensor([True])])],
        [g.answer[0], torch.cat([g.answer[1], torch.tensor([True])])],
        g.pixel_values,
    )
    with pytest.raises(ValueError, match="image token"):
        score_groups(lm, [bad], image_token_id=IMAGE)


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["expand", "packed"])
def test_shared_prefix_on_cuda(lm: LlavaForConditionalGeneration, layout: str) -> None:
    """Same check on the GPU (fp32; sdpa picks other kernels there), and bf16 within bf16 noise."""
    groups = _groups()
    ref = score_groups_full(lm, groups)
    gpu = lm.to("cuda")
    try:
        got = score_groups(gpu, groups, image_token_id=IMAGE, layout=layout)  # type: ignore[arg-type]
        for x, y in zip(got, ref, strict=True):
            torch.testing.assert_close(x.conversation, y.conversation, atol=1e-4, rtol=0)
            torch.testing.assert_close(x.answer, y.answer, atol=1e-4, rtol=0)
        half = score_groups(gpu.to(torch.bfloat16), groups, image_token_id=IMAGE, layout=layout)  # type: ignore[arg-type]
        for x, y in zip(half, ref, strict=True):
            torch.testing.assert_close(x.conversation, y.conversation, atol=5e-2, rtol=0)
    finally:
        lm.to("cpu", torch.float32)


def test_length_buckets_by_hand() -> None:
    # one bucket 5 x 67 + 10 = 345; [20, 21, 22] and [66, 67]: 66 + 134 + 20 = 220; three: 229
    assert length_buckets([67, 20, 22, 66, 21], overhead=10) == [[1, 4, 2], [3, 0]]
    assert length_buckets([67, 20, 22, 66, 21], overhead=200) == [[1, 4, 2, 3, 0]]
    assert length_buckets([5, 5, 5], overhead=0) == [[0, 1, 2]]
    assert length_buckets([]) == []


def test_packed_rows_in_length_buckets_change_nothing(
    lm: LlavaForConditionalGeneration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no cost per forward each continuation width gets its own packed forward: the scores
    and kept hidden states are those of one forward over all rows."""
    groups = _groups()
    one = score_groups(lm, groups, image_token_id=IMAGE)
    widths: list[int] = []

    def record(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        widths.append(int(kwargs["inputs_embeds"].shape[1]))

    monkeypatch.setattr(scoring, "UNIT_OVERHEAD_TOKENS", 0)
    hook = lm.model.language_model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        split = score_groups(lm, groups, image_token_id=IMAGE)
    finally:
        hook.remove()
    assert len(widths) == 1 + 3  # the prefixes, then one forward per distinct continuation width
    for x, y in zip(split, one, strict=True):
        torch.testing.assert_close(x.conversation, y.conversation, atol=1e-5, rtol=0)
        torch.testing.assert_close(x.answer, y.answer, atol=1e-5, rtol=0)
        if y.hidden is not None:
            assert x.hidden is not None
            torch.testing.assert_close(x.hidden, y.hidden, atol=1e-5, rtol=0)
