"""Fused decoder kernels swapped in for a block: same outputs, the model restored afterwards.

On CPU the kernels are the plain-torch references (Liger's and Inductor's Triton kernels need a
GPU; the compiled set is traced with Dynamo's ``eager`` backend, which checks that each function is
one graph); the GPU tests check graphed generation with each fused set against the plain graph."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from partonomy.models.core.fused_kernels import (
    DecoderKernels,
    compiled_kernels,
    decoder_kernels,
    model_sizes,
    reference_kernels,
    self_test,
    supports,
    swapped_kernels,
)
from partonomy.models.core.generation import generate

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE, N_IMAGE = 299, 16  # the tiny LLaVA of conftest.py's ``lm``


def _counting(kernels: DecoderKernels, calls: dict[str, int]) -> DecoderKernels:
    def wrap(name: str, fn: Any) -> Any:
        def inner(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return fn(*args, **kwargs)

        return inner

    return DecoderKernels(
        rms_norm=wrap("rms_norm", kernels.rms_norm),
        swiglu=wrap("swiglu", kernels.swiglu),
        rope=wrap("rope", kernels.rope),
        name=kernels.name,
    )


def test_swapped_kernels_give_the_same_outputs_and_are_undone(
    lm: LlavaForConditionalGeneration,
) -> None:
    text = lm.model.language_model
    assert supports(text) and model_sizes(text) == (32, 64, 4, 2, 8)
    ids = torch.tensor([[1, 10, 11, 12, 13, 14]])
    with torch.no_grad():
        plain = text(input_ids=ids).last_hidden_state
        calls: dict[str, int] = {}
        modeling = sys.modules[type(text.layers[0].self_attn).__module__]
        rope_before = modeling.apply_rotary_pos_emb
        with swapped_kernels(text, _counting(reference_kernels(), calls)):
            swapped = text(input_ids=ids).last_hidden_state
        after = text(input_ids=ids).last_hidden_state
    layers = len(text.layers)
    assert calls == {"rms_norm": 2 * layers + 1, "swiglu": layers, "rope": layers}
    torch.testing.assert_close(swapped, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after, plain, atol=0, rtol=0)
    assert modeling.apply_rotary_pos_emb is rope_before
    assert all("forward" not in m.__dict__ for m in text.modules())


def test_swap_is_undone_after_an_error(lm: LlavaForConditionalGeneration) -> None:
    text = lm.model.language_model
    with pytest.raises(RuntimeError, match="boom"), swapped_kernels(text, reference_kernels()):
        raise RuntimeError("boom")
    assert all("forward" not in m.__dict__ for m in text.modules())


def test_self_test_rejects_a_wrong_kernel() -> None:
    good = reference_kernels()
    assert self_test(good, torch.device("cpu"), torch.float32)
    assert self_test(good, torch.device("cpu"), torch.bfloat16, (40, 24, 4, 2, 8))
    bad = DecoderKernels(rms_norm=good.rms_norm, swiglu=lambda a, b: a * b, rope=good.rope)
    assert not self_test(bad, torch.device("cpu"), torch.float32)


@pytest.mark.gpu
def test_graphed_generation_with_liger_kernels(lm: LlavaForConditionalGeneration) -> None:
    pytest.importorskip("liger_kernel")
    gpu = copy.deepcopy(lm).to("cuda")
    prompts = [torch.tensor([1, 10, *[IMAGE] * N_IMAGE, 20]), torch.tensor([1, *[IMAGE] * N_IMAGE])]
    pv = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = generate(gpu, prompts, pv, stop_token_ids=[2], max_new_tokens=10, fused_kernels=False)
    fused = generate(gpu, prompts, pv, stop_token_ids=[2], max_new_tokens=10, fused_kernels=True)
    for a, b in zip(plain, fused, strict=True):
        assert a.sequence.tolist() == b.sequence.tolist()
        assert a.hidden is not None and b.hidden is not None
        torch.testing.assert_close(a.hidden, b.hidden, atol=1e-4, rtol=1e-4)


def test_compiled_kernels_trace_as_single_graphs_and_match(
    lm: LlavaForConditionalGeneration,
) -> None:
    traced = compiled_kernels(backend="eager")
    assert traced is not None and traced.name == "compiled"
    assert self_test(traced, torch.device("cpu"), torch.float32, (32, 64, 4, 2, 8))
    text = lm.model.language_model
    ids = torch.tensor([[1, 10, 11, 12]])
    with torch.no_grad():
        plain = text(input_ids=ids).last_hidden_state
        with swapped_kernels(text, traced):
            swapped = text(input_ids=ids).last_hidden_state
    torch.testing.assert_close(swapped, plain, atol=1e-5, rtol=1e-5)


def test_kernel_choice_is_validated(lm: LlavaForConditionalGeneration) -> None:
    with pytest.raises(ValueError, match="liger, compiled or 'auto'"):
        decoder_kernels("triton")
    prompt = [torch.tensor([1, *[IMAGE] * N_IMAGE])]
    pv = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match="fused_kernels must be"):
        generate(lm, prompt, pv, stop_token_ids=[2], max_new_tokens=2, fused_kernels="fast")


@pytest.mark.gpu
def test_graphed_generation_with_compiled_kernels(lm: LlavaForConditionalGeneration) -> None:
    gpu = copy.deepcopy(lm).to("cuda")
    prompts = [torch.tensor([1, 10, *[IMAGE] * N_IMAGE, 20]), torch.tensor([1, *[IMAGE] * N_IMAGE])]
    pv = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = generate(gpu, prompts, pv, stop_token_ids=[2], max_new_tokens=10, fused_kernels=False)
    fused = generate(
        gpu, prompts, pv, stop_token_ids=[2], max_new_tokens=10, fused_kernels="compiled"
    )
    slot = gpu.__dict__["_partonomy_decoder"]
    assert slot.decoder.kernels is not None and slot.decoder.kernels.name == "compiled"
    for a, b in zip(plain, fused, strict=True):
        assert a.sequence.tolist() == b.sequence.tolist()
        assert a.hidden is not None and b.hidden is not None
        torch.testing.assert_close(a.hidden, b.hidden, atol=1e-4, rtol=1e-4)
