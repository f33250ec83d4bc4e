"""``convert-checkpoint --from segllm``: a synthetic release in the ``Marlo-Z/SegLLM`` key layout
(LLaVA-v1 keys with an mlp2x projector and the CLIP tower embedded, ``segmentator_predictor``,
``mask_enc_head``, HIPIE's ``model.segmentator.hipie.*``), its tokenizer (LLaMA + SegLLM's 11
tokens in order), converted, loaded and compared tensor by tensor; strictness and the wrong-family
refusals; and the 7B / 13B key and shape checks on the meta device."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from transformers import LlamaTokenizer

from models.plum import test_backbones_llava_v1
from partonomy.cli.main import cli
from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import sentencepiece_model_path
from partonomy.models.convert import convert
from partonomy.models.convert.segllm import HIPIE_REASON, assemble_segllm
from partonomy.models.convert.segllm import convert as convert_segllm
from partonomy.models.segllm.decoder import DecoderConfig, QueryMaskHead
from partonomy.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SEGLLM_TOKENS = ("<im_gen_start>", "<im_gen>", "<mask_gen>", "<audio_gen>", "<audio_gen_start>",
                 "<audio>", "<video>", "<base>", "<base_null>", "<seg>", "<seg_input>")  # fmt: skip
"""``mm_use_gen`` then ``mm_use_seg`` tokens, in the order ``llava_arch.py`` adds them."""
D, FF, LAYERS, HEADS = 32, 64, 1, 2
CLIP = {"d": 64, "ff": 128, "layers": 2, "img": 32, "patch": 8}  # one 64-wide head
TEXT_TOKENS, TEXT_DIM = 8, 768


_V1 = test_backbones_llava_v1  # llama_keys, clip_keys, random_state


def released_shapes(
    d: int, ff: int, layers: int, clip: dict[str, int]
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a whole SegLLM release (the HF Trainer saves everything, CLIP included)."""
    s = _V1.llama_keys(32000 + len(SEGLLM_TOKENS), d, ff, layers, rotary=False)
    s |= _V1.clip_keys("model.vision_tower.vision_tower.vision_model.", clip["d"], clip["ff"],
                       clip["layers"], clip["img"], clip["patch"])  # fmt: skip
    s |= {"model.mm_projector.0.weight": (d, clip["d"]), "model.mm_projector.0.bias": (d,),
          "model.mm_projector.2.weight": (d, d), "model.mm_projector.2.bias": (d,),
          "model.segmentator_predictor.0.weight": (d, d), "model.segmentator_predictor.0.bias": (d,),
          "model.segmentator_predictor.2.weight": (TEXT_TOKENS * TEXT_DIM, d),
          "model.segmentator_predictor.2.bias": (TEXT_TOKENS * TEXT_DIM,),
          "model.mask_enc_head.weight": (d, 4), "model.mask_enc_head.bias": (d,),
          # a few of HIPIE's tensors (detectron2 backbone, deformable transformer, BERT)
          "model.segmentator.hipie.detr.detr.backbone.0.backbone.stem.conv1.weight": (64, 3, 7, 7),
          "model.segmentator.hipie.detr.detr.transformer.level_embed": (4, 256),
          "model.segmentator.hipie.text_encoder.embeddings.word_embeddings.weight": (30522, 8)}  # fmt: skip
    return s


def config_json(d: int, ff: int, layers: int, heads: int, clip_d: int) -> dict[str, Any]:
    return {"architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava",
            "vocab_size": 32000 + len(SEGLLM_TOKENS), "hidden_size": d, "intermediate_size": ff,
            "num_hidden_layers": layers, "num_attention_heads": heads, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
            "mm_vision_tower": "openai/clip-vit-large-patch14", "mm_hidden_size": clip_d,
            "mm_vision_select_layer": -2, "mm_use_im_start_end": False,
            "mm_projector_type": "mlp2x_gelu", "mm_use_bbox_encode": True,
            "segmentator": "hipie"}  # fmt: skip


def write_release(
    directory: Path, *, drop: str | None = None, add: str | None = None
) -> dict[str, torch.Tensor]:
    directory.mkdir(parents=True)
    state = _V1.random_state(released_shapes(D, FF, LAYERS, CLIP), seed=0)
    if drop:
        del state[drop]
    if add:
        state[add] = torch.zeros(3)
    (directory / "config.json").write_text(json.dumps(config_json(D, FF, LAYERS, HEADS, CLIP["d"])))
    save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "model.safetensors"))
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(sentencepiece_model_path(), Path(tmp) / "tokenizer.model")
        tok = LlamaTokenizer.from_pretrained(tmp)
    tok.add_tokens(list(SEGLLM_TOKENS), special_tokens=True)
    tok.pad_token = tok.unk_token
    tok.save_pretrained(directory)
    return state


def test_convert_and_load(tmp_path: Path) -> None:
    state = write_release(tmp_path / "release")
    # a small decoder keeps the test fast (the default is HIPIE's ResNet-50 at 1024 px)
    small = DecoderConfig(image_size=64, hidden_dim=32, mask_dim=32, num_queries=4, decoder_layers=1,
                          encoder_layers=1, heads=2, ffn_dim=32, encoder_ffn_dim=32,
                          backbone_depths=[1, 1, 1, 1], backbone_widths=[8, 16, 32, 32],
                          backbone_stem=8, backbone_block="basic")  # fmt: skip
    dst = convert_segllm(tmp_path / "release", tmp_path / "converted", decoder=small)
    model, processor = load_checkpoint(dst)
    params = dict(model.named_parameters())
    for ours, theirs in (("prompt_source.predictor.0.weight", "model.segmentator_predictor.0.weight"),
                         ("prompt_source.predictor.2.bias", "model.segmentator_predictor.2.bias"),
                         ("input_encoders.reencode.mask_enc_head.weight", "model.mask_enc_head.weight"),
                         ("llava.model.multi_modal_projector.linear_2.weight", "model.mm_projector.2.weight"),
                         ("llava.model.language_model.layers.0.self_attn.q_proj.weight",
                          "model.layers.0.self_attn.q_proj.weight")):  # fmt: skip
        torch.testing.assert_close(params[ours], state[theirs], msg=ours)
    vocab = processor.tokenizer.get_vocab()
    embed = params["llava.model.language_model.embed_tokens.weight"]
    assert embed.shape[0] == 32000 + len(SEGLLM_TOKENS) + 1  # + <image>
    # <seg_input> reads as the original's <video>, whose row carried its mask / box encodings
    torch.testing.assert_close(
        embed[vocab["<seg_input>"]], state["model.embed_tokens.weight"][vocab["<video>"]]
    )
    assert model.llava.config.vision_config.image_size == CLIP["img"]
    report = json.loads((dst / "conversion.json").read_text())
    hipie = [k for k in state if k.startswith("model.segmentator.hipie.")]
    assert sorted(k for k, why in report["dropped"].items() if why == HIPIE_REASON) == sorted(hipie)
    # the converted model runs: one mask per part, at the image size
    image = np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    masks = {"wing": np.ones((20, 24), np.uint8), "tail": np.zeros((20, 24), np.uint8)}
    ex = processor.encode(image, [], "Parts?", "A wing and a tail.", masks)
    with torch.no_grad():
        out = model(processor.collate([ex]))
    assert [tuple(m.shape) for m in out.masks[0]] == [(20, 24), (20, 24)]


def test_strict_keys_and_wrong_family(tmp_path: Path) -> None:
    write_release(tmp_path / "extra", add="model.segmentator_extra.weight")
    with pytest.raises(ConfigError, match=r"model\.segmentator_extra\.weight"):
        convert("segllm", tmp_path / "extra", tmp_path / "a")
    write_release(tmp_path / "missing", drop="model.mask_enc_head.bias")
    with pytest.raises(ConfigError, match=r"mask_enc_head\.bias"):
        convert("segllm", tmp_path / "missing", tmp_path / "b")
    write_release(tmp_path / "norm", add="model.segmentator.norm.weight")  # use_norm: refused
    with pytest.raises(ConfigError, match=r"segmentator\.norm\.weight"):
        convert("segllm", tmp_path / "norm", tmp_path / "c")
    write_release(tmp_path / "release")
    with pytest.raises(ConfigError, match="look like a segllm checkpoint"):
        convert("lisa", tmp_path / "release", tmp_path / "d")
    lisa = tmp_path / "lisa"
    lisa.mkdir()
    save_file({"model.text_hidden_fcs.0.0.weight": torch.zeros(2, 2),
               "model.visual_model.image_encoder.x": torch.zeros(1)}, str(lisa / "model.safetensors"))  # fmt: skip
    (lisa / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="look like a lisa checkpoint"):
        convert("segllm", lisa, tmp_path / "e")
    result = CliRunner().invoke(
        cli,
        [
            "convert-checkpoint",
            "--from",
            "segllm",
            str(tmp_path / "release"),
            "--out",
            str(tmp_path / "f"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "f" / "llava" / "config.json").is_file()


FULL = {"segllm_7b": (4096, 11008, 32, 32), "segllm_13b": (5120, 13824, 40, 40)}
CLIP_L_224 = {"d": 1024, "ff": 4096, "layers": 24, "img": 224, "patch": 14}


@pytest.mark.parametrize("name", list(FULL))
def test_full_size_keys_and_shapes_on_meta(name: str) -> None:
    d, ff, layers, heads = FULL[name]
    shapes = released_shapes(d, ff, layers, CLIP_L_224)
    source = {k: torch.empty(v, dtype=torch.bfloat16, device="meta") for k, v in shapes.items()}
    base = 32000
    ids = {t: base + i for i, t in enumerate(SEGLLM_TOKENS)}
    parts = assemble_segllm(
        source, config_json(d, ff, layers, heads, 1024), ids, clip_state=None, clip_config=None
    )
    text = parts.llava_config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.vocab_size) == (d, layers, base + 12)
    assert parts.llava_config.vision_config.image_size == 224  # CLIP-L/14 at 224: 256 image tokens
    assert parts.llava_state["model.multi_modal_projector.linear_2.weight"].shape == (d, d)
    assert parts.extra_state["prompt_source.predictor.2.weight"].shape == (6144, d)  # 8 x 768
    assert parts.extra_state["input_encoders.reencode.mask_enc_head.weight"].shape == (d, 4)
    assert parts.family_config.decoder.text_tokens == 8
    # the decoder at HIPIE's sizes: ResNet-50, 900 queries of width 256, 768-wide text tokens
    with torch.device("meta"):
        head = QueryMaskHead(DecoderConfig())
    m2f = head.mask2former
    assert m2f.transformer_module.queries_embedder.weight.shape == (900, 256)
    assert head.text_projection.weight.shape == (256, 768)
    backbone = m2f.pixel_level_module.encoder
    assert (
        list(backbone.config.depths) == [3, 4, 6, 3] and backbone.config.layer_type == "bottleneck"
    )
    resnet50 = sum(p.numel() for p in backbone.parameters())
    assert 23_000_000 < resnet50 < 24_000_000  # torchvision's ResNet-50 without fc: 23.5M
