"""The original LLaVA v1 layout: exact outputs against a hand-written reference, and 13B key shapes.

The synthetic checkpoints are written in the original key layout (``LlavaLlamaForCausalLM``:
LLaMA keys, ``model.mm_projector``, ``model.vision_tower.vision_tower.vision_model``). The reference
forward runs the LLaMA LM and the CLIP tower as separate HF modules loaded from those original keys,
and applies the projector by hand.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import LlavaConfig, build_llava, load_tokenizer
from partonomy.models.backbones.llava_v1_layout import (
    convert_llava_v1_state_dict,
    translate_llava_v1_config,
)

VOCAB = 32002  # LLaMA 32000 + <im_start>, <im_end> (as the PLUM/LISA checkpoints were saved)
D, FF, LAYERS, HEADS = 32, 64, 2, 4
CLIP_D, CLIP_FF, CLIP_LAYERS, IMG, PATCH = 64, 128, 3, 32, 8  # one 64-wide head, 16 patches


def llama_keys(
    vocab: int, d: int, ff: int, layers: int, rotary: bool
) -> dict[str, tuple[int, ...]]:
    s: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, d), "model.norm.weight": (d,),
                                     "lm_head.weight": (vocab, d)}  # fmt: skip
    for i in range(layers):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            s[p + f"self_attn.{name}.weight"] = (d, d)
        s |= {p + "mlp.gate_proj.weight": (ff, d), p + "mlp.up_proj.weight": (ff, d),
              p + "mlp.down_proj.weight": (d, ff), p + "input_layernorm.weight": (d,),
              p + "post_attention_layernorm.weight": (d,)}  # fmt: skip
        if rotary:  # old checkpoints saved this buffer
            s[p + "self_attn.rotary_emb.inv_freq"] = (d // HEADS // 2,)
    return s


def clip_keys(
    prefix: str, d: int, ff: int, layers: int, img: int, patch: int
) -> dict[str, tuple[int, ...]]:
    n = (img // patch) ** 2 + 1
    s = {"embeddings.class_embedding": (d,), "embeddings.patch_embedding.weight": (d, 3, patch, patch),
         "embeddings.position_embedding.weight": (n, d), "embeddings.position_ids": (1, n),
         "pre_layrnorm.weight": (d,), "pre_layrnorm.bias": (d,), "post_layernorm.weight": (d,),
         "post_layernorm.bias": (d,)}  # fmt: skip
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + f"self_attn.{name}.weight"], s[p + f"self_attn.{name}.bias"] = (d, d), (d,)
        s |= {p + "layer_norm1.weight": (d,), p + "layer_norm1.bias": (d,), p + "layer_norm2.weight": (d,),
              p + "layer_norm2.bias": (d,), p + "mlp.fc1.weight": (ff, d), p + "mlp.fc1.bias": (ff,),
              p + "mlp.fc2.weight": (d, ff), p + "mlp.fc2.bias": (d,)}  # fmt: skip
    return {prefix + k: v for k, v in s.items()}


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("position_ids"):
            out[k] = torch.arange(shape[1])[None]
        elif k.endswith("inv_freq"):
            out[k] = torch.ones(shape)
        else:
            out[k] = torch.randn(shape, generator=gen) * 0.2
    return out


def v1_config(projector: str = "linear") -> dict:
    return {"architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava", "vocab_size": VOCAB,
            "hidden_size": D, "intermediate_size": FF, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "rms_norm_eps": 1e-5, "max_position_embeddings": 512, "bos_token_id": 1, "eos_token_id": 2,
            "pad_token_id": 0, "mm_vision_tower": "openai/clip-vit-large-patch14", "mm_hidden_size": CLIP_D,
            "mm_vision_select_layer": -2, "mm_use_im_start_end": True, "mm_projector_type": projector}  # fmt: skip


def reference_logits(state, clip_state, projector, ids, pixels, image_id):
    """LLaMA + CLIP as separate HF modules on the original keys; projector applied by hand."""
    clip = CLIPVisionModel(
        CLIPVisionConfig(hidden_size=CLIP_D, intermediate_size=CLIP_FF, num_hidden_layers=CLIP_LAYERS,
                         num_attention_heads=1, image_size=IMG, patch_size=PATCH)
    ).eval()  # fmt: skip
    clip.load_state_dict(
        {k: v for k, v in clip_state.items() if not k.endswith("position_ids")}, strict=False
    )
    lm = LlamaForCausalLM(
        LlamaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=FF, num_hidden_layers=LAYERS,
                    num_attention_heads=HEADS, rms_norm_eps=1e-5, max_position_embeddings=512)
    ).eval()  # fmt: skip
    lm.load_state_dict({k: v for k, v in state.items() if k in lm.state_dict()}, strict=True)
    with torch.no_grad():
        feats = clip(pixels, output_hidden_states=True).hidden_states[-2][
            :, 1:
        ]  # (1, 16, CLIP_D), no CLS
        feats = projector(feats)
        is_image = ids == image_id
        embeds = lm.model.embed_tokens(ids.masked_fill(is_image, 0))
        embeds[is_image] = feats.reshape(-1, D)
        return lm(inputs_embeds=embeds).logits


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(LlavaConfig(layout="llava_v1"))


def inputs(tokenizer):
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    head = tokenizer.encode("USER: <im_start>", add_special_tokens=False)
    tail = tokenizer.encode("<im_end>\nWhat parts? ASSISTANT: A wing.", add_special_tokens=False)
    ids = torch.tensor([[1, *head, *[image_id] * (IMG // PATCH) ** 2, *tail]])
    return ids, torch.randn(1, 3, IMG, IMG, generator=torch.Generator().manual_seed(5)), image_id


def test_v1_single_linear_projector_with_embedded_tower(tmp_path, tokenizer):
    state = random_state(
        llama_keys(VOCAB, D, FF, LAYERS, rotary=True)
        | clip_keys(
            "model.vision_tower.vision_tower.vision_model.",
            CLIP_D,
            CLIP_FF,
            CLIP_LAYERS,
            IMG,
            PATCH,
        )
        | {"model.mm_projector.weight": (D, CLIP_D), "model.mm_projector.bias": (D,)},
        seed=0,
    )
    (tmp_path / "config.json").write_text(
        json.dumps(v1_config("linear") | {"mm_projector_type": None})
    )
    torch.save(state, tmp_path / "pytorch_model.bin")
    model = build_llava(LlavaConfig(pretrained=str(tmp_path), layout="llava_v1"), tokenizer).eval()
    assert model.config.projector_hidden_act == "linear"
    assert model.config.text_config.vocab_size == len(tokenizer) == VOCAB + 1  # + <image>
    ids, pixels, image_id = inputs(tokenizer)
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values=pixels).logits
    prefix = "model.vision_tower.vision_tower.vision_model."
    clip_state = {
        k[len(prefix) :]: v
        for k, v in state.items()
        if k.startswith(prefix) and not k.endswith("position_ids")
    }

    def projector(x):
        return F.linear(x, state["model.mm_projector.weight"], state["model.mm_projector.bias"])

    expected = reference_logits(state, clip_state, projector, ids, pixels, image_id)
    torch.testing.assert_close(logits[..., :VOCAB], expected, rtol=1e-5, atol=1e-5)


def test_v1_mlp_projector_with_separate_clip_dir(tmp_path, tokenizer):
    llava_dir, clip_dir = tmp_path / "llava", tmp_path / "clip"
    llava_dir.mkdir()
    state = random_state(
        llama_keys(VOCAB, D, FF, LAYERS, rotary=False)
        | {"model.mm_projector.0.weight": (D, CLIP_D), "model.mm_projector.0.bias": (D,),
           "model.mm_projector.2.weight": (D, D), "model.mm_projector.2.bias": (D,)},
        seed=1,
    )  # fmt: skip
    (llava_dir / "config.json").write_text(json.dumps(v1_config("mlp2x_gelu")))
    torch.save(state, llava_dir / "pytorch_model.bin")
    clip = CLIPVisionModel(
        CLIPVisionConfig(hidden_size=CLIP_D, intermediate_size=CLIP_FF, num_hidden_layers=CLIP_LAYERS,
                         num_attention_heads=1, image_size=IMG, patch_size=PATCH)
    )  # fmt: skip
    clip.save_pretrained(clip_dir)
    cfg = LlavaConfig(pretrained=str(llava_dir), layout="llava_v1", vision_tower=str(clip_dir))
    model = build_llava(cfg, tokenizer).eval()
    ids, pixels, image_id = inputs(tokenizer)
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values=pixels).logits

    def projector(x):
        x = F.gelu(
            F.linear(x, state["model.mm_projector.0.weight"], state["model.mm_projector.0.bias"])
        )
        return F.linear(x, state["model.mm_projector.2.weight"], state["model.mm_projector.2.bias"])

    expected = reference_logits(state, clip.state_dict(), projector, ids, pixels, image_id)
    torch.testing.assert_close(logits[..., :VOCAB], expected, rtol=1e-5, atol=1e-5)


def test_v1_errors(tmp_path, tokenizer):
    state = random_state(llama_keys(VOCAB, D, FF, LAYERS, rotary=False), seed=2)
    with pytest.raises(ConfigError, match="no projector"):
        convert_llava_v1_state_dict(state)
    state["model.mm_projector.weight"] = torch.zeros(D, CLIP_D)
    with pytest.raises(ConfigError, match="no vision tower"):
        convert_llava_v1_state_dict(state)
    state["model.extra.weight"] = torch.zeros(1)
    with pytest.raises(ConfigError, match=r"unexpected key 'model\.extra\.weight'"):
        convert_llava_v1_state_dict(state, {"vision_model.pre_layrnorm.weight": torch.zeros(1)})
    with pytest.raises(ConfigError, match=r"no config\.json"):
        build_llava(LlavaConfig(pretrained=str(tmp_path), layout="llava_v1"), tokenizer)


def test_llava_13b_v1_keys_map_onto_hf_shapes():
    from transformers import LlavaConfig as HFLlavaConfig
    from transformers import LlavaForConditionalGeneration

    # LLaMA-2-13B + CLIP ViT-L/14 at 224 px, v1 single-linear projector, tower embedded.
    original = llama_keys(32000, 5120, 13824, 40, rotary=True)
    original |= clip_keys("model.vision_tower.vision_tower.vision_model.", 1024, 4096, 24, 224, 14)
    original |= {"model.mm_projector.weight": (5120, 1024), "model.mm_projector.bias": (5120,)}
    mapped = convert_llava_v1_state_dict(
        {k: torch.empty(s, device="meta") for k, s in original.items()}
    )
    hf_config = HFLlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                       num_attention_heads=16, image_size=224, patch_size=14),
        text_config=LlamaConfig(vocab_size=32000, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                                num_attention_heads=40),
        image_seq_length=256, projector_hidden_act="linear",
    )  # fmt: skip
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(hf_config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(mapped) == set(expected)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == expected
    original_json = {"vocab_size": 32000, "hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
                     "num_attention_heads": 40, "mm_vision_select_layer": -2}  # fmt: skip
    translated = translate_llava_v1_config(
        original_json, hf_config.vision_config, image_token_index=32000
    )
    assert translated.image_seq_length == 256 and translated.vision_feature_layer == -2
    assert translated.vision_feature_select_strategy == "default"
    assert translated.projector_hidden_act == "linear"
    assert translated.text_config.num_key_value_heads == 40


def test_vision_weights_from_a_clip_model_checkpoint():
    from partonomy.models.backbones.llava_v1_layout import vision_state_dict

    clip_model = {  # a CLIPModel checkpoint: vision and text towers, prefixed
        "vision_model.embeddings.class_embedding": torch.zeros(4),
        "vision_model.embeddings.position_ids": torch.zeros(1, 5),
        "vision_model.post_layernorm.weight": torch.ones(4),
        "text_model.embeddings.token_embedding.weight": torch.zeros(3, 4),
        "visual_projection.weight": torch.zeros(4, 4),
        "logit_scale": torch.zeros(()),
    }
    out = vision_state_dict({}, clip_model)
    assert set(out) == {"embeddings.class_embedding", "post_layernorm.weight"}
