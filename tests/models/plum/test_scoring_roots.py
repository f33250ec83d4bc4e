"""Groups of one image share their root (system prompt + image) in scoring: the scores and kept
hidden states equal one full forward per choice, as without sharing."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from partonomy.models.core import scoring_prefix
from partonomy.models.core.scoring import ChoiceGroup, score_groups, score_groups_full

from .test_scoring import IMAGE, _group

pytestmark = pytest.mark.usefixtures("one_thread")


def _shared_groups() -> list[ChoiceGroup]:
    """A part_to_whole-like pair on image A (the object question's prefix is the part question's
    correct conversation plus a follow-up question), a lone group on image B, and a group on A
    whose prefix ends where the root does (its rest is empty)."""
    part = _group([[30, 31], [32], [33, 34, 35], [36], [37, 38]], [5, 6], 0, keep=2)
    follow = [int(t) for t in part.input_ids[2][-6:]]  # the correct answer, then a new question
    obj = _group([[40], [41, 42], [43], [44], [45, 46]], [5, 6, *follow, 7, 8], 0)
    other = _group([[50], [51], [52, 53], [54], [55]], [9], 1, keep=0)
    short = _group([[60], [61], [62], [63], [64]], [], 0)
    keyed = [
        dataclasses.replace(part, share_key="A"),
        dataclasses.replace(obj, share_key="A"),
        dataclasses.replace(other, share_key="B"),
        dataclasses.replace(short, share_key="A"),
    ]
    return keyed


@pytest.mark.parametrize("layout", ["expand", "packed"])
def test_shared_roots_equal_full_forwards(
    lm: LlavaForConditionalGeneration, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = _shared_groups()
    ref = score_groups_full(lm, groups)
    roots: list[list[int]] = []
    rooted = scoring_prefix._rooted

    def counting(*args: Any) -> Any:
        roots.append(list(args[5]))  # the root lengths
        return rooted(*args)

    monkeypatch.setattr(scoring_prefix, "_rooted", counting)
    got = score_groups(lm, groups, image_token_id=IMAGE, layout=layout)  # type: ignore[arg-type]
    assert roots == [[23, 24]]  # A: BOS, system, image, question start; B: its whole prefix
    unshared = [dataclasses.replace(g, share_key=None) for g in groups]
    alone = score_groups(lm, unshared, image_token_id=IMAGE, layout=layout)  # type: ignore[arg-type]
    for x, y, z in zip(got, ref, alone, strict=True):
        torch.testing.assert_close(x.conversation, y.conversation, atol=1e-5, rtol=0)
        torch.testing.assert_close(x.answer, y.answer, atol=1e-5, rtol=0)
        torch.testing.assert_close(x.conversation, z.conversation, atol=1e-5, rtol=0)
        assert (x.hidden is None) == (y.hidden is None)
        if x.hidden is not None and y.hidden is not None:
            torch.testing.assert_close(x.hidden, y.hidden, atol=1e-5, rtol=0)


@pytest.mark.gpu
def test_shared_roots_on_cuda_bf16(lm: LlavaForConditionalGeneration) -> None:
    groups = _shared_groups()
    ref = score_groups_full(lm, groups)
    gpu = lm.to("cuda", torch.bfloat16)
    try:
        got = score_groups(gpu, groups, image_token_id=IMAGE)  # type: ignore[arg-type]
        for x, y in zip(got, ref, strict=True):
            torch.testing.assert_close(x.conversation, y.conversation, atol=5e-2, rtol=0)
    finally:
        lm.to("cpu", torch.float32)


def test_rest_pass_runs_only_the_groups_with_a_rest(lm: LlavaForConditionalGeneration) -> None:
    """The roots' batch holds one row per image, the rests' batch only the groups whose prefix
    goes on past their root (not the lone group, not the one ending at the root), the
    continuations' batch one row per group (packed layout)."""
    shapes: list[tuple[int, int]] = []

    def record(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        shapes.append(tuple(kwargs["inputs_embeds"].shape[:2]))

    hook = lm.model.language_model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        score_groups(lm, _shared_groups(), image_token_id=IMAGE)
    finally:
        hook.remove()
    (roots, _), (rests, rest_width), (conts, _) = shapes
    assert (roots, rests, conts) == (2, 2, 4)
    assert rest_width == 10  # the object question's rest: 5, 6, the 6-token answer, 7, 8
