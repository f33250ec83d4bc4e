"""Fused kernels in the choice-scoring forwards (:mod:`partonomy.models.core.scoring_kernels`):
the same scores and kept hidden states as the plain decoder, for groups with and without a shared
image root, through ``score_groups`` and through the predictor.

On CPU the kernels are the plain-torch references (the swapping and every code path is exercised)
and the any-shape compiled set is traced with Dynamo's ``eager`` backend over forwards of several
shapes (one graph each, no error on a new shape); the GPU test runs the set the predictor picks."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from partonomy.errors import ConfigError
from partonomy.models.core.fused_kernels import reference_kernels
from partonomy.models.core.scoring import ChoiceGroup, score_groups
from partonomy.models.core.scoring_kernels import (
    compiled_any_shape,
    fused,
    scoring_kernels,
    usable,
)

from .test_fused_kernels import _counting
from .test_scoring import IMAGE
from .test_scoring_roots import _shared_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def _groups() -> list[ChoiceGroup]:
    shared = _shared_groups()
    return shared + [dataclasses.replace(g, share_key=None) for g in shared]


def _assert_same(got: list[Any], want: list[Any], tol: float) -> None:
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x.conversation, y.conversation, atol=tol, rtol=0)
        torch.testing.assert_close(x.answer, y.answer, atol=tol, rtol=0)
        assert (x.hidden is None) == (y.hidden is None)
        if x.hidden is not None:
            torch.testing.assert_close(x.hidden.float(), y.hidden.float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("layout", ["expand", "packed"])
def test_fused_scoring_equals_plain(lm: LlavaForConditionalGeneration, layout: str) -> None:
    groups = _groups()
    plain = score_groups(lm, groups, image_token_id=IMAGE, layout=layout)  # type: ignore[arg-type]
    calls: dict[str, int] = {}
    base = lm.model
    with fused(base, _counting(reference_kernels(), calls)):
        got = score_groups(lm, groups, image_token_id=IMAGE, layout=layout)  # type: ignore[arg-type]
    # root, rest and continuation forwards each ran the swapped kernels in both layers
    assert calls["rms_norm"] >= 3 * 5 and calls["swiglu"] >= 3 * 2 and calls["rope"] >= 3 * 2
    _assert_same(got, plain, 1e-5)
    assert "forward" not in base.language_model.norm.__dict__  # undone after the block
    again = score_groups(lm, groups, image_token_id=IMAGE, layout=layout)  # type: ignore[arg-type]
    _assert_same(again, plain, 0.0)


def test_compiled_any_shape_traces_each_kernel_as_one_graph(
    lm: LlavaForConditionalGeneration,
) -> None:
    traced = compiled_any_shape(backend="eager")
    assert traced is not None and traced.name == "compiled"
    assert usable(traced, lm.model) is traced  # passes the self-test at the model's sizes
    groups = _groups()
    plain = score_groups(lm, groups, image_token_id=IMAGE)
    with fused(lm.model, traced):  # root, rest and continuation: three shapes, then a fourth
        got = score_groups(lm, groups, image_token_id=IMAGE)
        fewer = score_groups(lm, groups[:3], image_token_id=IMAGE)
    _assert_same(got, plain, 1e-5)
    _assert_same(fewer, plain[:3], 1e-5)


def test_kernel_choice(lm: LlavaForConditionalGeneration) -> None:
    assert scoring_kernels("off") is None
    with pytest.raises(ValueError, match="off, auto, liger, compiled"):
        scoring_kernels("fast")
    assert usable(None, lm.model) is None

    def broken(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        return x

    wrong = dataclasses.replace(reference_kernels(), rms_norm=broken)
    assert usable(wrong, lm.model) is None  # fails its self-test: not used


def test_predictor_option_is_validated_and_used() -> None:
    from partonomy.models.core.family import get_family
    from partonomy.models.core.predictor import SegPredictor

    torch.manual_seed(0)
    spec = get_family("plum")
    model, processor = spec.build(spec.preset("tiny"))
    with pytest.raises(ConfigError, match="scoring_kernels must be one of"):
        SegPredictor(model, processor, scoring_kernels="fast")
    assert SegPredictor(model, processor).kernels is None  # CPU default: off
    assert SegPredictor(model, processor, scoring_kernels="compiled").kernels is None  # no Triton


@pytest.mark.gpu
def test_fused_scoring_on_cuda_bf16_is_as_close_to_fp32_as_plain(
    lm: LlavaForConditionalGeneration,
) -> None:
    """bf16 with the fused kernels is no further from the float32 scores than plain bf16 is
    (twice its distance, plus a hair): the kernels change rounding, not results."""
    groups = _groups()
    fp32 = score_groups(copy.deepcopy(lm).to("cuda"), groups, image_token_id=IMAGE)
    gpu = copy.deepcopy(lm).to("cuda", torch.bfloat16)
    plain = score_groups(gpu, groups, image_token_id=IMAGE)

    def distance(scores: list[Any]) -> float:
        return max(
            float((x.conversation - y.conversation).abs().max()) for x, y in zip(scores, fp32)
        )

    tested = 0
    for choice in ("liger", "compiled"):
        kernels = usable(scoring_kernels(choice), gpu.model)
        if kernels is None:
            continue  # liger-kernel not installed
        with fused(gpu.model, kernels):
            got = score_groups(gpu, groups, image_token_id=IMAGE)
        assert distance(got) <= 2 * distance(plain) + 1e-3, choice
        _assert_same(got, plain, 5e-2)
        tested += 1
    assert tested >= 1  # the compiled set needs only torch and Triton
