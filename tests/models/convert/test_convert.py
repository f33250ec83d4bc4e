"""Converters of released LISA / GLaMM / PLUM checkpoints.

Synthetic checkpoints are written at tiny sizes in exactly the released key layouts (read from the
original code: LLaVA-v1 ``LlavaLlamaForCausalLM`` keys, segment-anything keys under the family's SAM
prefix, the family heads), with ``config.json`` and the tokenizer the original scripts saved (the
32k LLaMA SentencePiece model plus the family's added tokens, in their order). They are converted,
loaded with :func:`partonomy.training.checkpoint.load_checkpoint`, and compared tensor by tensor.
At 7B / 13B size the same mapping runs on meta tensors and is compared with a SegLMM built on the
meta device from independent full-size configs.
"""

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
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    SamModel,
)

from models.plum import test_backbones, test_backbones_llava_v1
from partonomy.cli.main import cli
from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import sentencepiece_model_path
from partonomy.models.backbones.sam_layout import infer_sam_config
from partonomy.models.convert import convert, layout
from partonomy.models.convert.common import assemble, meta_state
from partonomy.models.convert.source import SourceCheckpoint, detect_family
from partonomy.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


_SAM = test_backbones  # original_sam_shapes, TINY, VIT_H: hand-written SAM layouts
_V1 = test_backbones_llava_v1  # llama_keys, clip_keys, random_state

TOKENS = {
    "lisa": ["[SEG]", "<im_start>", "<im_end>"],
    "glamm": ["<im_start>", "<im_end>", "<bbox>", "<point>", "[SEG]", "<p>", "</p>"],
    "plum": ["<im_start>", "<im_end>"],
}
SAM_PREFIX = {
    "lisa": "model.visual_model.",
    "glamm": "model.grounding_encoder.",
    "plum": "model.visual_model.",
}
D, FF, LAYERS, HEADS = 32, 64, 1, 2
CLIP = {"d": 32, "ff": 64, "layers": 3, "img": 32, "patch": 8}


# ------------------------------------------------------------------------ released layouts
def head_shapes(
    family: str,
    d: int,
    prompt: int,
    clip_d: int,
    *,
    plum_ff: int = 2048,
    feedback: bool = True,
    grid: int = 64,
) -> dict[str, tuple[int, ...]]:
    """The family's own released keys (text_hidden_fcs, region encoder, PLUM heads) -> shapes."""
    s: dict[str, tuple[int, ...]] = {
        "model.text_hidden_fcs.0.0.weight": (d, d),
        "model.text_hidden_fcs.0.0.bias": (d,),
        "model.text_hidden_fcs.0.2.weight": (prompt, d),
        "model.text_hidden_fcs.0.2.bias": (prompt,),
    }
    if family == "glamm":
        r, c = "model.region_encoder.", clip_d
        for i in range(4):
            s |= {
                f"{r}mlvl_fuse.input_conv.{i}.weight": (c, c + 2, 1, 1),
                f"{r}mlvl_fuse.input_conv.{i}.bias": (c,),
                f"{r}roi_align.pconvs.{i}.weight": (c, c, 3, 3),
                f"{r}roi_align.pconvs.{i}.bias": (c,),
            }
        for i in range(5):
            s |= {
                f"{r}mlvl_fuse.fuse_convs.{i}.conv.weight": (c, c, 3, 3),
                f"{r}mlvl_fuse.fuse_convs.{i}.gn.weight": (c,),
                f"{r}mlvl_fuse.fuse_convs.{i}.gn.bias": (c,),
            }
        s |= {
            f"{r}roi_align.pos_embedd.0.weight": (256, 4),
            f"{r}roi_align.pos_embedd.0.bias": (256,),
            f"{r}roi_align.pos_embedd.2.weight": (256,),
            f"{r}roi_align.pos_embedd.2.bias": (256,),
            f"{r}roi_align.pos_embedd.3.weight": (c, 256),
            f"{r}roi_align.pos_embedd.3.bias": (c,),
            f"{r}roi_align.pos_embedd.5.weight": (c,),
            f"{r}roi_align.pos_embedd.5.bias": (c,),
            f"{r}roi_align.updims.weight": (d, c),
            f"{r}roi_align.updims.bias": (d,),
            f"{r}roi_align.flatten_linear.weight": (c, c * 196),
            f"{r}roi_align.flatten_linear.bias": (c,),
        }
    if family == "plum":
        t, b = "model.token_to_mask_fcs.0.", "bio_encoder.encoder.layers.0."
        s |= {
            t + "0.weight": (d, d),
            t + "0.bias": (d,),
            t + "2.weight": (3, d),
            t + "2.bias": (3,),
            b + "self_attn.in_proj_weight": (3 * d, d),
            b + "self_attn.in_proj_bias": (3 * d,),
            b + "self_attn.out_proj.weight": (d, d),
            b + "self_attn.out_proj.bias": (d,),
            b + "linear1.weight": (plum_ff, d),
            b + "linear1.bias": (plum_ff,),
            b + "linear2.weight": (d, plum_ff),
            b + "linear2.bias": (d,),
            b + "norm1.weight": (d,),
            b + "norm1.bias": (d,),
            b + "norm2.weight": (d,),
            b + "norm2.bias": (d,),
        }
        if feedback:
            m = "mask_pooler."
            s |= {
                m + "queries": (grid * grid, 1, prompt),
                m + "attn.in_proj_weight": (3 * prompt, prompt),
                m + "attn.in_proj_bias": (3 * prompt,),
                m + "attn.out_proj.weight": (prompt, prompt),
                m + "attn.out_proj.bias": (prompt,),
                m + "mask_modulator.projections.0.weight": (8, prompt),
                m + "mask_modulator.projections.0.bias": (8,),
                m + "mask_modulator.projections.1.weight": (32, prompt),
                m + "mask_modulator.projections.1.bias": (32,),
            }
    return s


def released_shapes(
    family: str,
    *,
    vocab_base: int,
    d: int,
    ff: int,
    layers: int,
    sam: dict[str, Any],
    clip_d: int,
    projector: str,
    rotary: bool = True,
    **heads: Any,
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a whole released checkpoint (no CLIP: the merge scripts drop it)."""
    vocab = vocab_base + len(TOKENS[family])
    s = _V1.llama_keys(vocab, d, ff, layers, rotary)
    if projector == "linear":
        s |= {"model.mm_projector.weight": (d, clip_d), "model.mm_projector.bias": (d,)}
    else:
        s |= {
            "model.mm_projector.0.weight": (d, clip_d),
            "model.mm_projector.0.bias": (d,),
            "model.mm_projector.2.weight": (d, d),
            "model.mm_projector.2.bias": (d,),
        }
    sam_shapes = _SAM.original_sam_shapes(**sam)
    s |= {SAM_PREFIX[family] + k: v for k, v in sam_shapes.items()}
    grid = sam["img"] // sam["patch"]
    s |= head_shapes(family, d, sam["prompt"], clip_d, grid=grid, **heads)
    return s


def config_json(
    family: str, *, d: int, ff: int, layers: int, heads: int, clip_d: int, vocab: int
) -> dict:
    return {
        "architectures": [f"{family.upper()}ForCausalLM"],
        "model_type": "llava",
        "vocab_size": vocab,
        "hidden_size": d,
        "intermediate_size": ff,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 512,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "mm_vision_tower": "openai/clip-vit-large-patch14",
        "mm_hidden_size": clip_d,
        "mm_vision_select_layer": -2,
        "mm_use_im_start_end": True,
        "train_mask_decoder": True,
        "out_dim": 256,
    }


def write_tokenizer(family: str, directory: Path) -> None:
    """The tokenizer as the original scripts saved it: 32k LLaMA + the family's tokens, in order."""
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(sentencepiece_model_path(), Path(tmp) / "tokenizer.model")
        tok = LlamaTokenizer.from_pretrained(tmp)
    if family == "lisa":
        tok.add_tokens("[SEG]")
        tok.add_tokens(["<im_start>", "<im_end>"], special_tokens=True)
    else:
        tok.add_tokens(["<im_start>", "<im_end>"], special_tokens=True)
        if family == "glamm":
            tok.add_tokens(["<bbox>", "<point>", "[SEG]", "<p>", "</p>"], special_tokens=True)
    tok.pad_token = tok.unk_token
    tok.save_pretrained(directory)


def write_release(
    family: str,
    directory: Path,
    *,
    sharded: str = "bin",
    seed: int = 0,
    drop: str | None = None,
    add: str | None = None,
    **heads: Any,
) -> dict[str, torch.Tensor]:
    """A tiny released directory of ``family``; returns its tensors."""
    directory.mkdir(parents=True)
    projector = "mlp2x" if family == "glamm" else "linear"
    shapes = released_shapes(
        family,
        vocab_base=32000,
        d=D,
        ff=FF,
        layers=LAYERS,
        sam=_SAM.TINY,
        clip_d=CLIP["d"],
        projector=projector,
        **heads,
    )
    state = _V1.random_state(shapes, seed)
    if drop:
        del state[drop]
    if add:
        state[add] = torch.zeros(3)
    cfg = config_json(
        family,
        d=D,
        ff=FF,
        layers=LAYERS,
        heads=HEADS,
        clip_d=CLIP["d"],
        vocab=32000 + len(TOKENS[family]),
    )
    (directory / "config.json").write_text(json.dumps(cfg))
    keys = sorted(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    weight_map = {}
    for i, part in enumerate(halves):
        if sharded == "bin":
            name = f"pytorch_model-{i + 1:05d}-of-00002.bin"
            torch.save({k: state[k] for k in part}, directory / name)
        else:
            name = f"model-{i + 1:05d}-of-00002.safetensors"
            save_file({k: state[k].contiguous() for k in part}, str(directory / name))
        weight_map |= {k: name for k in part}
    index = "pytorch_model.bin.index.json" if sharded == "bin" else "model.safetensors.index.json"
    (directory / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    write_tokenizer(family, directory)
    return state


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local HF CLIP vision checkpoint (what --vision-tower points at)."""
    directory = tmp_path_factory.mktemp("clip")
    torch.manual_seed(3)
    CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=CLIP["d"],
            intermediate_size=CLIP["ff"],
            num_hidden_layers=CLIP["layers"],
            num_attention_heads=2,
            image_size=CLIP["img"],
            patch_size=CLIP["patch"],
        )
    ).save_pretrained(directory)
    return directory


# ------------------------------------------------------------------------- end to end
@pytest.mark.parametrize(
    ("family", "sharded"), [("lisa", "bin"), ("glamm", "safetensors"), ("plum", "bin")]
)
def test_convert_and_load(tmp_path: Path, clip_dir: Path, family: str, sharded: str) -> None:
    src = tmp_path / f"{family}-release"
    state = (
        write_release(family, src, sharded=sharded, plum_ff=48)
        if family == "plum"
        else write_release(family, src, sharded=sharded)
    )
    dst = convert(family, src, tmp_path / "converted", vision_tower=clip_dir)
    assert not (tmp_path / "converted.tmp").exists()
    assert {p.name for p in dst.iterdir()} >= {
        "llava",
        "sam",
        "weights.safetensors",
        "config.yaml",
        "manifest.json",
        "conversion.json",
    }
    model, processor = load_checkpoint(dst)
    assert model.family == family
    sd = model.state_dict()
    tok = processor.tokenizer
    n = 32000 + len(TOKENS[family])
    # Added tokens keep their ids; <image> is appended with a new row (the mean of the others).
    for i, token in enumerate(TOKENS[family]):
        assert tok.convert_tokens_to_ids(token) == 32000 + i
    assert tok.convert_tokens_to_ids("<image>") == n == model.image_token_id
    embed = sd["llava.model.language_model.embed_tokens.weight"]
    assert embed.shape == (n + 1, D)
    torch.testing.assert_close(embed[:n], state["model.embed_tokens.weight"])
    torch.testing.assert_close(embed[n], state["model.embed_tokens.weight"].mean(0))
    torch.testing.assert_close(sd["llava.lm_head.weight"][:n], state["lm_head.weight"])
    torch.testing.assert_close(
        sd["llava.model.language_model.layers.0.self_attn.k_proj.weight"],
        state["model.layers.0.self_attn.k_proj.weight"],
    )
    torch.testing.assert_close(
        sd["llava.model.language_model.norm.weight"], state["model.norm.weight"]
    )
    if family == "glamm":
        torch.testing.assert_close(
            sd["llava.model.multi_modal_projector.linear_2.weight"],
            state["model.mm_projector.2.weight"],
        )
    else:
        torch.testing.assert_close(
            sd["llava.model.multi_modal_projector.linear_1.weight"],
            state["model.mm_projector.weight"],
        )
        torch.testing.assert_close(
            sd["llava.model.multi_modal_projector.linear_2.weight"], torch.eye(D)
        )
    clip = {
        k.removeprefix("vision_model."): v
        for k, v in CLIPVisionModel.from_pretrained(clip_dir).state_dict().items()
    }
    torch.testing.assert_close(
        sd["llava.model.vision_tower.encoder.layers.2.mlp.fc1.weight"],
        clip["encoder.layers.2.mlp.fc1.weight"],
    )
    sam = SAM_PREFIX[family]
    torch.testing.assert_close(
        sd["mask_head.sam.mask_decoder.iou_prediction_head.proj_out.weight"],
        state[sam + "mask_decoder.iou_prediction_head.layers.2.weight"],
    )
    torch.testing.assert_close(
        sd["mask_head.sam.vision_encoder.layers.1.attn.rel_pos_h"],
        state[sam + "image_encoder.blocks.1.attn.rel_pos_h"],
    )
    torch.testing.assert_close(
        sd["mask_head.sam.prompt_encoder.mask_embed.conv2.weight"],
        state[sam + "prompt_encoder.mask_downscaling.3.weight"],
    )
    if family in ("lisa", "glamm"):
        torch.testing.assert_close(
            sd["prompt_source.projection.2.weight"], state["model.text_hidden_fcs.0.2.weight"]
        )
        assert model.prompt_source.seg_token_id == tok.convert_tokens_to_ids("[SEG]")
    if family == "glamm":
        r = "model.region_encoder."
        torch.testing.assert_close(
            sd["input_encoders.region.fuse_convs.4.norm.bias"],
            state[r + "mlvl_fuse.fuse_convs.4.gn.bias"],
        )
        torch.testing.assert_close(
            sd["input_encoders.region.flatten.weight"], state[r + "roi_align.flatten_linear.weight"]
        )
        assert model.input_encoders["region"].token_id == tok.convert_tokens_to_ids("<bbox>")
    if family == "plum":
        torch.testing.assert_close(
            sd["prompt_source.span_query.mlp.0.weight"], state["model.text_hidden_fcs.0.0.weight"]
        )
        torch.testing.assert_close(
            sd["prompt_source.span_extractor.head.2.bias"],
            state["model.token_to_mask_fcs.0.2.bias"],
        )
        torch.testing.assert_close(
            sd["prompt_source.span_extractor.encoder.linear1.weight"],
            state["bio_encoder.encoder.layers.0.linear1.weight"],
        )
        torch.testing.assert_close(
            sd["feedback.film2.proj.weight"],
            state["mask_pooler.mask_modulator.projections.1.weight"],
        )
        torch.testing.assert_close(sd["feedback.queries"], state["mask_pooler.queries"])
    # The prompt wraps the image in <im_start>/<im_end>, as the originals were trained.
    assert "<im_start>" in processor.prompt([], "What is this?")


def test_plum_shared_prompt_encoder_duplicates(tmp_path: Path, clip_dir: Path) -> None:
    """mask_pooler.prompt_encoder.* / block1 / block2 / final_conv share SAM's tensors: dropped when
    equal, refused when they differ, used when only the duplicate name was saved."""
    src = tmp_path / "plum"
    state = write_release("plum", src, plum_ff=48)
    pe = "model.visual_model.prompt_encoder."
    dup = {
        "mask_pooler.prompt_encoder.no_mask_embed.weight": state[pe + "no_mask_embed.weight"],
        "mask_pooler.block2.0.weight": state[pe + "mask_downscaling.3.weight"],
        "mask_pooler.final_conv.bias": state[pe + "mask_downscaling.6.bias"],
    }
    moved = tmp_path / "plum-dup"
    state2 = write_release("plum", moved, plum_ff=48, drop=pe + "mask_downscaling.3.weight")
    assert state2.keys() == state.keys() - {pe + "mask_downscaling.3.weight"}
    # Same tensors under both names: dropped.
    torch.save(dup, src / "pytorch_model-00003-of-00003.bin")
    index = json.loads((src / "pytorch_model.bin.index.json").read_text())
    index["weight_map"] |= {k: "pytorch_model-00003-of-00003.bin" for k in dup}
    (src / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    dst = convert("plum", src, tmp_path / "out", vision_tower=clip_dir)
    dropped = json.loads((dst / "conversion.json").read_text())["dropped"]
    assert set(dup) <= set(dropped)
    # Only the duplicate name present: it stands in for SAM's key.
    (moved / "pytorch_model-00003-of-00003.bin").write_bytes(
        (src / "pytorch_model-00003-of-00003.bin").read_bytes()
    )
    index = json.loads((moved / "pytorch_model.bin.index.json").read_text())
    index["weight_map"] |= {k: "pytorch_model-00003-of-00003.bin" for k in dup}
    (moved / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    model, _ = load_checkpoint(convert("plum", moved, tmp_path / "out2", vision_tower=clip_dir))
    torch.testing.assert_close(
        model.state_dict()["mask_head.sam.prompt_encoder.mask_embed.conv2.weight"],
        state[pe + "mask_downscaling.3.weight"],
    )
    # A duplicate that differs is refused.
    torch.save({k: v + 1 for k, v in dup.items()}, src / "pytorch_model-00003-of-00003.bin")
    with pytest.raises(ConfigError, match="should duplicate"):
        convert("plum", src, tmp_path / "out3", vision_tower=clip_dir)


# -------------------------------------------------------------------------- strictness
def test_missing_key_is_listed(tmp_path: Path, clip_dir: Path) -> None:
    src = tmp_path / "lisa"
    write_release("lisa", src, drop="model.text_hidden_fcs.0.2.bias")
    with pytest.raises(
        ConfigError, match=r"target keys not filled \(1\): prompt_source.projection.2.bias"
    ):
        convert("lisa", src, tmp_path / "out", vision_tower=clip_dir)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()
    src2 = tmp_path / "lisa-no-sam-layer"
    write_release("lisa", src2, drop="model.visual_model.mask_decoder.output_upscaling.3.bias")
    with pytest.raises(
        ConfigError, match=r"\(SAM\): target keys not filled \(1\): mask_decoder.upscale_conv2.bias"
    ):
        convert("lisa", src2, tmp_path / "out", vision_tower=clip_dir)


def test_extra_key_is_listed(tmp_path: Path, clip_dir: Path) -> None:
    src = tmp_path / "lisa"
    write_release("lisa", src, add="model.text_hidden_fcs.1.0.weight")
    with pytest.raises(
        ConfigError,
        match=r"not part of the released lisa layout \(1\): model.text_hidden_fcs.1.0.weight",
    ):
        convert("lisa", src, tmp_path / "out", vision_tower=clip_dir)


def test_needs_vision_tower_and_refuses_overwrite(tmp_path: Path, clip_dir: Path) -> None:
    src = tmp_path / "lisa"
    write_release("lisa", src)
    with pytest.raises(
        ConfigError, match="--vision-tower with a local copy of openai/clip-vit-large-patch14"
    ):
        convert("lisa", src, tmp_path / "out")
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        convert("lisa", src, tmp_path / "out", vision_tower=clip_dir)


@pytest.mark.parametrize(
    ("actual", "asked"), [("glamm", "lisa"), ("lisa", "glamm"), ("plum", "lisa"), ("lisa", "plum")]
)
def test_wrong_family_is_refused(tmp_path: Path, clip_dir: Path, actual: str, asked: str) -> None:
    src = tmp_path / actual
    write_release(actual, src, plum_ff=48) if actual == "plum" else write_release(actual, src)
    with pytest.raises(
        ConfigError, match=f"look like a {actual} checkpoint \\(use --from {actual}\\)"
    ):
        convert(asked, src, tmp_path / "out", vision_tower=clip_dir)


def test_detect_family() -> None:
    assert (
        detect_family(
            ["model.text_hidden_fcs.0.0.weight", "model.visual_model.image_encoder.pos_embed"]
        )
        == "lisa"
    )
    assert detect_family(["model.text_hidden_fcs.0.0.weight", "model.region_encoder.x"]) == "glamm"
    assert (
        detect_family(["model.text_hidden_fcs.0.0.weight", "bio_encoder.encoder.layers.0.x"])
        == "plum"
    )
    assert (
        detect_family(
            ["model.text_hidden_fcs.0.0.weight", "model.visual_model.image_encoder.x"],
            {"seg_token_num": 3},
        )
        == "pixellm"
    )
    assert detect_family(["model.layers.0.self_attn.q_proj.weight"]) is None


def test_cli(tmp_path: Path, clip_dir: Path) -> None:
    src = tmp_path / "lisa"
    write_release("lisa", src, sharded="safetensors")
    out = tmp_path / "ckpt"
    result = CliRunner().invoke(
        cli,
        [
            "convert-checkpoint",
            "--from",
            "lisa",
            str(src),
            "--out",
            str(out),
            "--vision-tower",
            str(clip_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "lisa" in result.output and (out / "weights.safetensors").is_file()
    result = CliRunner().invoke(
        cli,
        [
            "convert-checkpoint",
            "--from",
            "glamm",
            str(src),
            "--out",
            str(tmp_path / "x"),
            "--vision-tower",
            str(clip_dir),
        ],
    )
    assert result.exit_code == 2 and "look like a lisa checkpoint" in result.output


def test_lazy_source_reads_shapes_without_loading(tmp_path: Path) -> None:
    src = tmp_path / "glamm"
    write_release("glamm", src, sharded="safetensors")
    source = SourceCheckpoint(src)
    assert source.shape("model.region_encoder.roi_align.updims.weight") == (D, CLIP["d"])
    meta = source.meta()
    assert meta["model.embed_tokens.weight"].is_meta and meta[
        "model.embed_tokens.weight"
    ].shape == (32007, D)


# ----------------------------------------------------------------- full size, meta device
FULL = {
    "lisa_7b": dict(
        family="lisa",
        d=4096,
        ff=11008,
        layers=32,
        heads=32,
        clip=("224", 1024, 24, 4096, 224),
        projector="linear",
    ),
    "lisa_13b_llama2": dict(
        family="lisa",
        d=5120,
        ff=13824,
        layers=40,
        heads=40,
        clip=("224", 1024, 24, 4096, 224),
        projector="linear",
    ),
    "glamm_7b": dict(
        family="glamm",
        d=4096,
        ff=11008,
        layers=32,
        heads=32,
        clip=("336", 1024, 24, 4096, 336),
        projector="mlp2x",
    ),
    "plum_13b": dict(
        family="plum",
        d=5120,
        ff=13824,
        layers=40,
        heads=40,
        clip=("224", 1024, 24, 4096, 224),
        projector="linear",
    ),
}


@pytest.mark.parametrize("name", list(FULL))
def test_full_size_keys_and_shapes_on_meta(name: str) -> None:
    from partonomy.models.core.mask_heads import SamMaskHead
    from partonomy.models.core.model import SegLMM
    from partonomy.models.core.prompt_sources import SegTokenPrompts

    spec = FULL[name]
    family, d = spec["family"], spec["d"]
    _, clip_d, clip_layers, clip_ff, img = spec["clip"]
    heads = {"plum_ff": 2048} if family == "plum" else {}
    shapes = released_shapes(
        family,
        vocab_base=32000,
        d=d,
        ff=spec["ff"],
        layers=spec["layers"],
        sam=_SAM.VIT_H,
        clip_d=clip_d,
        projector=spec["projector"],
        **heads,
    )
    source = {k: torch.empty(v, dtype=torch.bfloat16, device="meta") for k, v in shapes.items()}
    clip_cfg = CLIPVisionConfig(
        hidden_size=clip_d,
        intermediate_size=clip_ff,
        num_hidden_layers=clip_layers,
        num_attention_heads=16,
        image_size=img,
        patch_size=14,
    )
    clip_state = {
        k: torch.empty(v, device="meta")
        for k, v in _V1.clip_keys("vision_model.", clip_d, clip_ff, clip_layers, img, 14).items()
    }
    n = 32000 + len(TOKENS[family])
    cfg = config_json(
        family,
        d=d,
        ff=spec["ff"],
        layers=spec["layers"],
        heads=spec["heads"],
        clip_d=clip_d,
        vocab=n,
    )
    parts = assemble(layout(family), source, cfg, clip_state=clip_state, clip_config=clip_cfg)
    mapped = {"llava." + k: v.shape for k, v in parts.llava_state.items()}
    mapped |= {"mask_head.sam." + k: v.shape for k, v in parts.sam_state.items()}
    mapped |= {k: v.shape for k, v in parts.extra_state.items()}

    # The target, built independently from full-size configs.
    text = LlamaConfig(
        vocab_size=n + 1,
        hidden_size=d,
        intermediate_size=spec["ff"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
    )
    llava_cfg = LlavaConfig(
        vision_config=clip_cfg,
        text_config=text,
        image_token_index=n,
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
    )
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(llava_cfg)
        sam = SamModel(
            infer_sam_config(
                {
                    k: torch.empty(v, device="meta")
                    for k, v in _SAM.original_sam_shapes(**_SAM.VIT_H).items()
                }
            )
        )
        encoders: dict[str, Any] = {}
        feedback = None
        if family == "plum":
            from partonomy.models.core.feedback import MaskFeedbackPooler
            from partonomy.models.plum.prompts import BioSpanPrompts
            from partonomy.models.plum.span_extractor import SpanExtractor
            from partonomy.models.plum.span_query import SpanQuery

            prompts: Any = BioSpanPrompts(SpanExtractor(d), SpanQuery(d, 256))
            feedback = MaskFeedbackPooler(256, (4, 16), (64, 64), 8)
        else:
            prompts = SegTokenPrompts(d, 256, seg_token_id=0)
        if family == "glamm":
            from partonomy.models.glamm.region import RegionEncoder

            encoders["region"] = RegionEncoder(
                token_id=0,
                vision_hidden=1024,
                image_size=336,
                patch_size=14,
                num_states=25,
                select_layer=-2,
                llm_hidden=d,
            )
        model = SegLMM(
            llava=llava,
            prompt_source=prompts,
            mask_head=SamMaskHead(sam),
            feedback=feedback,
            input_encoders=encoders,
        )
    target = {k: v.shape for k, v in meta_state(model).items()}
    assert sorted(set(target) - set(mapped)) == []
    assert sorted(set(mapped) - set(target)) == []
    assert {k: v for k, v in mapped.items() if target[k] != v} == {}
    assert target["llava.model.language_model.embed_tokens.weight"] == (n + 1, d)
    if family == "glamm":
        assert target["input_encoders.region.flatten.weight"] == (1024, 1024 * 196)
    dropped = set(parts.dropped)
    assert dropped == {k for k in shapes if k.endswith("rotary_emb.inv_freq")}


# ------------------------------------------------------- converted checkpoints in use
def test_converted_lisa_trains_with_init_from_and_predicts(tmp_path: Path, clip_dir: Path) -> None:
    """The "(ft)" path: a converted release starts a training run (``init_from``, backbones from
    the converted directory), and ``partonomy predict`` loads the converted directory itself."""
    from partonomy.config import from_dict
    from partonomy.training.config import TrainConfig
    from partonomy.training.recipe import run_training

    src = tmp_path / "lisa-release"
    write_release("lisa", src, sharded="safetensors")
    dst = convert("lisa", src, tmp_path / "converted", vision_tower=clip_dir)
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "qa"
    cfg = {
        "family": "lisa",
        "run_dir": str(tmp_path / "ft"),
        "max_steps": 1,
        "cpu": True,
        "num_threads": 1,
        "init_from": str(dst),
        "model": {
            "llava": {"pretrained": str(dst / "llava"), "layout": "llava_hf",
                      "tokenizer": "pretrained", "im_start_end": True},
            "sam": {"pretrained": str(dst / "sam"), "layout": "hf"},
        },
        "optim": {"lr": 1e-12, "warmup_steps": 1},
        "data": {"qa": {"files": [str(fixtures / "tiny_qa.json")]}, "micro_batch_size": 2},
        "checkpoint": {"every": 0},
        "log": {"progress": False, "trackers": []},
    }  # fmt: skip
    result = run_training(from_dict(TrainConfig, cfg))
    assert result.steps == 1 and all(np.isfinite(r["total"]) for r in result.records)
    converted, _ = load_checkpoint(dst)
    trained, _ = load_checkpoint(result.final_checkpoint)
    for name in ("prompt_source.projection.0.weight", "prompt_source.projection.2.bias"):
        # init_from loaded the released [SEG] projection (lr 1e-12: one step leaves it in place)
        assert torch.allclose(converted.state_dict()[name], trained.state_dict()[name], atol=1e-6)
    out = tmp_path / "pred"
    cmd = ["predict", str(fixtures / "plane.png"), "What parts can you see?", "--model", "lisa"]
    cmd += ["--checkpoint", str(dst), "--device", "cpu", "--max-new-tokens", "3", "-o", str(out)]
    done = CliRunner().invoke(cli, cmd)
    assert done.exit_code == 0, done.output
    assert (out / "overlay.png").is_file()
