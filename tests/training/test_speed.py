"""The recipe's speed paths (``speed`` section) give the plain recipe's losses: cached SAM
embeddings (filled on the first run, read on the second), the fused AdamW and Liger's kernels
(GPU), preparing the next batch ahead; length-grouped batches train and resume exactly; bf16
weights stay bf16 and learn; a wrong data path fails before the model is built."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.io.atomic import read_jsonl_tolerant
from partonomy.training.batches import Batches
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


def test_prepare_ahead_gives_the_same_batches_and_losses(synth_qa: Path, tmp_path: Path) -> None:
    extra = {"max_steps": 2, "grad_accum": 2}
    run_training(_cfg(synth_qa, tmp_path / "ahead", **extra))  # the default
    run_training(_cfg(synth_qa, tmp_path / "plain", **extra, **{"speed.prepare_ahead": False}))
    assert _losses(tmp_path / "ahead") == _losses(tmp_path / "plain")  # bit for bit on a CPU
    recipe = TrainRecipe(_cfg(synth_qa, tmp_path / "b"))
    recipe.setup()
    batches = recipe.batches
    assert isinstance(batches, Batches)
    want = batches.batch(3)
    batches.prepare(3)
    assert batches._ready is not None and batches._ready[0] == 3
    assert torch.equal(batches.batch(3).input_ids, want.input_ids)  # the prepared one, used once
    assert batches._ready is None
    other = batches.batch(2)
    batches.prepare(4)
    assert torch.equal(batches.batch(2).input_ids, other.input_ids)  # another position: built
    assert batches._ready is None  # the prepared batch of 4 was dropped, not kept stale
    recipe.cleanup()


def test_length_grouped_run_trains_and_resumes_exactly(synth_qa: Path, tmp_path: Path) -> None:
    extra = {"max_steps": 3, "data.group_by_length": True, "data.group_window": 2,
             "model.bidir_dropout": 0.1}  # fmt: skip
    recipe = TrainRecipe(_cfg(synth_qa, tmp_path / "plan", **extra))
    recipe.setup()
    plan = recipe.plan
    assert plan.lengths is not None and plan.group_window == 2
    assert list(plan.lengths) == [
        sum(len(q) + len(a) for q, a in recipe.samples[i].conversation)
        for i in range(len(recipe.samples))
    ]  # the characters of each conversation, known without building the samples
    batch = recipe.next_batch()
    expected = recipe.processor.collate([recipe.batches.encode(i) for i in plan.indices(0)])
    assert torch.equal(batch.input_ids, expected.input_ids)  # the recipe follows the grouped plan
    recipe.cleanup()

    run_training(_cfg(synth_qa, tmp_path / "a", **extra))
    run_training(_cfg(synth_qa, tmp_path / "b", stop_after=1, **extra))
    run_training(_cfg(synth_qa, tmp_path / "b", resume="auto", **extra))
    uninterrupted, resumed = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    _assert_same(uninterrupted, resumed, 1e-6)
    assert uninterrupted[0]["total"] != uninterrupted[-1]["total"]  # it trains


def test_length_grouping_needs_known_lengths(tmp_path: Path) -> None:
    from partonomy.training.data import sample_lengths

    class Lazy(Sequence[object]):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, index: int) -> object:  # type: ignore[override]
            raise AssertionError("no sample may be built")

    with pytest.raises(ConfigError, match="group_by_length"):
        sample_lengths(Lazy())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="group_window"):
        from_dict(TrainConfig, {"data": {"group_window": 0}})


def test_bf16_weights_train_bf16_parameters_and_the_loss_falls(
    synth_qa: Path, tmp_path: Path
) -> None:
    extra = {"max_steps": 5, "data.limit": 2, "optim.lr": 3e-3, "optim.max_grad_norm": 1.0}
    bf16 = {"speed.bf16_weights": True}
    recipe = TrainRecipe(_cfg(synth_qa, tmp_path / "bf16", **extra, **bf16))
    recipe.setup()
    trained = [(n, p) for n, p in recipe.model.named_parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.bfloat16 for _, p in trained)
    assert any("lora" in n for n, _ in trained)  # LoRA matrices and the heads alike
    result = recipe.train()
    assert all(p.dtype == torch.bfloat16 for _, p in trained)  # after AdamW's steps too
    recipe.cleanup()
    totals = [r["total"] for r in result.records]
    assert max(totals[-2:]) < min(totals[:2]) - 0.05, totals  # the same batch, learnt
    # The first step (before any update) is the fp32 model's loss within bf16 rounding.
    run_training(_cfg(synth_qa, tmp_path / "fp32", **{**extra, "max_steps": 1}))
    first = _losses(tmp_path / "fp32")[0]["total"]
    assert totals[0] == pytest.approx(first, rel=2e-2)
    assert totals[0] != first  # it did run in bf16
    with pytest.raises(ConfigError, match="precision"):
        _cfg(synth_qa, tmp_path / "x", precision="fp32", **bf16)
    with pytest.raises(ConfigError, match="deepspeed"):
        _cfg(synth_qa, tmp_path / "x", **{"distributed.engine": "deepspeed_zero2"}, **bf16)


def test_a_wrong_data_path_fails_before_the_model_is_built(
    synth_qa: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 7B/13B the build takes minutes: a typo in data.qa.files must not wait for it."""
    import partonomy.training.recipe as recipe_module

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the model was built before the data were checked")

    monkeypatch.setattr(recipe_module, "build_model", refuse)
    cfg = _cfg(tmp_path / "nope.json", tmp_path / "r")
    with pytest.raises(ConfigError, match=r"nope\.json does not exist"):
        TrainRecipe(cfg).setup()
