"""The PixelLM converter: a synthetic release in the key layout of ``PixelLMForCausalLM`` (read
from the original ``model/PixelLM.py``, ``llava_arch.py``, ``mask_decoder_multi_scale.py`` and the
merge script: no CLIP, no SAM, segment-anything names inside the decoder), converted, loaded and
compared tensor by tensor; strict key routing; wrong-family refusals; the 7B / 13B keys and shapes
on the meta device against a PixelLM built independently from full-size configs."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
)

from models.plum import test_backbones_llava_v1
from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import sentencepiece_model_path
from partonomy.models.convert import convert, layout
from partonomy.models.convert.common import assemble, meta_state
from partonomy.models.convert.source import detect_family
from partonomy.models.pixellm.codebook import CodebookPrompts
from partonomy.models.pixellm.config import DecoderConfig
from partonomy.models.pixellm.decoder import PixelLMMaskHead
from partonomy.models.pixellm.vision import PixelLMModel, PixelLMProjector, interpolate_positions
from partonomy.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


_V1 = test_backbones_llava_v1  # llama_keys, clip_keys, random_state
TOKENS = [f"[SEG{k}]" for k in range(6)] + ["<im_start>", "<im_end>"]
D, FF, LAYERS, HEADS = 32, 64, 1, 2
CLIP = {"d": 32, "ff": 64, "layers": 12, "img": 28, "patch": 14}  # -11 needs 12 layers
TINY_DECODER = {"prompt": 32, "mlp": 64, "depth": 2, "iou": 32}


def decoder_shapes(
    d: int, clip_d: int, *, prompt: int = 256, mlp: int = 2048, depth: int = 2, iou: int = 256
) -> dict[str, tuple[int, ...]]:
    """PixelLM's own released keys (original names) -> shapes, at 2 scales and 4 mask tokens."""
    p, h, m = prompt, prompt // 2, "model.mask_decoder."
    s: dict[str, tuple[int, ...]] = {
        "model.text_hidden_fcs.0.0.weight": (d, d), "model.text_hidden_fcs.0.0.bias": (d,),
        "model.text_hidden_fcs.0.2.weight": (p, d), "model.text_hidden_fcs.0.2.bias": (p,),
        "model.mm_projector.0.weight": (2 * d, clip_d), "model.mm_projector.0.bias": (2 * d,),
        "model.mm_projector.2.weight": (d, 2 * d), "model.mm_projector.2.bias": (d,),
        "model.out_mm_projector.0.weight": (2 * d, clip_d), "model.out_mm_projector.0.bias": (2 * d,),
        "model.out_mm_projector.2.weight": (d, 2 * d), "model.out_mm_projector.2.bias": (d,),
        "model.image_feature_neck.0.weight": (p, d, 1, 1), "model.image_feature_neck.1.weight": (p,),
        "model.image_feature_neck.1.bias": (p,), "model.image_feature_neck.2.weight": (p, p, 3, 3),
        "model.image_feature_neck.3.weight": (p,), "model.image_feature_neck.3.bias": (p,),
        "model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": (2, h),
        "model.prompt_encoder.not_a_point_embed.weight": (1, p),
        "model.prompt_encoder.no_mask_embed.weight": (1, p),
        "model.prompt_encoder.mask_downscaling.0.weight": (4, 1, 2, 2),
        "model.prompt_encoder.mask_downscaling.0.bias": (4,),
        "model.prompt_encoder.mask_downscaling.1.weight": (4,),
        "model.prompt_encoder.mask_downscaling.1.bias": (4,),
        "model.prompt_encoder.mask_downscaling.3.weight": (16, 4, 2, 2),
        "model.prompt_encoder.mask_downscaling.3.bias": (16,),
        "model.prompt_encoder.mask_downscaling.4.weight": (16,),
        "model.prompt_encoder.mask_downscaling.4.bias": (16,),
        "model.prompt_encoder.mask_downscaling.6.weight": (p, 16, 1, 1),
        "model.prompt_encoder.mask_downscaling.6.bias": (p,),
        m + "iou_token.weight": (1, p), m + "mask_tokens.weight": (4, p), m + "level_embed.weight": (2, p),
        m + "output_upscaling.0.weight": (p, p // 8, 2, 2), m + "output_upscaling.0.bias": (p // 8,),
        m + "output_upscaling.1.weight": (p // 8,), m + "output_upscaling.1.bias": (p // 8,),
        m + "upsample_2x.0.weight": (p, p, 2, 2), m + "upsample_2x.0.bias": (p,),
        m + "upsample_2x.1.weight": (p,), m + "upsample_2x.1.bias": (p,),
        m + "pe1.positional_encoding_gaussian_matrix": (2, h),
    }  # fmt: skip
    s |= {f"model.prompt_encoder.point_embeddings.{k}.weight": (1, p) for k in range(4)}

    def attn(prefix: str, inner: int) -> None:
        for name in ("q_proj", "k_proj", "v_proj"):
            s[f"{prefix}.{name}.weight"], s[f"{prefix}.{name}.bias"] = (inner, p), (inner,)
        s[f"{prefix}.out_proj.weight"], s[f"{prefix}.out_proj.bias"] = (p, inner), (p,)

    for scale in range(2):
        t = f"{m}transformer.{scale}."
        for n in range(depth):
            attn(f"{t}layers.{n}.self_attn", p)
            attn(f"{t}layers.{n}.cross_attn_token_to_image", h)
            attn(f"{t}layers.{n}.cross_attn_image_to_token", h)
            for k in range(1, 5):
                s[f"{t}layers.{n}.norm{k}.weight"] = s[f"{t}layers.{n}.norm{k}.bias"] = (p,)
            s |= {f"{t}layers.{n}.mlp.lin1.weight": (mlp, p), f"{t}layers.{n}.mlp.lin1.bias": (mlp,),
                  f"{t}layers.{n}.mlp.lin2.weight": (p, mlp), f"{t}layers.{n}.mlp.lin2.bias": (p,)}  # fmt: skip
        attn(f"{t}final_attn_token_to_image", h)
        s[f"{t}norm_final_attn.weight"] = s[f"{t}norm_final_attn.bias"] = (p,)
    for k in range(4):
        for i, shape in enumerate([(p, p), (p, p), (p // 8, p)]):
            s[f"{m}output_hypernetworks_mlps.{k}.layers.{i}.weight"] = shape
            s[f"{m}output_hypernetworks_mlps.{k}.layers.{i}.bias"] = shape[:1]
    for i, shape in enumerate([(iou, p), (iou, iou), (4, iou)]):
        s[f"{m}iou_prediction_head.layers.{i}.weight"] = shape
        s[f"{m}iou_prediction_head.layers.{i}.bias"] = shape[:1]
    return s


def released_shapes(
    d: int, ff: int, layers: int, clip_d: int, **decoder: int
) -> dict[str, tuple[int, ...]]:
    return _V1.llama_keys(32000 + len(TOKENS), d, ff, layers, True) | decoder_shapes(
        d, clip_d, **decoder
    )


def config_json(*, d: int, ff: int, layers: int, heads: int, clip_d: int) -> dict:
    return {
        "architectures": ["PixelLMForCausalLM"], "model_type": "llava", "vocab_size": 32000 + len(TOKENS),
        "hidden_size": d, "intermediate_size": ff, "num_hidden_layers": layers,
        "num_attention_heads": heads, "rms_norm_eps": 1e-5, "max_position_embeddings": 512,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "mm_vision_tower": "openai/clip-vit-large-patch14-336", "mm_hidden_size": clip_d,
        "mm_vision_select_layer": -2, "mm_use_im_start_end": True, "train_mask_decoder": True,
        "out_dim": 256, "image_feature_scale_num": 2, "resize_vision_tower": True,
        "resize_vision_tower_size": 448, "vision_tower_for_mask": True, "separate_mm_projector": True,
    }  # fmt: skip


def write_release(
    directory: Path, *, drop: str | None = None, add: str | None = None
) -> dict[str, torch.Tensor]:
    directory.mkdir(parents=True)
    state = _V1.random_state(released_shapes(D, FF, LAYERS, CLIP["d"], **TINY_DECODER), 0)
    if drop:
        del state[drop]
    if add:
        state[add] = torch.zeros(3)
    cfg = config_json(d=D, ff=FF, layers=LAYERS, heads=HEADS, clip_d=CLIP["d"])
    (directory / "config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "model.safetensors"))
    with tempfile.TemporaryDirectory() as tmp:  # the merge script's tokenizer: add_tokens, in order
        os.symlink(sentencepiece_model_path(), Path(tmp) / "tokenizer.model")
        tok = LlamaTokenizer.from_pretrained(tmp)
    tok.add_tokens(TOKENS[:6])
    tok.add_tokens(TOKENS[6:], special_tokens=True)
    tok.pad_token = tok.unk_token
    tok.save_pretrained(directory)
    return state


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local HF CLIP at 28 px / 14-px patches (the stand-in for CLIP-L/14-336)."""
    directory = tmp_path_factory.mktemp("clip336")
    torch.manual_seed(3)
    CLIPVisionModel(
        CLIPVisionConfig(hidden_size=CLIP["d"], intermediate_size=CLIP["ff"],
                         num_hidden_layers=CLIP["layers"], num_attention_heads=2,
                         image_size=CLIP["img"], patch_size=CLIP["patch"])
    ).save_pretrained(directory)  # fmt: skip
    return directory


def test_convert_load_and_run(tmp_path: Path, clip_dir: Path) -> None:
    src = tmp_path / "PixelLM-7B" / "hf_model"
    state = write_release(src)
    assert detect_family(state.keys(), json.loads((src / "config.json").read_text())) == "pixellm"
    dst = convert("pixellm", src, tmp_path / "converted", vision_tower=clip_dir)
    assert not (dst / "sam").exists()
    report = json.loads((dst / "conversion.json").read_text())
    assert report["added_tokens"] == {t: 32000 + i for i, t in enumerate(TOKENS)}
    assert report["image_token_id"] == 32008
    assert set(report["dropped"]) == {k for k in state if k.endswith("inv_freq")}

    model, processor = load_checkpoint(dst)
    assert isinstance(model, PixelLMModel) and model.family == "pixellm"
    params = dict(model.state_dict())
    pairs = {
        "model.mm_projector.0.weight": "llava.model.multi_modal_projector.linear_1.weight",
        "model.out_mm_projector.2.bias": "mask_head.out_mm_projector.2.bias",
        "model.image_feature_neck.3.weight": "mask_head.image_feature_neck.3.weight",
        "model.text_hidden_fcs.0.2.weight": "prompt_source.projection.2.weight",
        "model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix":
            "mask_head.prompt_encoder.shared_embedding.positional_embedding",
        "model.prompt_encoder.mask_downscaling.6.weight": "mask_head.prompt_encoder.mask_embed.conv3.weight",
        "model.mask_decoder.transformer.1.layers.1.norm4.bias":
            "mask_head.mask_decoder.transformer.1.layers.1.layer_norm4.bias",
        "model.mask_decoder.transformer.0.norm_final_attn.weight":
            "mask_head.mask_decoder.transformer.0.layer_norm_final_attn.weight",
        "model.mask_decoder.transformer.1.layers.0.cross_attn_image_to_token.q_proj.weight":
            "mask_head.mask_decoder.transformer.1.layers.0.cross_attn_image_to_token.q_proj.weight",
        "model.mask_decoder.pe1.positional_encoding_gaussian_matrix": "mask_head.mask_decoder.pe1.positional_embedding",
        "model.mask_decoder.iou_prediction_head.layers.1.weight":
            "mask_head.mask_decoder.iou_prediction_head.layers.0.weight",
        "model.mask_decoder.output_hypernetworks_mlps.3.layers.2.bias":
            "mask_head.mask_decoder.output_hypernetworks_mlps.3.proj_out.bias",
        "model.mask_decoder.upsample_2x.1.weight": "mask_head.mask_decoder.upsample_2x.1.weight",
        "model.mask_decoder.level_embed.weight": "mask_head.mask_decoder.level_embed.weight",
        "model.layers.0.mlp.up_proj.weight": "llava.model.language_model.layers.0.mlp.up_proj.weight",
    }  # fmt: skip
    for released, ours in pairs.items():
        torch.testing.assert_close(params[ours], state[released], msg=released)
    # CLIP at 448 (32 x 32 patches), the 336 positions resized in the original's row order
    clip = CLIPVisionModel.from_pretrained(clip_dir).state_dict()
    (key,) = [k for k in clip if k.endswith("embeddings.position_embedding.weight")]
    want = interpolate_positions(clip[key], 32)
    got = params["llava.model.vision_tower.embeddings.position_embedding.weight"]
    torch.testing.assert_close(got, want)
    cfg = model.config
    assert cfg.clip_image_size == 448 and cfg.seg_token_num == 3 and cfg.decoder.prompt_dim == 32
    # the codebook ids are the release's; a forward gives a mask per group
    ids = processor.tokenizer.convert_tokens_to_ids(TOKENS[:6])
    assert ids == list(range(32000, 32006)) and model.prompt_source.codebook_ids == ids
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    ex = processor.encode(image, [], "Parts?", "A wing.", {"wing": np.ones((40, 50), np.uint8)})
    assert ex.pixel_values.shape == (3, 448, 448) and int((ex.input_ids == 32008).sum()) == 256
    with torch.no_grad():
        out = model(processor.collate([ex]))
    assert out.masks[0][0].shape == (40, 50) and out.low_res_masks[0][0].shape == (1, 128, 128)


@pytest.mark.parametrize(
    ("drop", "add", "match"),
    [
        ("model.mask_decoder.level_embed.weight", None, "not filled .*level_embed"),
        (None, "model.mask_decoder.extra_head.weight", "not part of the released pixellm layout"),
    ],
)
def test_strict_keys(
    tmp_path: Path, clip_dir: Path, drop: str | None, add: str | None, match: str
) -> None:
    src = tmp_path / "release"
    write_release(src, drop=drop, add=add)
    with pytest.raises(ConfigError, match=match):
        convert("pixellm", src, tmp_path / "out", vision_tower=clip_dir)
    assert not (tmp_path / "out").exists()


def test_wrong_family_is_refused(tmp_path: Path, clip_dir: Path) -> None:
    src = tmp_path / "release"
    write_release(src)
    with pytest.raises(ConfigError, match=r"look like a pixellm checkpoint \(use --from pixellm\)"):
        convert("lisa", src, tmp_path / "out", vision_tower=clip_dir)
    lisa_like = tmp_path / "lisa"
    write_release(lisa_like, add="model.visual_model.image_encoder.pos_embed")
    with pytest.raises(ConfigError, match=r"look like a lisa checkpoint \(use --from lisa\)"):
        convert("pixellm", lisa_like, tmp_path / "out2", vision_tower=clip_dir)


FULL = {"pixellm_7b": (4096, 11008, 32, 32), "pixellm_13b": (5120, 13824, 40, 40)}


@pytest.mark.parametrize("name", list(FULL))
def test_full_size_keys_and_shapes_on_meta(name: str) -> None:
    d, ff, layers, heads = FULL[name]
    source = {
        k: torch.empty(v, dtype=torch.bfloat16, device="meta")
        for k, v in released_shapes(d, ff, layers, 1024).items()
    }
    clip_cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                num_attention_heads=16, image_size=336, patch_size=14)  # fmt: skip
    clip_state = {
        k: torch.empty(v, device="meta")
        for k, v in _V1.clip_keys("vision_model.", 1024, 4096, 24, 336, 14).items()
    }
    cfg = config_json(d=d, ff=ff, layers=layers, heads=heads, clip_d=1024)
    parts = assemble(layout("pixellm"), source, cfg, clip_state=clip_state, clip_config=clip_cfg)
    assert parts.sam_config is None and parts.sam_state == {}
    mapped = {"llava." + k: v.shape for k, v in parts.llava_state.items()}
    mapped |= {k: v.shape for k, v in parts.extra_state.items()}

    # The target, built independently from full-size configs (CLIP-L/14 at 448).
    n = 32000 + len(TOKENS)
    clip448 = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                               num_attention_heads=16, image_size=448, patch_size=14)  # fmt: skip
    text = LlamaConfig(vocab_size=n + 1, hidden_size=d, intermediate_size=ff,
                       num_hidden_layers=layers, num_attention_heads=heads)  # fmt: skip
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(
            LlavaConfig(vision_config=clip448, text_config=text, image_token_index=n)
        )
        llava.model.multi_modal_projector = PixelLMProjector(1024, d, 16)
        model = PixelLMModel(
            llava=llava,
            prompt_source=CodebookPrompts(d, 256, list(range(32000, 32006)), 3),
            mask_head=PixelLMMaskHead(
                clip_hidden=1024,
                llm_hidden=d,
                decoder=DecoderConfig(),
                scales=2,
                grid=32,
                input_size=448,
            ),
            mask_layers=[-2, -11],
        )
    target = {k: v.shape for k, v in meta_state(model).items()}
    assert sorted(set(target) - set(mapped)) == []
    assert sorted(set(mapped) - set(target)) == []
    assert {k: v for k, v in mapped.items() if target[k] != v} == {}
    assert target["llava.model.vision_tower.embeddings.position_embedding.weight"] == (1025, 1024)
    assert target["llava.model.multi_modal_projector.linear_1.weight"] == (2 * d, 1024)
    assert target["mask_head.image_feature_neck.0.weight"] == (256, d, 1, 1)
    assert target["llava.model.language_model.embed_tokens.weight"] == (n + 1, d)
    assert set(parts.dropped) == {k for k in source if k.endswith("rotary_emb.inv_freq")}


def test_converted_pixellm_trains_with_init_from_and_predicts(
    tmp_path: Path, clip_dir: Path
) -> None:
    """The "(ft)" path of configs/pixellm_*_ft.yaml: a converted release starts a training run
    (``init_from``), and ``partonomy predict`` loads the converted directory itself."""
    from click.testing import CliRunner

    from partonomy.cli.main import cli
    from partonomy.config import from_dict
    from partonomy.training.config import TrainConfig
    from partonomy.training.recipe import run_training

    write_release(tmp_path / "release")
    dst = convert("pixellm", tmp_path / "release", tmp_path / "converted", vision_tower=clip_dir)
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "qa"
    cfg = {
        "family": "pixellm", "run_dir": str(tmp_path / "ft"), "max_steps": 1, "cpu": True,
        "num_threads": 1, "init_from": str(dst),
        "model": {
            "llava": {"pretrained": str(dst / "llava"), "layout": "llava_hf",
                      "tokenizer": "pretrained", "im_start_end": True},
            "decoder": {"prompt_dim": 32, "mlp_dim": 64, "iou_head_hidden": 32},
        },
        "optim": {"lr": 1e-12, "warmup_steps": 1},
        "data": {"qa": {"files": [str(fixtures / "tiny_qa.json")]}, "micro_batch_size": 1},
        "checkpoint": {"every": 0}, "log": {"progress": False, "trackers": []},
    }  # fmt: skip
    result = run_training(from_dict(TrainConfig, cfg))
    assert result.steps == 1 and all(np.isfinite(r["total"]) for r in result.records)
    converted, _ = load_checkpoint(dst)
    trained, _ = load_checkpoint(result.final_checkpoint)
    for name in (
        "llava.model.multi_modal_projector.linear_1.weight",
        "mask_head.mask_decoder.level_embed.weight",
        "prompt_source.projection.2.bias",
    ):  # init_from loaded the released modules (lr 1e-12: one step leaves them in place)
        assert torch.allclose(converted.state_dict()[name], trained.state_dict()[name], atol=1e-6)
    out = tmp_path / "pred"
    cmd = ["predict", str(fixtures / "plane.png"), "What parts can you see?", "--model", "pixellm"]
    cmd += ["--checkpoint", str(dst), "--device", "cpu", "--max-new-tokens", "3", "-o", str(out)]
    done = CliRunner().invoke(cli, cmd)
    assert done.exit_code == 0, done.output
    assert (out / "overlay.png").is_file()
