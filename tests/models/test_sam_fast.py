"""The flash SAM encoder attention equals transformers' (eager and SDPA) on a tiny ViT with windowed
(padded) and global blocks, forward and backward, with the same parameters and state-dict keys."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import SamVisionConfig
from transformers.models.sam import modeling_sam

from partonomy.errors import ConfigError
from partonomy.models.backbones.sam import SamConfig, build_sam
from partonomy.models.backbones.sam_fast import (
    FlashRelPosAttention,
    relative_table,
    use_flash_attention,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def tiny_encoder(attn: str) -> torch.nn.Module:
    """A 4-block ViT on an 8x8 grid: windows of 3 (padded to 9x9) and two global blocks."""
    torch.manual_seed(0)
    config = SamVisionConfig(
        hidden_size=32,
        output_channels=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        image_size=32,
        patch_size=4,
        window_size=3,
        global_attn_indexes=[1, 3],
        num_pos_feats=8,
        mlp_dim=64,
        attn_implementation=attn,
    )
    encoder = modeling_sam.SamVisionEncoder(config).eval()
    with torch.no_grad():  # HF zero-initialises the rel-pos tables: make them matter
        for name, p in encoder.named_parameters():
            p.normal_(0, 0.3 if "rel_pos" in name else p.shape[-1] ** -0.5)
    return encoder


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("fold", [True, False])
def test_matches_transformers_forward_and_backward(attn: str, fold: bool) -> None:
    reference = tiny_encoder(attn)
    fast = copy.deepcopy(reference)
    assert use_flash_attention(fast) == 4
    assert use_flash_attention(fast) == 0  # idempotent
    for layer in fast.layers:
        layer.attn.fold = fold
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    want = reference(pixels)[0]
    got = fast(pixels)[0]
    assert want.abs().max() > 0.1  # a real signal, not a degenerate zero output
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    want.square().sum().backward()
    got.square().sum().backward()
    grads = dict(reference.named_parameters())
    for name, param in fast.named_parameters():
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, grads[name].grad, atol=1e-4, rtol=1e-4)


def test_same_parameters_and_keys() -> None:
    encoder = tiny_encoder("sdpa")
    before = dict(encoder.state_dict())
    params = {id(p) for p in encoder.parameters()}
    encoder.layers[0].attn.rel_pos_h.requires_grad_(False)
    use_flash_attention(encoder)
    assert isinstance(encoder.layers[0].attn, FlashRelPosAttention)
    assert list(encoder.state_dict()) == list(before)
    assert {id(p) for p in encoder.parameters()} == params  # shared, not copied
    assert not encoder.layers[0].attn.rel_pos_h.requires_grad


def test_relative_table_matches_transformers() -> None:
    attn = tiny_encoder("eager").layers[0].attn
    rel = torch.randn(9, 4)  # 2 * 5 - 1: used as it is; and resized for other sizes
    for size in (5, 3, 7):
        torch.testing.assert_close(relative_table(size, rel), attn.get_rel_pos(size, size, rel))
    # hand-computed: table[i, j] = rel[i - j + size - 1]
    rel = torch.arange(5.0)[:, None]
    assert relative_table(3, rel)[:, :, 0].tolist() == [[2, 1, 0], [3, 2, 1], [4, 3, 2]]


def test_build_sam_swaps_by_config() -> None:
    flash = build_sam(SamConfig(vision_layers=2))
    assert all(
        isinstance(layer.attn, FlashRelPosAttention) for layer in flash.vision_encoder.layers
    )
    hf = build_sam(SamConfig(vision_layers=2, encoder_attention="hf"))
    assert not any(
        isinstance(layer.attn, FlashRelPosAttention) for layer in hf.vision_encoder.layers
    )
    assert build_sam(SamConfig(encoder="conv")).vision_encoder is not None  # no ViT blocks: no-op
    with pytest.raises(ConfigError, match="encoder_attention"):
        SamConfig(encoder_attention="xformers")  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_flash_kernel_path_matches_transformers_on_gpu() -> None:
    """On a GPU in bf16 the folded path (the flash kernel) stays within bf16 rounding of HF."""
    reference = tiny_encoder("eager").to("cuda", torch.bfloat16)
    fast = copy.deepcopy(reference)
    use_flash_attention(fast)
    pixels = torch.randn(2, 3, 32, 32, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        want, got = reference(pixels)[0].float(), fast(pixels)[0].float()
    assert (got - want).abs().max() <= 0.03 * want.abs().max()
