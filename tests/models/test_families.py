"""Every family of the segmentation-LMM framework: forward shapes, target positions, losses, a tiny
training run, the trainable set, the harness and ``predict`` (tiny random models, fixed seeds)."""

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
from partonomy.models.core.family import get_family
from partonomy.models.core.losses import compute_losses, resolve_weights
from partonomy.models.core.targets import SEG_TOKEN, SegTokenTargets
from partonomy.models.core.trainable import EMBEDDING_PATH, set_trainable
from partonomy.registries import FAMILIES, MODELS
from partonomy.training.checkpoint import processor_new_token_ids
from partonomy.training.config import TrainConfig
from partonomy.training.recipe import run_training

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qa"
pytestmark = pytest.mark.usefixtures("one_thread")

TINY_LLAVA = {"text_hidden": 32, "text_layers": 1, "text_heads": 2, "text_intermediate": 64,
              "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2, "image_size": 32,
              "patch_size": 8}  # fmt: skip
TINY_SAM = {"image_size": 64, "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2,
            "patch_size": 8, "decoder_hidden": 32}  # fmt: skip
FAMILY_NAMES = ("plum", "lisa", "glamm")
SEG_FAMILIES = ("lisa", "glamm")


def tiny_model_config(family: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {"llava": dict(TINY_LLAVA), "sam": dict(TINY_SAM)}
    if family == "plum":
        cfg |= {"bidir_heads": 2, "bidir_ff": 64, "bidir_dropout": 0.0, "feedback_heads": 2}
    return cfg


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def built(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    family = get_family(request.param)
    cfg = from_dict(family.config_type, tiny_model_config(request.param))
    model, processor = family.build(cfg)
    return request.param, model, processor


def _example(processor: Any, parts: tuple[str, ...] = ("wing", "tail"), size=(30, 40)) -> Any:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    masks = {p: (rng.random(size) > 0.5).astype(np.uint8) for p in parts}
    answer = "The airplane has " + " and ".join(f"a {p}" for p in parts) + "."
    return processor.encode(image, [], "Which parts are visible?", answer, masks)


def test_every_family_is_registered_as_a_family_and_a_model() -> None:
    for name in FAMILY_NAMES:
        assert name in FAMILIES and name in MODELS
        family = get_family(name)
        assert family.name == name and "tiny" in family.presets
    with pytest.raises(KeyError, match="Did you mean: lisa"):
        get_family("lisaa")


def test_forward_shapes(built: tuple[str, Any, Any]) -> None:
    name, model, processor = built
    batch = processor.collate([_example(processor), _example(processor, ("wing",), (20, 24))])
    with torch.no_grad():
        out = model(batch)
    b, length = batch.input_ids.shape
    assert out.logits.shape == (b, length, len(processor.tokenizer))
    assert out.hidden.shape == (b, length, TINY_LLAVA["text_hidden"])
    assert [len(m) for m in out.masks] == [2, 1]
    assert out.masks[0][0].shape == (30, 40) and out.masks[1][0].shape == (20, 24)
    assert out.span_queries[0][0].shape == (TINY_SAM["decoder_hidden"],)
    if name == "plum":
        assert out.tag_logits is not None and out.tag_logits.shape == (b, length, 3)
    else:
        assert out.tag_logits is None


@pytest.mark.parametrize("name", SEG_FAMILIES)
def test_seg_positions_are_found_by_token_id(name: str) -> None:
    family = get_family(name)
    _, processor = family.build(from_dict(family.config_type, tiny_model_config(name)))
    ex = _example(processor, ("left wing", "wing", "tail"))
    seg_id = processor.tokenizer.convert_tokens_to_ids(SEG_TOKEN)
    ids = ex.input_ids.tolist()
    assert [k for k, t in enumerate(ids) if t == seg_id] == [s[0] for s in ex.spans]
    assert all(len(s) == 1 for s in ex.spans)
    assert ex.span_parts == ["left wing", "wing", "tail"]  # text order, longest name claimed first
    # (decoding puts spaces around special tokens: compare with single spaces)
    answer = " ".join(processor.tokenizer.decode(ids[ex.answer_start : ex.answer_end]).split())
    if name == "lisa":
        assert "a left wing [SEG] and a wing [SEG] and a tail [SEG]" in answer
    else:
        assert "a <p> left wing </p> [SEG] and a <p> wing </p> [SEG]" in answer
        assert "The <image>" in processor.tokenizer.decode(ids[: ex.answer_start])
    assert (ex.tag_labels == -100).all()


def test_seg_count_must_equal_targets() -> None:
    family = get_family("lisa")
    _, processor = family.build(from_dict(family.config_type, tiny_model_config("lisa")))
    ex = _example(processor, ("wing",))
    with pytest.raises(ValueError, match=r"1 \[SEG\] token\(s\) but 2 target\(s\)"):
        SegTokenTargets().locate(
            ex.input_ids.tolist(),
            ex.answer_start,
            ex.answer_end,
            ["wing", "tail"],
            processor.tokenizer,
            all_occurrences=False,
            strict=True,
        )
    # A part the answer does not name is an error in training (strict), reported when lenient.
    with pytest.raises(ValueError, match="'rudder'"):
        processor.encode(np.zeros((8, 8, 3), np.uint8), [], "Q?", "It has a wing.",
                         {"wing": np.ones((8, 8)), "rudder": np.ones((8, 8))})  # fmt: skip
    lenient = processor.encode(
        np.zeros((8, 8, 3), np.uint8), [], "Q?", "It has a wing.",
        parts=["wing", "rudder"], strict=False,
    )  # fmt: skip
    assert lenient.span_parts == ["wing"] and lenient.unmatched_parts == ["rudder"]


def test_rewrite_places_longest_names_first_and_keeps_case() -> None:
    text, parts = SegTokenTargets().rewrite(
        "A Wing, a wing tip and wingspan.", ["wing", "wing tip"]
    )
    assert text == "A Wing [SEG], a wing tip [SEG] and wingspan."
    assert parts == ["wing", "wing tip"]


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_loss_terms_are_the_family_recipe(name: str) -> None:
    terms = get_family(name).loss_terms
    expected = {
        "plum": {"lm": 1.0, "bio": 2.0, "seg": 8.0, "bce": 2.0, "kl": 0.0},
        "lisa": {"lm": 1.0, "bce": 2.0, "seg": 0.5},
        "glamm": {"lm": 1.0, "bce": 2.0, "seg": 0.5},
    }[name]
    assert resolve_weights(terms) == expected
    with pytest.raises(ConfigError, match="Did you mean 'bce'"):
        resolve_weights(terms, {"bec": 1.0})


def test_loss_is_the_weighted_sum(built: tuple[str, Any, Any]) -> None:
    name, model, processor = built
    batch = processor.collate([_example(processor)])
    family = get_family(name)
    weights = resolve_weights(family.loss_terms)
    loss = compute_losses(family.loss_terms, weights, model(batch), batch)
    assert set(loss.terms) == set(family.loss_terms) and loss.n_masks == 2
    total = sum(weights[k] * float(v.detach()) for k, v in loss.terms.items())
    assert float(loss.total.detach()) == pytest.approx(total, rel=1e-6)


@pytest.mark.parametrize("name", SEG_FAMILIES)
def test_trainable_set_equals_the_spec(name: str) -> None:
    family = get_family(name)
    model, processor = family.build(from_dict(family.config_type, tiny_model_config(name)))
    names = set(
        set_trainable(
            model, family.trainable_type(), new_token_ids=processor_new_token_ids(processor)
        )
    )
    lora = {n for n in names if ".lora_" in n}
    assert lora and all(("q_proj" in n or "v_proj" in n) for n in lora)
    rest = names - lora
    prefixes: tuple[str, ...] = (
        "llava.lm_head.",
        "mask_head.sam.mask_decoder.",
        "prompt_source.projection.",
    )
    if name == "glamm":
        prefixes += ("input_encoders.region.",)
    expected = {
        n
        for n, _ in model.named_parameters()
        if n.startswith(prefixes) or n == EMBEDDING_PATH + ".new_rows.delta"
    }
    assert rest == expected
    assert not any(n.startswith("mask_head.sam.prompt_encoder.") for n in names)  # LISA: frozen


def _train(family: str, run: Path, steps: int, **extra: Any) -> Any:
    cfg = {
        "family": family,
        "run_dir": str(run),
        "max_steps": steps,
        "cpu": True,
        "num_threads": 1,
        "model": tiny_model_config(family),
        "trainable": {"language_model": "full", "sam_image_encoder": True},
        "loss": {"seg_loss": "focal_tversky", "weights": {"seg": 8.0}},
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "data": {"qa": {"files": [str(FIXTURES / "tiny_qa.json")]}, "micro_batch_size": 3,
                 "cache_encoded": True},
        "checkpoint": {"every": 0},
        "log": {"progress": False},
        **extra,
    }  # fmt: skip
    return run_training(from_dict(TrainConfig, cfg))


@pytest.mark.parametrize("name", SEG_FAMILIES)
def test_tiny_training_run_loss_falls(name: str, tmp_path: Path) -> None:
    result = _train(name, tmp_path / "run", steps=24)
    totals = [r["total"] for r in result.records]
    assert set(result.records[0]) >= {"total", "lm", "seg", "bce"}
    assert "bio" not in result.records[0]
    assert np.mean(totals[-4:]) < 0.95 * np.mean(totals[:4]), totals
    saved = json.loads((result.final_checkpoint / "manifest.json").read_text())
    assert any(n.startswith("prompt_source.projection.") for n in saved["trainable"])


@pytest.mark.parametrize("name", SEG_FAMILIES)
def test_harness_and_predict_end_to_end(name: str, tmp_path: Path) -> None:
    run = tmp_path / "train"
    _train(name, run, steps=2)
    out = tmp_path / "eval"
    args = ["eval", "--model", name, str(FIXTURES / "tiny_qa.json"), "--out", str(out)]
    args += ["--no-progress", "--model-opt", f"checkpoint={run}", "--model-opt", "device=cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["overall"]["n_questions"] > 0
    assert results["overall"]["macro_giou"] is not None  # masks came back for the parts
    # another family's checkpoint is refused, naming the family it holds
    other = "lisa" if name == "glamm" else "glamm"
    bad = CliRunner().invoke(cli, [*args[:2], other, *args[3:5], str(tmp_path / "x"), *args[6:]])
    assert bad.exit_code == 2 and f"holds a '{name}' model" in bad.output
    pred = tmp_path / "pred"
    cmd = ["predict", str(FIXTURES / "plane.png"), "What parts can you see?", "--model", name]
    cmd += ["--checkpoint", str(run), "--device", "cpu", "--max-new-tokens", "8", "-o", str(pred)]
    done = CliRunner().invoke(cli, cmd)
    assert done.exit_code == 0, done.output
    spans = json.loads((pred / "spans.json").read_text())
    assert isinstance(spans, (list, dict))
    assert (pred / "overlay.png").is_file()


def test_labelled_lm_rows_give_the_same_loss(built: tuple[str, Any, Any]) -> None:
    name, model, processor = built
    batch = processor.collate([_example(processor), _example(processor, ("wing",), (20, 24))])
    family = get_family(name)
    weights = resolve_weights(family.loss_terms)
    with torch.no_grad():
        full = compute_losses(family.loss_terms, weights, model(batch), batch)
        rows = model(batch, lm_rows="labelled")
        labelled = compute_losses(family.loss_terms, weights, rows, batch)
    n_labelled = int((batch.labels[:, 1:] != -100).sum())
    assert rows.logits.shape == (n_labelled, len(processor.tokenizer))
    assert float(labelled.lm) == pytest.approx(float(full.lm), rel=1e-5)
    assert float(labelled.total) == pytest.approx(float(full.total), rel=1e-5)


def test_glamm_answers_about_a_box_region(tmp_path: Path) -> None:
    from partonomy.models.core.predictor import SegPredictor
    from partonomy.models.core.regions import parse_box, with_box_tokens

    family = get_family("glamm")
    model, processor = family.build(from_dict(family.config_type, tiny_model_config("glamm")))
    assert "region" in model.input_encoders
    predictor = SegPredictor(model.eval(), processor, max_new_tokens=4)
    image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    box = parse_box("5,4,30,20", image.shape[:2])
    with_box = predictor.generate(image, "What is in this region?", boxes=[box])
    plain = predictor.generate(image, "What is in this region?")
    bbox_id = processor.tokenizer.convert_tokens_to_ids("<bbox>")
    assert int((with_box.prompt.input_ids == bbox_id).sum()) == 1
    assert with_box.prompt.boxes == [box]
    assert with_box.generation.hidden is not None
    # the region's embedding replaces the <bbox> token's: the prompt's hidden states differ
    assert with_box.prompt.input_ids.shape != plain.prompt.input_ids.shape
    assert with_box_tokens("Describe <bbox>.", 1) == "Describe <bbox>."
    assert with_box_tokens("Describe it.", 2) == "Describe it. (regions: <bbox>, <bbox>)"
    with pytest.raises(ConfigError, match="holds 1 <bbox>"):
        with_box_tokens("Describe <bbox>.", 2)
    with pytest.raises(ConfigError, match="needs 0 <= x0 < x1 <= 60"):
        parse_box("5,4,70,20", image.shape[:2])
    with pytest.raises(ConfigError, match="four comma-separated numbers"):
        parse_box("5,4,30", image.shape[:2])
    pred = tmp_path / "pred"
    cmd = ["predict", str(FIXTURES / "plane.png"), "What is this?", "--model", "glamm"]
    cmd += ["--box", "2,2,10,9", "--device", "cpu", "--max-new-tokens", "4", "-o", str(pred)]
    done = CliRunner().invoke(cli, cmd)
    assert done.exit_code == 0, done.output
    bad = CliRunner().invoke(cli, [*cmd[:-2], "-o", str(pred), "--box", "1,2"])
    assert bad.exit_code == 2 and "--box '1,2'" in bad.output


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lisa", {"[SEG]": 32000, "<im_start>": 32001, "<im_end>": 32002, "<image>": 32003}),
        ("glamm", {"<im_start>": 32000, "<im_end>": 32001, "<bbox>": 32002, "<point>": 32003,
                   "[SEG]": 32004, "<p>": 32005, "</p>": 32006, "<image>": 32007}),
    ],
)  # fmt: skip
def test_added_token_ids_follow_the_released_tokenizers(name: str, expected: dict) -> None:
    family = get_family(name)
    cfg = tiny_model_config(name)
    cfg["llava"]["layout"] = "llava_v1"
    _, processor = family.build(from_dict(family.config_type, cfg))
    ids = {t: processor.tokenizer.convert_tokens_to_ids(t) for t in expected}
    assert ids == expected


@pytest.mark.parametrize("name", SEG_FAMILIES)
def test_seg_families_run_the_other_tasks(name: str, tmp_path: Path) -> None:
    """ReasonSeg (teacher-forced masks from the [SEG] written after the target phrase) and POPE
    (free-form answers) through the task harness, with an untrained tiny model."""
    from fixtures.tasks import builders
    from partonomy.models.core.loading import build_predictor
    from partonomy.tasks.harness import TaskEvalConfig, run_task_eval

    predictor = build_predictor(name, device="cpu", dtype="float32", max_new_tokens=4)
    (tmp_path / "rs").mkdir()
    (tmp_path / "pope").mkdir()
    reason = builders.make_reason_seg(tmp_path / "rs")
    res = run_task_eval(
        TaskEvalConfig(task="reason_seg", model=name, data=str(reason),
                       out=str(tmp_path / "run_rs"), batch_size=2, progress=False),
        model=predictor,
    )  # fmt: skip
    assert res.results["overall"]["n_scored"] == res.n_questions > 0
    pope = builders.make_pope(tmp_path / "pope")
    out = run_task_eval(
        TaskEvalConfig(task="pope", model=name, data=str(pope), out=str(tmp_path / "run_pope"),
                       batch_size=3, progress=False),
        model=predictor,
    )  # fmt: skip
    assert out.results["overall"]["n_questions"] == 6
