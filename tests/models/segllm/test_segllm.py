"""SegLLM: rounds and mask re-encoding, both evaluation modes, the set loss, a tiny training run,
the trainable set and the harness (tiny random models, fixed seeds)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from partonomy.cli.main import cli
from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.eval.protocol import EvalItem
from partonomy.io.qa_pairs import load_qa_pairs
from partonomy.models.core.family import get_family
from partonomy.models.core.losses import compute_losses, resolve_weights
from partonomy.models.core.trainable import set_trainable
from partonomy.models.segllm.builders import build_segllm, tiny_config
from partonomy.models.segllm.decoder import QueryDecoding, target_in_frame
from partonomy.models.segllm.predictor import SegLLMPredictor, build_predictor
from partonomy.models.segllm.reencode import mask_box, object_crop
from partonomy.models.segllm.targets import SEG_INPUT_TOKEN, SEG_TOKEN
from partonomy.registries import FAMILIES, MODELS
from partonomy.training.config import TrainConfig
from partonomy.training.recipe import run_training

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "qa"
pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "llava": {"text_hidden": 32, "text_layers": 1, "text_heads": 2, "text_intermediate": 64,
              "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2, "image_size": 32,
              "patch_size": 8},
    "decoder": {"image_size": 64, "text_dim": 16, "hidden_dim": 32, "mask_dim": 32,
                "num_queries": 4, "decoder_layers": 1, "encoder_layers": 1, "heads": 2,
                "ffn_dim": 32, "encoder_ffn_dim": 32, "backbone_depths": [1, 1, 1, 1],
                "backbone_widths": [8, 16, 32, 32], "backbone_stem": 8, "backbone_block": "basic"},
}  # fmt: skip
PARTS = ("wing", "tail", "engine")


@pytest.fixture(scope="module")
def built() -> tuple[Any, Any]:
    model, processor = build_segllm(tiny_config(**TINY))
    return model.eval(), processor


def _masks(size: tuple[int, int] = (30, 40)) -> dict[str, np.ndarray]:
    out = {}
    for k, part in enumerate(PARTS):
        m = np.zeros(size, np.uint8)
        m[2 + 8 * k : 9 + 8 * k, 3 + 10 * k : 14 + 10 * k] = 1
        out[part] = m
    return out


def _example(processor: Any, masks: dict[str, np.ndarray] | None = None) -> Any:
    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    answer = "The airplane has a wing, a tail and an engine."
    return processor.encode(image, [], "Which parts are visible?", answer, masks or _masks())


def test_registered_as_a_family_and_a_model() -> None:
    assert "segllm" in FAMILIES and "segllm" in MODELS
    family = get_family("segllm")
    assert set(family.loss_terms) == {"lm", "det_class", "det_mask", "det_dice", "prompt_l2"}
    assert "segllm" in family.converters


def test_rounds_text_labels_and_spans(built: tuple[Any, Any]) -> None:
    _, processor = built
    ex = _example(processor)
    text = processor.tokenizer.decode(ex.input_ids[ex.answer_start : ex.answer_end])
    # one round per part: <seg> after each name, a reference before every round but the first
    assert text.count(SEG_TOKEN) == 3 and text.count(SEG_INPUT_TOKEN) == 4
    assert text.index(SEG_TOKEN) < text.index(SEG_INPUT_TOKEN)
    assert ex.span_parts == list(PARTS)
    is_input = ex.input_ids == processor.seg_input_id
    assert bool((ex.labels[is_input] == -100).all())  # references are inputs, never predicted
    seg_id = processor.tokenizer.convert_tokens_to_ids(SEG_TOKEN)
    assert [int(ex.input_ids[s[0]]) for s in ex.spans] == [seg_id] * 3


def test_reencoding_changes_later_rounds_not_the_first(built: tuple[Any, Any]) -> None:
    model, processor = built
    batch = processor.collate([_example(processor)])
    moved = [t.clone() for t in batch.span_targets[0]]
    moved[0] = torch.roll(
        moved[0], shifts=(12, 15), dims=(0, 1)
    )  # another round-0 mask to re-encode
    with torch.no_grad():
        a = model(batch).masks[0]
        b = model(dataclasses.replace(batch, span_targets=[moved])).masks[0]
    assert torch.equal(a[0], b[0])  # round 0 is decoded before any reference
    assert not torch.allclose(a[1], b[1])  # round 1 re-reads round 0's (different) mask
    # both encodings switched off: the reference is the token alone and the mask no longer matters
    encoder = model.input_encoders["reencode"]
    encoder.config.mask_encode = encoder.config.box_encode = False
    try:
        with torch.no_grad():
            c = model(batch).masks[0]
            d = model(dataclasses.replace(batch, span_targets=[moved])).masks[0]
        assert torch.equal(c[1], d[1])
    finally:
        encoder.config.mask_encode = encoder.config.box_encode = True


def test_encodings_are_dropped_or_kept_in_training_and_scaled_at_eval(
    built: tuple[Any, Any],
) -> None:
    model, processor = built
    encoder = model.input_encoders["reencode"]
    batch = processor.collate([_example(processor)])
    token = model.llava.model.get_input_embeddings().weight[processor.seg_input_id]
    with torch.no_grad():
        full = encoder(batch, {})[0] - token  # eval: 0.5 x (mask-encode, box-encode) per reference
        encoder.config.eval_scale = 1.0
        double = encoder(batch, {})[0] - token
        encoder.config.eval_scale = 0.5
        encoder.train()
        torch.manual_seed(0)
        kept = [encoder(batch, {})[0] - token for _ in range(8)]
        encoder.eval()
    assert full.shape == (4, 32)
    torch.testing.assert_close(double, 2 * full)
    for rows in kept:  # every encoding is either dropped (0) or kept (x1)
        for row, ref in zip(rows, double, strict=True):
            assert torch.allclose(row, torch.zeros_like(row)) or torch.allclose(row, ref, atol=1e-5)


def test_object_crop_and_box() -> None:
    image = torch.arange(3 * 6 * 8, dtype=torch.float32).reshape(3, 6, 8) % 255
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[1:3, 2:7] = True
    assert mask_box(mask) == (2, 1, 6, 2)
    crop, box = object_crop(image, mask, 10)
    assert box == (2, 1, 6, 2) and crop.shape == (3, 10, 10)
    # the lower part of the square is padding (black): the same value everywhere
    assert torch.allclose(crop[0, 6:], crop[0, 9:].expand(4, 10)[:1].expand(4, 10))
    whole, none = object_crop(image, None, 10)  # the dummy: the whole image, no box
    assert none is None and whole.shape == (3, 10, 10)


def test_target_in_frame_by_hand() -> None:
    target = torch.zeros(4, 8, dtype=torch.uint8)
    target[:, :4] = 1
    target[0, 7] = 255
    gt, valid = target_in_frame(target, (4, 8), 8, (4, 4))
    # the image fills the top half of the padded 8x8 square; left half of it is the part
    expected = torch.zeros(4, 4)
    expected[:2, :2] = 1
    torch.testing.assert_close(gt, expected)
    assert valid[0, 3] == 1.0 and valid.sum() == 16  # one ignored pixel of four is still valid


def test_selected_mask_is_the_best_target_query() -> None:
    masks = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 2, 2)
    logits = torch.tensor(
        [[[9.0, 0.0], [0.0, 2.0], [0.0, 1.0]], [[0.0, -1.0], [0.0, -3.0], [5.0, 4.0]]]
    )
    low, scores = QueryDecoding(masks, logits).selected()
    torch.testing.assert_close(low, torch.stack([masks[0, 1], masks[1, 2]]))
    torch.testing.assert_close(scores, torch.tensor([2.0, 4.0]))


def test_losses_and_trainable_set(built: tuple[Any, Any]) -> None:
    model, processor = built
    batch = processor.collate([_example(processor), _example(processor)])
    out = model(batch)
    terms = get_family("segllm").loss_terms
    losses = compute_losses(terms, resolve_weights(terms), out, batch)
    assert set(losses.terms) == set(terms) and losses.n_masks == 6
    weights = resolve_weights(terms)
    expected = sum(weights[k] * v for k, v in losses.terms.items())
    torch.testing.assert_close(losses.total, expected)
    spec = get_family("segllm").trainable_type()
    fresh, _ = build_segllm(tiny_config(**TINY))
    names = set_trainable(fresh, spec)
    assert not any(n.startswith("llava.model.vision_tower.") for n in names)  # CLIP frozen
    for prefix in ("llava.model.language_model.", "llava.model.multi_modal_projector.",
                   "prompt_source.predictor.", "input_encoders.reencode.mask_enc_head.",
                   "mask_head.mask2former.pixel_level_module.",
                   "mask_head.mask2former.transformer_module.",
                   "mask_head.class_head."):  # fmt: skip
        assert any(n.startswith(prefix) for n in names), prefix


def _train(run: Path, steps: int) -> Any:
    cfg = {
        "family": "segllm",
        "run_dir": str(run),
        "max_steps": steps,
        "cpu": True,
        "num_threads": 1,
        "model": TINY,
        "trainable": {"vision_tower": True},
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "data": {"qa": {"files": [str(FIXTURES / "tiny_qa.json")]}, "micro_batch_size": 3,
                 "cache_encoded": True},
        "checkpoint": {"every": 0},
        "log": {"progress": False},
    }  # fmt: skip
    return run_training(from_dict(TrainConfig, cfg))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    run = tmp_path_factory.mktemp("segllm") / "run"
    return run, _train(run, steps=20)


def test_tiny_training_run_loss_falls(trained: tuple[Path, Any]) -> None:
    _, result = trained
    totals = [r["total"] for r in result.records]
    assert set(result.records[0]) >= {"total", "lm", "det_class", "det_mask", "det_dice"}
    assert np.mean(totals[-4:]) < 0.9 * np.mean(totals[:4]), totals
    saved = json.loads((result.final_checkpoint / "manifest.json").read_text())
    assert any(
        n.startswith("mask_head.mask2former.transformer_module.") for n in saved["trainable"]
    )


def _items() -> list[EvalItem]:
    records = [r for r in load_qa_pairs(FIXTURES / "tiny_qa.json") if len(r.correct_parts) >= 2]
    items = []
    for qa in records[:3]:
        image = np.asarray(Image.open(FIXTURES / qa.image_path).convert("RGB"))
        items.append(EvalItem(qa, image))
    assert items, "the fixture needs questions with two or more parts"
    return items


def test_both_evaluation_modes(trained: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    run, _ = trained
    items = _items()
    calls: list[list[int]] = []
    original = SegLLMPredictor._forward_masks

    def spy(self: SegLLMPredictor, batch: Any) -> Any:
        calls.append([len(t) for t in batch.span_targets])
        return original(self, batch)

    monkeypatch.setattr(SegLLMPredictor, "_forward_masks", spy)
    gt = build_predictor(checkpoint=str(run), device="cpu", mask_encode="gt")
    gt_masks = gt.round_masks(items)
    assert len(calls) == 1 and all(n > 0 for n in calls[0])  # one forward, ground-truth references
    calls.clear()
    auto = build_predictor(checkpoint=str(run), device="cpu", mask_encode="predicted")
    auto_masks = auto.round_masks(items)
    rounds = max(len(it.qa.correct_parts) for it in items)
    assert len(calls) == rounds and all(n == 0 for n in calls[0])  # dummy references first
    assert all(n > 0 for n in calls[1])  # then the model's own masks
    for g, a, item in zip(gt_masks, auto_masks, items, strict=True):
        first = item.qa.correct_parts[0]
        assert set(g) == set(a) and g[first].shape == item.size
        assert np.array_equal(g[first], a[first])  # round 0 never reads a reference
    with pytest.raises(ConfigError, match="mask_encode"):
        build_predictor(checkpoint=str(run), device="cpu", mask_encode="oracle")


@pytest.mark.parametrize("mode", ["gt", "predicted"])
def test_harness_end_to_end(trained: tuple[Path, Any], tmp_path: Path, mode: str) -> None:
    run, _ = trained
    out = tmp_path / "eval"
    args = ["eval", "--model", "segllm", str(FIXTURES / "tiny_qa.json"), "--out", str(out)]
    args += ["--no-progress", "--model-opt", f"checkpoint={run}", "--model-opt", "device=cpu"]
    args += ["--model-opt", f"mask_encode={mode}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["overall"]["n_questions"] > 0 and results["overall"]["macro_giou"] is not None
    if mode == "gt":  # free-form answers through the registry too
        pred = tmp_path / "pred"
        cmd = [
            "predict",
            str(FIXTURES / "plane.png"),
            "What parts can you see?",
            "--model",
            "segllm",
        ]
        cmd += [
            "--checkpoint",
            str(run),
            "--device",
            "cpu",
            "--max-new-tokens",
            "8",
            "-o",
            str(pred),
        ]
        done = CliRunner().invoke(cli, cmd)
        assert done.exit_code == 0, done.output
        assert (pred / "overlay.png").is_file()
