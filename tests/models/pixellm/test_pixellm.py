"""PixelLM: the codebook, the multi-scale decoder, the 448 preprocessing, the trainable set, the
overlap term, and a tiny model trained, evaluated and asked through the family registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.models.backbones.preprocess import CLIP_MEAN, CLIP_STD, SAM_MEAN, SAM_STD
from partonomy.models.core.family import get_family
from partonomy.models.core.losses import compute_losses, resolve_weights
from partonomy.models.core.trainable import set_trainable
from partonomy.models.pixellm.builders import build_pixellm, tiny_config
from partonomy.models.pixellm.codebook import (
    CodebookPrompts,
    IncompleteGroupError,
    group_codebook_positions,
)
from partonomy.models.pixellm.config import DecoderConfig
from partonomy.models.pixellm.decoder import MultiScaleMaskDecoder, PixelLMMaskHead
from partonomy.models.pixellm.losses import overlap_loss
from partonomy.models.pixellm.vision import interpolate_positions, pad_preprocess
from partonomy.registries import FAMILIES, MODELS
from partonomy.training.checkpoint import processor_new_token_ids
from partonomy.training.config import TrainConfig
from partonomy.training.recipe import run_training

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "qa"
pytestmark = pytest.mark.usefixtures("one_thread")

TINY: dict[str, Any] = {
    "llava": {"text_hidden": 32, "text_layers": 1, "text_heads": 2, "text_intermediate": 64,
              "vision_hidden": 32, "vision_layers": 2, "vision_heads": 2, "image_size": 32,
              "patch_size": 4},
    "clip_image_size": 32, "llm_grid": 4, "mask_layers": [-2, -1],
    "decoder": {"prompt_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "iou_head_hidden": 32},
}  # fmt: skip
BOOK = [100, 101, 102, 103, 104, 105]  # [SEG0] ... [SEG5]


@pytest.fixture(scope="module")
def built() -> tuple[Any, Any]:
    return build_pixellm(from_dict(get_family("pixellm").config_type, TINY))


def _example(processor: Any, parts: tuple[str, ...] = ("wing", "tail"), size=(30, 40)) -> Any:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    masks = {p: (rng.random(size) > 0.5).astype(np.uint8) for p in parts}
    answer = "The airplane has " + " and ".join(f"a {p}" for p in parts) + "."
    return processor.encode(image, [], "Which parts are visible?", answer, masks)


# ------------------------------------------------------------------------------ codebook
def test_codebook_groups_whole_ordered_groups() -> None:
    ids = [7, *BOOK, 8, 9, *BOOK]
    positions = [k for k, i in enumerate(ids) if i in BOOK]
    assert group_codebook_positions(ids, positions, BOOK) == [
        [1, 2, 3, 4, 5, 6],
        [9, 10, 11, 12, 13, 14],
    ]


@pytest.mark.parametrize(
    "ids",
    [
        [*BOOK, *BOOK[:4]],  # a group cut short
        [*BOOK[:3], BOOK[4], BOOK[3], BOOK[5]],  # tokens out of order
        [*BOOK[1:], BOOK[0]],  # a group starting mid-way
    ],
)
def test_incomplete_group_is_an_error(ids: list[int]) -> None:
    positions = list(range(len(ids)))
    with pytest.raises(IncompleteGroupError, match=r"whole group \[SEG0\] \.\.\. \[SEG5\]"):
        group_codebook_positions(ids, positions, BOOK)


def test_codebook_prompts_fuse_each_scale() -> None:
    torch.manual_seed(0)
    source = CodebookPrompts(8, 4, BOOK, seg_token_num=3)
    hidden = torch.randn(20, 8)
    spans = [[1, 2, 3, 4, 5, 6], [10, 11, 13, 14, 15, 17]]
    prompts = source.prompts(hidden, spans)
    assert prompts.shape == (2, 2, 4)  # (targets, scales, D)
    proj = source.projection(hidden[[10, 11, 13, 14, 15, 17]])
    # scale 0 = tokens 0..2 (fixed 1/3 weights), scale 1 = tokens 3..5
    torch.testing.assert_close(prompts[1, 0], proj[:3].mean(0))
    torch.testing.assert_close(prompts[1, 1], proj[3:].mean(0))
    assert source.prompts(hidden, []).shape == (0, 2, 4)
    with pytest.raises(IncompleteGroupError, match="6 token positions"):
        source.prompts(hidden, [[1, 2, 3]])


def test_find_spans_drops_or_refuses_incomplete_answers() -> None:
    ids = torch.tensor([[5, *BOOK, 6, *BOOK, 0], [5, *BOOK[:5], 6, 6, 6, 6, 6, 6, 6, 6, 0]])
    allowed = torch.ones_like(ids, dtype=torch.bool)
    drop = CodebookPrompts(8, 4, BOOK, seg_token_num=3, incomplete_groups="drop")
    assert drop.find_spans(ids, None, allowed) == [[list(range(1, 7)), list(range(8, 14))], []]
    strict = CodebookPrompts(8, 4, BOOK, seg_token_num=3, incomplete_groups="error")
    with pytest.raises(IncompleteGroupError):
        strict.find_spans(ids, None, allowed)


def test_answers_get_one_group_per_part(built: tuple[Any, Any]) -> None:
    _, processor = built
    ex = _example(processor)
    tokens = processor.tokenizer.convert_ids_to_tokens(ex.input_ids.tolist())
    assert [len(s) for s in ex.spans] == [6, 6]
    for span in ex.spans:
        assert [tokens[k] for k in span] == [f"[SEG{k}]" for k in range(6)]
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(IncompleteGroupError):  # a hand-written answer with a cut group
        processor.encode(image, [], "q", "a wing [SEG0] [SEG1].", None, parts=["wing"])


# ------------------------------------------------------------------------------- decoder
@pytest.mark.parametrize(("scales", "side"), [(2, 4 * 8), (1, 2 * 8)])
def test_multi_scale_decoder_shapes(scales: int, side: int) -> None:
    torch.manual_seed(0)
    cfg = DecoderConfig(prompt_dim=32, depth=2, heads=4, mlp_dim=64, iou_head_hidden=32)
    decoder = MultiScaleMaskDecoder(cfg, scales)
    assert len(decoder.transformer) == scales and decoder.level_embed.weight.shape == (scales, 32)
    g, rows = 8, 3
    low, iou = decoder(
        torch.randn(rows, scales, 32, g, g),
        torch.randn(1, 32, g, g),
        torch.randn(rows, scales, 32),
        torch.randn(rows, 32, g, g),
    )
    assert low.shape == (rows, side, side) and iou.shape == (rows,)
    masks, ious = decoder.decode_scale(
        0, torch.randn(rows, 32, g, g), torch.randn(1, 32, g, g), torch.randn(rows, 1, 32),
        torch.randn(rows, 32, g, g), None,
    )  # fmt: skip
    assert masks.shape == (rows, 4, 2 * g, 2 * g) and ious.shape == (rows, 4)
    # the original's N(0, 1) matrix (transformers would scale it by C / 2)
    assert float(decoder.pe1.positional_embedding.std()) < 2.0


def test_coarse_scale_gates_the_fine_one() -> None:
    torch.manual_seed(0)
    cfg = DecoderConfig(prompt_dim=32, depth=1, heads=4, mlp_dim=64, iou_head_hidden=32)
    decoder = MultiScaleMaskDecoder(cfg, 2).eval()
    args = (torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8), torch.randn(1, 1, 32))
    dense = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        a, _ = decoder.decode_scale(1, *args, dense, torch.full((1, 16, 16), -20.0))
        b, _ = decoder.decode_scale(1, *args, dense, torch.full((1, 16, 16), 20.0))
    assert a.shape == (1, 4, 32, 32) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="previous scale"):
        decoder.decode_scale(1, *args, dense, None)


def test_mask_head_from_clip_layers() -> None:
    head = PixelLMMaskHead(
        clip_hidden=16,
        llm_hidden=24,
        decoder=DecoderConfig(prompt_dim=32, depth=1, heads=4, mlp_dim=64, iou_head_hidden=32),
        scales=2,
        grid=8,
        input_size=32,
    )
    emb = head.image_embeddings(torch.randn(3, 2, 64, 16))
    assert emb.shape == (3, 2, 32, 8, 8)
    assert head.no_mask_dense(2).shape == (2, 32, 8, 8)
    low, iou = head.decode(emb[:2], torch.randn(2, 2, 32), head.no_mask_dense(2))
    assert low.shape == (2, 32, 32) and iou.shape == (2,)
    # the padded 32 x 32 frame: keep the resized 20 x 32, resize to 30 x 48
    assert head.postprocess(low, (20, 32), (30, 48)).shape == (2, 30, 48)
    with pytest.raises(ValueError, match="8x8 patch features"):
        head.image_embeddings(torch.randn(1, 2, 63, 16))


def test_model_paths_and_forward(built: tuple[Any, Any]) -> None:
    model, processor = built
    batch = processor.collate([_example(processor), _example(processor, ("wing",), (20, 24))])
    assert batch.input_ids.eq(model.image_token_id).sum(1).tolist() == [16, 16]  # 4 x 4 pooled
    assert torch.equal(batch.pixel_values, batch.sam_pixel_values)  # one padded input
    with torch.no_grad():
        assert model.vision_features(batch.pixel_values).shape == (2, 16, 32)
        assert model.image_embeddings(batch.sam_pixel_values).shape == (2, 2, 32, 8, 8)
        out = model(batch)
    assert [len(m) for m in out.masks] == [2, 1]
    assert out.masks[0][0].shape == (30, 40) and out.masks[1][0].shape == (20, 24)
    assert out.low_res_masks[0][0].shape == (1, 32, 32)


# ------------------------------------------------------------------------------- vision
def test_pad_preprocess_and_the_mean_std_quirk() -> None:
    image = np.full((10, 20, 3), 200, np.uint8)
    sam, size = pad_preprocess(image, 40, "sam")
    assert size == (20, 40) and sam.shape == (3, 40, 40)
    assert sam[0, 0, 0] == pytest.approx((200 - SAM_MEAN[0]) / SAM_STD[0], rel=1e-5)
    assert np.all(sam[:, 20:] == 0)  # zero padding after normalisation
    clip, _ = pad_preprocess(image, 40, "clip")
    assert clip[2, 5, 5] == pytest.approx((200 / 255 - CLIP_MEAN[2]) / CLIP_STD[2], rel=1e-5)
    with pytest.raises(ValueError, match="normalize"):
        pad_preprocess(image, 40, "imagenet")


def test_position_interpolation_keeps_the_original_row_order() -> None:
    table = torch.arange(5 * 3, dtype=torch.float32).reshape(5, 3)  # CLS + 2 x 2 grid
    same = interpolate_positions(table, 2, original_order=True)
    torch.testing.assert_close(same, table)  # identity at the same size, either order
    big = interpolate_positions(table, 4, original_order=True)
    assert big.shape == (17, 3)
    torch.testing.assert_close(big[-1], table[-1])  # the original appends its "CLS" (last) row
    torch.testing.assert_close(big[:-1].mean(0), table[:-1].mean(0))  # grid = rows [:-1]
    fixed = interpolate_positions(table, 4, original_order=False)
    torch.testing.assert_close(fixed[0], table[0])
    torch.testing.assert_close(fixed[1:].mean(0), table[1:].mean(0))


# --------------------------------------------------------------------- recipe and losses
def test_family_registry_recipe_and_trainable(built: tuple[Any, Any]) -> None:
    assert "pixellm" in FAMILIES and "pixellm" in MODELS
    family = get_family("pixellm")
    assert resolve_weights(family.loss_terms) == {"lm": 1.0, "bce": 2.0, "seg": 0.5, "overlap": 0.0}
    model, processor = build_pixellm(from_dict(family.config_type, TINY))
    names = set(
        set_trainable(
            model, family.trainable_type(), new_token_ids=processor_new_token_ids(processor)
        )
    )
    lora = {n for n in names if ".lora_" in n}
    assert lora and all(("q_proj" in n or "v_proj" in n) for n in lora)
    prefixes = (
        "llava.lm_head.",
        "llava.model.multi_modal_projector.",
        "mask_head.",
        "prompt_source.",
    )
    expected = {
        n
        for n, _ in model.named_parameters()
        if n.startswith(prefixes) and "positional_embedding" not in n  # buffers in the original
    }
    expected.add("llava.model.language_model.embed_tokens.new_rows.delta")
    assert names - lora == expected
    assert not any("vision_tower" in n for n in names)  # CLIP frozen
    with pytest.raises(ConfigError, match="PixelLM has no SAM"):
        family.trainable_type(sam_mask_decoder=True)


def test_overlap_loss_by_hand() -> None:
    a = torch.tensor([[3.0, 3.0], [-3.0, -3.0]])
    b = torch.tensor([[3.0, -3.0], [-3.0, -3.0]])
    ta = torch.tensor([[1, 1], [0, 0]], dtype=torch.uint8)
    tb = torch.tensor([[0, 0], [0, 255]], dtype=torch.uint8)
    la, lb = overlap_loss([a, b], [ta, tb])
    # only pixel (0, 0) is positive in both; its BCE, averaged over the 4 pixels
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert float(la) == pytest.approx(float(bce(torch.tensor(3.0), torch.tensor(1.0))) / 4)
    assert float(lb) == pytest.approx(float(bce(torch.tensor(3.0), torch.tensor(0.0))) / 4)
    assert overlap_loss([a], [ta])[0] == 0  # one mask never overlaps


def test_loss_is_the_weighted_sum(built: tuple[Any, Any]) -> None:
    model, processor = built
    batch = processor.collate([_example(processor)])
    family = get_family("pixellm")
    weights = resolve_weights(family.loss_terms, {"overlap": 2.0})
    loss = compute_losses(family.loss_terms, weights, model(batch), batch)
    assert set(loss.terms) == {"lm", "bce", "seg", "overlap"} and loss.n_masks == 2
    total = sum(weights[k] * float(v.detach()) for k, v in loss.terms.items())
    assert float(loss.total.detach()) == pytest.approx(total, rel=1e-6)


def test_presets() -> None:
    family = get_family("pixellm")
    assert set(family.presets) == {"tiny", "pixellm_7b", "pixellm_13b"}
    big = family.preset("pixellm_13b")
    assert big.clip_image_size == 448 and big.llm_grid == 16 and big.mask_layers == [-2, -11]
    assert big.tokens_per_target == 6 and big.normalize == "sam" and big.decoder.depth == 2
    assert tiny_config(llm_grid=2).llm_grid == 2


# ------------------------------------------------------------------- train / eval / predict
def _train(run: Path, steps: int) -> Any:
    cfg = {
        "family": "pixellm", "run_dir": str(run), "max_steps": steps, "cpu": True,
        "num_threads": 1, "model": TINY,
        "trainable": {"language_model": "full", "vision_tower": True},
        "loss": {"seg_loss": "focal_tversky", "weights": {"seg": 8.0}},
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "data": {"qa": {"files": [str(FIXTURES / "tiny_qa.json")]}, "micro_batch_size": 3,
                 "cache_encoded": True},
        "checkpoint": {"every": 0}, "log": {"progress": False},
    }  # fmt: skip
    return run_training(from_dict(TrainConfig, cfg))


def test_tiny_training_loss_falls_then_eval_and_predict(tmp_path: Path) -> None:
    run = tmp_path / "train"
    result = _train(run, steps=24)
    totals = [r["total"] for r in result.records]
    assert set(result.records[0]) >= {"total", "lm", "seg", "bce", "overlap"}
    assert np.mean(totals[-4:]) < 0.95 * np.mean(totals[:4]), totals
    saved = json.loads((result.final_checkpoint / "manifest.json").read_text())
    assert any(n.startswith("mask_head.mask_decoder.") for n in saved["trainable"])

    out = tmp_path / "eval"
    args = ["eval", "--model", "pixellm", str(FIXTURES / "tiny_qa.json"), "--out", str(out)]
    args += ["--no-progress", "--model-opt", f"checkpoint={run}", "--model-opt", "device=cpu"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    results = json.loads((out / "results.json").read_text())
    assert results["overall"]["n_questions"] > 0 and results["overall"]["macro_giou"] is not None
    pred = tmp_path / "pred"
    cmd = ["predict", str(FIXTURES / "plane.png"), "What parts can you see?", "--model", "pixellm"]
    cmd += ["--checkpoint", str(run), "--device", "cpu", "--max-new-tokens", "8", "-o", str(pred)]
    done = CliRunner().invoke(cli, cmd)
    assert done.exit_code == 0, done.output
    assert (pred / "overlay.png").is_file()
