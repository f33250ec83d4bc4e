"""LLaVA-OneVision's image-token count (:func:`~partonomy.models.backbones.hf_vlm.onevision_feature_count`)
equals the number of features HF's model produces, over sizes and aspect ratios that hit every
branch: wide and tall unpadding, each anyres pinpoint, and the anyres_max downscaling."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from partonomy.models.backbones.hf_vlm import (
    VlmAdapter,
    VlmConfig,
    build_vlm,
    load_vlm_tokenizer,
    onevision_feature_count,
)

pytestmark = pytest.mark.usefixtures("one_thread")
SIZES = [(32, 32), (40, 70), (70, 40), (64, 64), (17, 90), (90, 17), (33, 65), (100, 31), (7, 9)]


@pytest.fixture(scope="module")
def onevision() -> tuple[Any, VlmAdapter]:
    cfg = VlmConfig()
    model, adapter = build_vlm("llava_onevision", cfg, load_vlm_tokenizer("llava_onevision", cfg))
    return model.eval(), adapter


@pytest.mark.parametrize("aspect", ["anyres_max_9", "anyres_max_1"])
def test_token_count_equals_the_models_features(
    onevision: tuple[Any, VlmAdapter], aspect: str
) -> None:
    model, adapter = onevision
    config = copy.deepcopy(adapter.config)
    config.vision_aspect_ratio = aspect  # anyres_max_1 shrinks every 2x2-crop grid
    counter = VlmAdapter("llava_onevision", adapter.image_processor, config)
    for size in SIZES:
        vision = counter.vision_input(np.zeros((*size, 3), dtype=np.uint8))
        with torch.no_grad():
            out = model.model.get_image_features(
                pixel_values=vision.pixel_values[None],
                image_sizes=vision.extras["image_sizes"],
                vision_feature_layer=-1,
                vision_feature_select_strategy="full",
                vision_aspect_ratio=aspect,
            )
        (features,) = out.pooler_output
        assert vision.n_tokens == features.shape[0], (aspect, size)


def test_feature_count_hand_computed() -> None:
    """crop 32, patch 8 (g = 4). A 40 x 70 image: the 64 x 64 pinpoint fits it largest (scale
    min(64/70, 64/40) = 0.914: 36.6 x 64 px; 32 x 64 gives only 32 x 56), so the grid is 8 x 8
    features; the image is wider (70/40 > 8/8): 40 * 8/70 = 4.57 -> 4 rows hold image, 2 padding
    rows dropped on each side: 4 x 8; 16 + 4 * 9 = 52. With anyres_max_1, r = sqrt(32 / 16) =
    1.41 > 1.1: 4 x 8 -> 2 x 5; 16 + 2 * 6 = 28."""
    pins = [[32, 32], [32, 64], [64, 32], [64, 64]]
    count = onevision_feature_count((40, 70), crop=32, patch=8, pinpoints=pins, max_crops=9)
    assert count == 52
    assert onevision_feature_count((40, 70), crop=32, patch=8, pinpoints=pins, max_crops=1) == 28
