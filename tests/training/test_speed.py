"""The recipe's opt-in speed paths (``speed`` section) give the plain recipe's losses: cached SAM
embeddings (filled on the first run, read on the second), the fused AdamW and Liger's kernels (GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.io.atomic import read_jsonl_tolerant
from partonomy.training.config import TrainConfig
from partonomy.training.recipe import TrainRecipe, run_training
from partonomy.training.speed import PrefetchedBatches

from .conftest import tiny_train_overrides

TERMS = ("total", "lm", "bio", "seg", "bce")


def _cfg(qa: Path, run: Path, **extra: object) -> TrainConfig:
    base = {"max_steps": 2, "checkpoint.every": 0, "model.bidir_dropout": 0.0}
    return from_dict(TrainConfig, tiny_train_overrides(qa, run, **{**base, **extra}))


def _losses(run: Path) -> list[dict[str, float]]:
    return [{k: r[k] for k in TERMS} for r in read_jsonl_tolerant(run / "train_log.jsonl")]


def _assert_same(a: list[dict[str, float]], b: list[dict[str, float]], tol: float) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        for key in TERMS:
            assert y[key] == pytest.approx(x[key], abs=tol, rel=tol), key


def test_embedding_cache_gives_the_plain_losses(synth_qa: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run_training(_cfg(synth_qa, tmp_path / "plain"))
    run_training(_cfg(synth_qa, tmp_path / "fill", **{"speed.embedding_cache": str(cache)}))
    stored = list(cache.rglob("*.pt"))
    assert stored  # the first cached run wrote the embeddings it computed
    stamps = {p: p.stat().st_mtime_ns for p in stored}
    run_training(_cfg(synth_qa, tmp_path / "read", **{"speed.embedding_cache": str(cache)}))
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.pt")} == stamps  # read, not rewritten
    plain = _losses(tmp_path / "plain")
    _assert_same(plain, _losses(tmp_path / "fill"), 1e-5)
    _assert_same(plain, _losses(tmp_path / "read"), 1e-5)


def test_cached_batches_name_their_images(synth_qa: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "c")
    recipe = TrainRecipe(_cfg(synth_qa, tmp_path / "r", **{"speed.embedding_cache": cache}))
    recipe.setup()
    batch = recipe.next_batch()
    assert batch.image_embeddings is not None
    assert len(batch.image_keys) == batch.image_embeddings.shape[0] == batch.pixel_values.shape[0]
    assert all(isinstance(k, str) for k in batch.image_keys)
    with torch.no_grad():
        direct = recipe.model.image_embeddings(batch.sam_pixel_values)
    torch.testing.assert_close(batch.image_embeddings, direct)
    batch.image_keys = [None] * len(batch.image_keys)
    with pytest.raises(ValueError, match="content keys"):
        recipe.speed.attach(batch)


def test_liger_kernels_need_a_gpu(synth_qa: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="liger"):
        TrainRecipe(_cfg(synth_qa, tmp_path / "k", **{"speed.fused_kernels": "liger"})).setup()
    with pytest.raises(ConfigError, match="not one of"):
        _cfg(synth_qa, tmp_path / "k", **{"speed.fused_kernels": "triton"})


@pytest.mark.gpu
def test_fused_paths_give_the_plain_losses_on_a_gpu(synth_qa: Path, tmp_path: Path) -> None:
    pytest.importorskip("liger_kernel")
    gpu = {"cpu": False, "precision": "fp32"}
    run_training(_cfg(synth_qa, tmp_path / "plain", **gpu))
    fused = {"speed.fused_kernels": "liger", "speed.fused_adam": True}
    run_training(_cfg(synth_qa, tmp_path / "fused", **gpu, **fused))
    _assert_same(_losses(tmp_path / "plain"), _losses(tmp_path / "fused"), 1e-3)


def test_embedding_cache_refuses_a_trained_encoder(synth_qa: Path, tmp_path: Path) -> None:
    cfg = _cfg(synth_qa, tmp_path / "t", **{"speed.embedding_cache": str(tmp_path / "c")})
    cfg.trainable.sam_image_encoder = True
    with pytest.raises(ConfigError, match="frozen image encoder"):
        TrainRecipe(cfg).setup()


def test_prefetched_batches_are_the_same_batches(synth_qa: Path, tmp_path: Path) -> None:
    recipe = TrainRecipe(_cfg(synth_qa, tmp_path / "p", **{"speed.prefetch": True}))
    recipe.setup()
    prefetched = recipe.batches
    assert isinstance(prefetched, PrefetchedBatches)
    plain = prefetched.batches
    for position in (0, 1, 2, 5, 6):  # in order, then a jump (as after a resume)
        got, want = prefetched.batch(position), plain.batch(position)
        assert torch.equal(got.input_ids, want.input_ids)
        assert torch.equal(got.pixel_values, want.pixel_values)
        assert got.span_parts == want.span_parts
    recipe.cleanup()
    assert prefetched._ahead is None


@pytest.mark.gpu
def test_embedding_cache_on_a_gpu(synth_qa: Path, tmp_path: Path) -> None:
    gpu = {"cpu": False, "precision": "fp32"}
    run_training(_cfg(synth_qa, tmp_path / "plain", **gpu))
    cached = {"speed.embedding_cache": str(tmp_path / "cache")}
    run_training(_cfg(synth_qa, tmp_path / "fill", **gpu, **cached))
    run_training(_cfg(synth_qa, tmp_path / "read", **gpu, **cached))
    plain = _losses(tmp_path / "plain")
    _assert_same(plain, _losses(tmp_path / "fill"), 1e-4)
    _assert_same(plain, _losses(tmp_path / "read"), 1e-4)
