"""Checkpoints: round trip to an inference model, atomic writes, and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.io.atomic import read_jsonl_tolerant
from partonomy.training import checkpoint as ckpt
from partonomy.training.config import TrainConfig
from partonomy.training.recipe import TrainRecipe, run_training

from .conftest import tiny_train_overrides

LOSS_TERMS = ("total", "lm", "bio", "seg", "bce", "kl")


def _cfg(qa: Path, run: Path, **extra: object) -> TrainConfig:
    return from_dict(TrainConfig, tiny_train_overrides(qa, run, **extra))


def _log(run: Path) -> list[dict]:
    return list(read_jsonl_tolerant(run / "train_log.jsonl"))


def test_exact_resume_matches_uninterrupted_run(synth_qa: Path, tmp_path: Path) -> None:
    extra = {"max_steps": 4, "grad_accum": 2, "checkpoint.every": 0, "data.micro_batch_size": 1}
    full = run_training(_cfg(synth_qa, tmp_path / "a", **extra))
    first = run_training(_cfg(synth_qa, tmp_path / "b", stop_after=2, **extra))
    assert first.steps == 2 and first.final_checkpoint.name == "step_000002"
    assert not (tmp_path / "b" / "checkpoints" / "final").exists()
    second = run_training(_cfg(synth_qa, tmp_path / "b", resume="auto", **extra))
    assert second.steps == 4 and [r["step"] for r in second.records] == [3, 4]

    uninterrupted, resumed = _log(tmp_path / "a"), _log(tmp_path / "b")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(uninterrupted, resumed, strict=True):
        for key in (*LOSS_TERMS, "lr", "n_masks"):
            assert b[key] == pytest.approx(a[key], abs=1e-6, rel=1e-6), (a["step"], key)
    assert uninterrupted[0]["total"] != uninterrupted[-1]["total"]  # it did train
    wa = ckpt.load_file(str(full.final_checkpoint / ckpt.WEIGHTS))
    wb = ckpt.load_file(str(second.final_checkpoint / ckpt.WEIGHTS))
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], atol=1e-6, rtol=1e-6)


def test_checkpoint_round_trip_to_inference_model(synth_qa: Path, tmp_path: Path) -> None:
    cfg = _cfg(synth_qa, tmp_path / "run", max_steps=1, **{"checkpoint.every": 0})
    recipe = TrainRecipe(cfg)
    recipe.setup()
    result = recipe.train()
    trained = {n: p.detach().clone() for n, p in recipe.model.named_parameters()}
    recipe.cleanup()

    manifest = ckpt.read_manifest(result.final_checkpoint)
    assert manifest.step == 1 and manifest.has_resume and manifest.has_base  # random-init backbones
    saved = ckpt.load_file(str(result.final_checkpoint / ckpt.WEIGHTS))
    embed = "llava.model.language_model.embed_tokens"
    assert embed + ".weight" not in saved  # only the added rows' delta, (n_new, D)
    assert saved[embed + ".new_rows.delta"].shape[0] == len(recipe.new_token_ids)
    assert manifest.row_subsets == {}
    assert set(manifest.trainable) == set(saved)

    # The run dir resolves to checkpoints/final; every parameter comes back bit-identical.
    model, processor = ckpt.load_checkpoint(tmp_path / "run", merge_lora=False)
    assert not model.training
    loaded = dict(model.named_parameters())
    assert loaded.keys() == trained.keys()
    for name, value in trained.items():
        assert torch.equal(loaded[name], value), name
    assert processor.image_token_id == recipe.processor.image_token_id

    # Merged LoRA gives the same outputs as the adapters.
    merged, _ = ckpt.load_checkpoint(result.final_checkpoint, merge_lora=True)
    assert not any("lora_" in n for n, _ in merged.named_parameters() if _.requires_grad)
    batch = recipe.processor.collate([recipe.batches.encode(0)])
    with torch.no_grad():
        a = model(batch)
        b = merged(batch)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.masks[0][0], b.masks[0][0], atol=1e-4, rtol=1e-4)


def test_fresh_run_refuses_a_dir_with_checkpoints(synth_qa: Path, tmp_path: Path) -> None:
    run_training(_cfg(synth_qa, tmp_path / "run", max_steps=1))
    with pytest.raises(ConfigError, match="resume=auto"):
        TrainRecipe(_cfg(synth_qa, tmp_path / "run", max_steps=1)).setup()


def test_resume_with_another_model_config_names_the_keys(synth_qa: Path, tmp_path: Path) -> None:
    run_training(_cfg(synth_qa, tmp_path / "run", max_steps=1))
    changed = _cfg(synth_qa, tmp_path / "run", max_steps=2, resume="auto",
                   **{"model.sam.decoder_hidden": 48, "model.bidir_ff": 32})  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"model\.bidir_ff: 64 -> 32; model\.sam\.decoder_hidden: 32 -> 48"
    ):
        TrainRecipe(changed).setup()
    # Where the backbones live is not part of the model's identity: a checkpoint whose tokenizer
    # was read from another place resumes.
    saved = tmp_path / "run" / "checkpoints" / "final" / ckpt.CONFIG
    text = saved.read_text()
    assert "tokenizer: llama" in text
    saved.write_text(text.replace("tokenizer: llama", "tokenizer: /elsewhere/tok"))
    assert run_training(_cfg(synth_qa, tmp_path / "run", max_steps=2, resume="auto")).steps == 2


def test_atomic_commit_and_listing(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    for step in (2, 10):
        tmp = ckpt.begin(root / ckpt.step_dir_name(step))
        (tmp / ckpt.MANIFEST).write_text(json.dumps({"format_version": ckpt.FORMAT_VERSION}))
        (tmp / ckpt.RESUME).write_bytes(b"x")
        ckpt.commit(tmp, root / ckpt.step_dir_name(step))
    # A half-written checkpoint (crash before the rename) is invisible.
    crashed = ckpt.begin(root / ckpt.step_dir_name(20))
    (crashed / ckpt.MANIFEST).write_text("{}")
    assert [s for s, _ in ckpt.list_checkpoints(root)] == [2, 10]
    assert ckpt.latest_checkpoint(root) == root / "step_000010"
    # Re-committing the same name replaces it whole.
    tmp = ckpt.begin(root / "step_000010")
    (tmp / ckpt.MANIFEST).write_text("{}")
    ckpt.commit(tmp, root / "step_000010")
    assert not (root / "step_000010" / ckpt.RESUME).exists()
    ckpt.prune(root, keep_last=1)
    assert [s for s, _ in ckpt.list_checkpoints(root)] == [10]
    with pytest.raises(ConfigError, match="no training checkpoint"):
        ckpt.resolve_checkpoint(tmp_path / "nothing")
    assert ckpt.resolve_checkpoint(tmp_path) == root / "step_000010"  # a run directory
    # the folder above run directories (the quickstart's train/): the error names them
    for run in ("run_a", "run_b"):
        (tmp_path / "parent" / run / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"run directories below it: .*/parent/run_a, .*/run_b"):
        ckpt.resolve_checkpoint(tmp_path / "parent")


def _strict_resume_matches(qa: Path, tmp_path: Path, **device: object) -> None:
    extra = {
        "max_steps": 4,
        "checkpoint.every": 0,
        "data.micro_batch_size": 2,
        "deterministic": "strict",
        **device,
    }
    run_training(_cfg(qa, tmp_path / "a", **extra))
    run_training(_cfg(qa, tmp_path / "b", stop_after=2, **extra))
    run_training(_cfg(qa, tmp_path / "b", resume="auto", **extra))
    uninterrupted, resumed = _log(tmp_path / "a"), _log(tmp_path / "b")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(uninterrupted, resumed, strict=True):
        for key in LOSS_TERMS:
            assert b[key] == a[key], (a["step"], key)  # bit-exact, not approximately


def test_strict_determinism_resumes_bit_exactly_and_is_undone_by_cleanup(
    synth_qa: Path, tmp_path: Path
) -> None:
    assert not torch.are_deterministic_algorithms_enabled()
    _strict_resume_matches(synth_qa, tmp_path)
    assert not torch.are_deterministic_algorithms_enabled()  # the process state is put back


@pytest.mark.gpu
def test_strict_determinism_resumes_bit_exactly_on_a_gpu(synth_qa: Path, tmp_path: Path) -> None:
    """On a GPU, SDPA's attention backward and cuBLAS are deterministic only in strict mode."""
    _strict_resume_matches(synth_qa, tmp_path, cpu=False, precision="bf16")


@pytest.mark.gpu
def test_a_later_run_in_the_same_process_may_change_precision(
    synth_qa: Path, tmp_path: Path
) -> None:
    """accelerate's process-wide state is forgotten by cleanup (it refused a new precision; on a
    CPU the recipe always gives accelerate mixed_precision="no", so this needs a GPU)."""
    gpu = {"max_steps": 1, "cpu": False}
    run_training(_cfg(synth_qa, tmp_path / "fp32", precision="fp32", **gpu))
    result = run_training(_cfg(synth_qa, tmp_path / "bf16", precision="bf16", **gpu))
    assert result.steps == 1 and result.records[0]["total"] > 0
