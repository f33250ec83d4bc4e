"""Backbones: tokenizer special tokens, HF round trips, and the original SAM checkpoint layout.

The original-layout state dicts here are written by hand from segment-anything's module structure
(not by inverse-renaming an HF model), so the mapping is checked against an independent source.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from partonomy.errors import ConfigError
from partonomy.models.backbones.conv_encoder import ConvImageEncoder
from partonomy.models.backbones.llava import LlavaConfig, build_llava, load_tokenizer
from partonomy.models.backbones.sam import SamConfig, build_sam, sam_geometry
from partonomy.models.backbones.sam_layout import (
    convert_sam_state_dict,
    infer_sam_config,
    sam_key_map,
)


def original_sam_shapes(
    *,
    embed: int,
    depth: int,
    heads: int,
    global_idx: list[int],
    window: int,
    img: int,
    patch: int,
    out_chans: int,
    prompt: int,
    dec_mlp: int,
    mask_ch: int = 16,
    n_mask_tokens: int = 4,
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a segment-anything checkpoint (ImageEncoderViT, PromptEncoder, MaskDecoder)."""
    g, hd, ds = img // patch, embed // heads, 2
    s: dict[str, tuple[int, ...]] = {
        "image_encoder.pos_embed": (1, g, g, embed),
        "image_encoder.patch_embed.proj.weight": (embed, 3, patch, patch),
        "image_encoder.patch_embed.proj.bias": (embed,),
    }
    for i in range(depth):
        p, size = f"image_encoder.blocks.{i}.", g if i in global_idx else window
        s |= {p + "norm1.weight": (embed,), p + "norm1.bias": (embed,), p + "norm2.weight": (embed,),
              p + "norm2.bias": (embed,), p + "attn.qkv.weight": (3 * embed, embed), p + "attn.qkv.bias": (3 * embed,),
              p + "attn.proj.weight": (embed, embed), p + "attn.proj.bias": (embed,),
              p + "attn.rel_pos_h": (2 * size - 1, hd), p + "attn.rel_pos_w": (2 * size - 1, hd),
              p + "mlp.lin1.weight": (4 * embed, embed), p + "mlp.lin1.bias": (4 * embed,),
              p + "mlp.lin2.weight": (embed, 4 * embed), p + "mlp.lin2.bias": (embed,)}  # fmt: skip
    s |= {"image_encoder.neck.0.weight": (out_chans, embed, 1, 1), "image_encoder.neck.1.weight": (out_chans,),
          "image_encoder.neck.1.bias": (out_chans,), "image_encoder.neck.2.weight": (out_chans, out_chans, 3, 3),
          "image_encoder.neck.3.weight": (out_chans,), "image_encoder.neck.3.bias": (out_chans,)}  # fmt: skip
    pe = "prompt_encoder."
    s[pe + "pe_layer.positional_encoding_gaussian_matrix"] = (2, prompt // 2)
    for k in range(4):
        s[pe + f"point_embeddings.{k}.weight"] = (1, prompt)
    s |= {pe + "not_a_point_embed.weight": (1, prompt), pe + "no_mask_embed.weight": (1, prompt),
          pe + "mask_downscaling.0.weight": (mask_ch // 4, 1, 2, 2), pe + "mask_downscaling.0.bias": (mask_ch // 4,),
          pe + "mask_downscaling.1.weight": (mask_ch // 4,), pe + "mask_downscaling.1.bias": (mask_ch // 4,),
          pe + "mask_downscaling.3.weight": (mask_ch, mask_ch // 4, 2, 2), pe + "mask_downscaling.3.bias": (mask_ch,),
          pe + "mask_downscaling.4.weight": (mask_ch,), pe + "mask_downscaling.4.bias": (mask_ch,),
          pe + "mask_downscaling.6.weight": (prompt, mask_ch, 1, 1),
          pe + "mask_downscaling.6.bias": (prompt,)}  # fmt: skip

    def attention(prefix: str, inner: int) -> None:
        for name in ("q_proj", "k_proj", "v_proj"):
            s[f"{prefix}.{name}.weight"], s[f"{prefix}.{name}.bias"] = (inner, prompt), (inner,)
        s[f"{prefix}.out_proj.weight"], s[f"{prefix}.out_proj.bias"] = (prompt, inner), (prompt,)

    md = "mask_decoder."
    for i in range(2):
        p = f"{md}transformer.layers.{i}."
        attention(p + "self_attn", prompt)
        attention(p + "cross_attn_token_to_image", prompt // ds)
        attention(p + "cross_attn_image_to_token", prompt // ds)
        for n in range(1, 5):
            s[p + f"norm{n}.weight"], s[p + f"norm{n}.bias"] = (prompt,), (prompt,)
        s |= {p + "mlp.lin1.weight": (dec_mlp, prompt), p + "mlp.lin1.bias": (dec_mlp,),
              p + "mlp.lin2.weight": (prompt, dec_mlp), p + "mlp.lin2.bias": (prompt,)}  # fmt: skip
    attention(md + "transformer.final_attn_token_to_image", prompt // ds)
    s[md + "transformer.norm_final_attn.weight"] = s[md + "transformer.norm_final_attn.bias"] = (
        prompt,
    )
    s |= {md + "iou_token.weight": (1, prompt), md + "mask_tokens.weight": (n_mask_tokens, prompt),
          md + "output_upscaling.0.weight": (prompt, prompt // 4, 2, 2), md + "output_upscaling.0.bias": (prompt // 4,),
          md + "output_upscaling.1.weight": (prompt // 4,), md + "output_upscaling.1.bias": (prompt // 4,),
          md + "output_upscaling.3.weight": (prompt // 4, prompt // 8, 2, 2),
          md + "output_upscaling.3.bias": (prompt // 8,)}  # fmt: skip
    for k in range(n_mask_tokens):
        p = f"{md}output_hypernetworks_mlps.{k}.layers."
        s |= {p + "0.weight": (prompt, prompt), p + "0.bias": (prompt,), p + "1.weight": (prompt, prompt),
              p + "1.bias": (prompt,), p + "2.weight": (prompt // 8, prompt), p + "2.bias": (prompt // 8,)}  # fmt: skip
    p = f"{md}iou_prediction_head.layers."
    s |= {p + "0.weight": (prompt, prompt), p + "0.bias": (prompt,), p + "1.weight": (prompt, prompt),
          p + "1.bias": (prompt,), p + "2.weight": (n_mask_tokens, prompt), p + "2.bias": (n_mask_tokens,)}  # fmt: skip
    return s


VIT_H = {"embed": 1280, "depth": 32, "heads": 16, "global_idx": [7, 15, 23, 31], "window": 14, "img": 1024,
         "patch": 16, "out_chans": 256, "prompt": 256, "dec_mlp": 2048}  # fmt: skip
TINY = {"embed": 32, "depth": 2, "heads": 2, "global_idx": [1], "window": 2, "img": 32, "patch": 8,
        "out_chans": 16, "prompt": 16, "dec_mlp": 32}  # fmt: skip


def test_sam_vit_h_original_keys_map_onto_hf_vit_h():
    from transformers import SamConfig as HFSamConfig
    from transformers import SamModel

    original = {
        k: torch.empty(shape, device="meta") for k, shape in original_sam_shapes(**VIT_H).items()
    }
    mapped = convert_sam_state_dict(original)
    vit_h = HFSamConfig(
        vision_config={"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16,
                       "global_attn_indexes": [7, 15, 23, 31], "mlp_dim": 5120},
    )  # fmt: skip
    with torch.device("meta"):
        model = SamModel(vit_h)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(mapped) == set(expected)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == expected
    inferred = infer_sam_config(original)
    assert inferred.vision_config.global_attn_indexes == [7, 15, 23, 31]
    assert (
        inferred.vision_config.num_attention_heads == 16
        and inferred.vision_config.window_size == 14
    )
    assert (
        inferred.vision_config.image_size == 1024
        and inferred.mask_decoder_config.num_multimask_outputs == 3
    )


def test_sam_key_map_examples_and_errors():
    assert sam_key_map("image_encoder.neck.2.weight") == ["vision_encoder.neck.conv2.weight"]
    assert sam_key_map("mask_decoder.iou_prediction_head.layers.1.bias") == [
        "mask_decoder.iou_prediction_head.layers.0.bias"
    ]
    assert len(sam_key_map("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix")) == 2
    with pytest.raises(ConfigError, match=r"unexpected key 'image_encoder\.extra'"):
        sam_key_map("image_encoder.extra")


def layer_norm_2d(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """segment-anything's LayerNorm2d over channels of (N, C, H, W)."""
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    return w[:, None, None] * ((x - u) / torch.sqrt(s + eps)) + b[:, None, None]


@pytest.fixture(scope="module")
def original_tiny(tmp_path_factory):
    gen = torch.Generator().manual_seed(0)
    state = {
        k: torch.randn(shape, generator=gen) * 0.5
        for k, shape in original_sam_shapes(**TINY).items()
    }
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(state, path)
    return state, build_sam(SamConfig(pretrained=str(path), layout="original"))


def test_sam_original_checkpoint_loads_and_matches_reference_computations(original_tiny):
    o, sam = original_tiny
    hf = sam.state_dict()
    assert torch.equal(
        hf["vision_encoder.layers.1.attn.rel_pos_h"], o["image_encoder.blocks.1.attn.rel_pos_h"]
    )
    assert torch.equal(
        hf["prompt_encoder.mask_embed.conv3.weight"], o["prompt_encoder.mask_downscaling.6.weight"]
    )
    gauss = o["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    assert torch.equal(hf["shared_image_embedding.positional_embedding"], gauss)
    assert sam_geometry(sam).embed_size == (4, 4) and sam_geometry(sam).prompt_dim == 16
    x = torch.randn(2, 1, 16, 16)
    pe = "prompt_encoder.mask_downscaling."
    ref = F.conv2d(x, o[pe + "0.weight"], o[pe + "0.bias"], stride=2)
    ref = F.gelu(layer_norm_2d(ref, o[pe + "1.weight"], o[pe + "1.bias"]))
    ref = F.conv2d(ref, o[pe + "3.weight"], o[pe + "3.bias"], stride=2)
    ref = F.gelu(layer_norm_2d(ref, o[pe + "4.weight"], o[pe + "4.bias"]))
    ref = F.conv2d(ref, o[pe + "6.weight"], o[pe + "6.bias"])
    torch.testing.assert_close(sam.prompt_encoder.mask_embed(x), ref)
    t = torch.randn(3, 16)
    hp = "mask_decoder.output_hypernetworks_mlps.2.layers."
    ref = torch.relu(F.linear(t, o[hp + "0.weight"], o[hp + "0.bias"]))
    ref = torch.relu(F.linear(ref, o[hp + "1.weight"], o[hp + "1.bias"]))
    ref = F.linear(ref, o[hp + "2.weight"], o[hp + "2.bias"])
    torch.testing.assert_close(sam.mask_decoder.output_hypernetworks_mlps[2](t), ref)
    feats = torch.randn(1, 4, 4, 32)  # ViT output, channels last
    n = "image_encoder.neck."
    ref = layer_norm_2d(
        F.conv2d(feats.permute(0, 3, 1, 2), o[n + "0.weight"]), o[n + "1.weight"], o[n + "1.bias"]
    )
    ref = layer_norm_2d(
        F.conv2d(ref, o[n + "2.weight"], padding=1), o[n + "3.weight"], o[n + "3.bias"]
    )
    torch.testing.assert_close(sam.vision_encoder.neck(feats), ref)
    pixels = torch.randn(1, 3, 32, 32)
    ref = F.conv2d(
        pixels,
        o["image_encoder.patch_embed.proj.weight"],
        o["image_encoder.patch_embed.proj.bias"],
        stride=8,
    )
    torch.testing.assert_close(sam.vision_encoder.patch_embed(pixels), ref.permute(0, 2, 3, 1))
    with torch.no_grad():
        emb = sam.vision_encoder(pixels)[0]
    assert emb.shape == (1, 16, 4, 4)


def test_sam_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        build_sam(SamConfig(pretrained=str(tmp_path), layout="original"))
    with pytest.raises(ConfigError, match="not a local directory"):
        build_sam(SamConfig(pretrained=str(tmp_path / "missing"), layout="hf"))
    with pytest.raises(ConfigError, match=r"multiple of sam\.patch_size"):
        SamConfig(image_size=100, patch_size=8)


@pytest.mark.parametrize(("image_size", "patch_size"), [(64, 4), (64, 2), (96, 8), (32, 1)])
def test_conv_encoder_replaces_the_vit_on_the_same_grid(image_size, patch_size):
    cfg = SamConfig(image_size=image_size, patch_size=patch_size, decoder_hidden=48, encoder="conv")
    sam = build_sam(cfg)
    assert isinstance(sam.vision_encoder, ConvImageEncoder)
    assert not any(n.startswith("vision_encoder.layers.0.attn") for n, _ in sam.named_parameters())
    geo = sam_geometry(sam)
    pixels = torch.randn(2, 3, image_size, image_size)
    out = sam.vision_encoder(pixels)
    assert out[0] is out.last_hidden_state
    assert out[0].shape == (2, geo.prompt_dim, *geo.embed_size)
    # The decoder built for the ViT's grid runs on the conv embeddings unchanged.
    pe = sam.get_image_wide_positional_embeddings().expand(2, -1, -1, -1)
    dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
    low, _ = sam.mask_decoder(
        image_embeddings=out[0],
        image_positional_embeddings=pe,
        sparse_prompt_embeddings=torch.randn(2, 1, 1, geo.prompt_dim),
        dense_prompt_embeddings=dense.expand(2, -1, *geo.embed_size),
        multimask_output=False,
    )
    assert low.shape == (2, 1, 1, *geo.low_res_size)


def test_conv_encoder_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot be combined with sam\.pretrained"):
        SamConfig(pretrained=str(tmp_path), encoder="conv")
    with pytest.raises(ConfigError, match="power-of-two"):
        SamConfig(image_size=96, patch_size=6, encoder="conv")
    with pytest.raises(ConfigError, match="multiple of 8"):
        SamConfig(encoder="conv", conv_width=12)
    with pytest.raises(ValueError, match="power of two"):
        ConvImageEncoder(patch_size=3, width=8, out_channels=16)


def test_sam_hf_round_trip(tmp_path):
    torch.manual_seed(0)
    sam = build_sam(SamConfig())
    sam.save_pretrained(tmp_path)
    again = build_sam(SamConfig(pretrained=str(tmp_path), layout="hf"))
    for (k, a), (_, b) in zip(sam.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_tokenizer_special_tokens():
    v1 = load_tokenizer(LlavaConfig(layout="llava_v1"))
    assert v1.convert_tokens_to_ids(["<im_start>", "<im_end>", "<image>"]) == [32000, 32001, 32002]
    hf = load_tokenizer(LlavaConfig(layout="llava_hf"))
    assert hf.convert_tokens_to_ids("<image>") == 32000 and len(hf) == 32001
    assert hf.pad_token == hf.unk_token == "<unk>"
    assert hf.encode("<image>", add_special_tokens=False) == [32000]  # one token, never split
    assert hf.convert_ids_to_tokens(hf.encode("front wheel", add_special_tokens=False)) == [
        "▁front",
        "▁wheel",
    ]
    with pytest.raises(ConfigError, match="not a local directory"):
        load_tokenizer(LlavaConfig(tokenizer="/nonexistent/tokenizer"))


def test_llava_hf_round_trip(tmp_path):
    cfg = LlavaConfig()
    tokenizer = load_tokenizer(cfg)
    torch.manual_seed(0)
    model = build_llava(cfg, tokenizer).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded_cfg = LlavaConfig(pretrained=str(tmp_path), tokenizer="pretrained")
    loaded = build_llava(loaded_cfg, load_tokenizer(loaded_cfg)).eval()
    ids = torch.tensor([[1, *[32000] * 64, 415, 13788]])
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids, pixel_values=pixels).logits,
                                   model(input_ids=ids, pixel_values=pixels).logits)  # fmt: skip
    with pytest.raises(ConfigError, match="not a local directory"):
        build_llava(LlavaConfig(pretrained=str(tmp_path / "missing")), tokenizer)
