"""``SegBatch.image_embeddings``: precomputed mask-head embeddings (an embedding cache) replace the
frozen image encoder in ``SegLMM.forward`` and give the same outputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from partonomy.config import from_dict
from partonomy.models.core.family import get_family

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "llava": {"text_hidden": 32, "text_layers": 1, "text_heads": 2, "text_intermediate": 64,
              "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2, "image_size": 32,
              "patch_size": 8},
    "sam": {"image_size": 64, "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2,
            "patch_size": 8, "decoder_hidden": 32},
    "bidir_heads": 2, "bidir_ff": 64, "bidir_dropout": 0.0, "feedback_heads": 2,
}  # fmt: skip


def test_precomputed_embeddings_replace_the_encoder() -> None:
    torch.manual_seed(0)
    family = get_family("plum")
    model, processor = family.build(from_dict(family.config_type, TINY))
    model.eval()
    rng = np.random.default_rng(0)
    examples = []
    for parts in (("wing", "tail"), ("wing",)):
        image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        masks = {p: (rng.random((30, 40)) > 0.5).astype(np.uint8) for p in parts}
        answer = "The airplane has " + " and ".join(f"a {p}" for p in parts) + "."
        examples.append(processor.encode(image, [], "Which parts are visible?", answer, masks))
    batch = processor.collate(examples)
    with torch.no_grad():
        plain = model(batch)
        cached = dataclasses.replace(
            batch, image_embeddings=model.image_embeddings(batch.sam_pixel_values)
        )
        calls: list[int] = []
        encoder = model.mask_head.sam.vision_encoder
        handle = encoder.register_forward_hook(lambda *_: calls.append(1))
        try:
            out = model(cached.to("cpu", torch.float32))
        finally:
            handle.remove()
    assert not calls  # the encoder did not run
    torch.testing.assert_close(out.logits, plain.logits, atol=0, rtol=0)
    for a, b in zip(out.masks, plain.masks, strict=True):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, atol=0, rtol=0)
