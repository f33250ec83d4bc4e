"""Shared fixtures of the PLUM tests: a tiny random LLaVA."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

TINY_VOCAB = 300
"""Vocabulary of :func:`lm`; its last id is the ``<image>`` token."""
TINY_IMAGE_TOKENS = 16
"""``<image>`` tokens per image in :func:`lm`: (32 / 8) ** 2 CLIP patches."""


@pytest.fixture(scope="module")
def lm() -> LlavaForConditionalGeneration:
    """A tiny random HF LLaVA (seed 0, eval mode): 2-layer LLaMA, 32 wide, GQA 4/2 heads."""
    torch.manual_seed(0)
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        text_config=LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=TINY_VOCAB,
        ),
        image_token_index=TINY_VOCAB - 1,
        image_seq_length=TINY_IMAGE_TOKENS,
    )
    return LlavaForConditionalGeneration(cfg).eval()
