"""The on-disk SAM embedding cache: round trip, encoder identity, resumable filling through the CLI,
and evaluation reading it instead of running the encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from partonomy.cli.main import cli
from partonomy.errors import FormatError
from partonomy.eval.protocol import EvalItem
from partonomy.io.qa_pairs import load_qa_pairs
from partonomy.models.core.embedding_cache import EmbeddingCache, encoder_identity, image_key
from partonomy.models.core.loading import load_model
from partonomy.models.core.predictor import SegPredictor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qa"
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_round_trip_and_corrupt_entry(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "enc0")
    value = torch.randn(4, 3, 3).to(torch.bfloat16)
    assert "k" not in cache and cache.get("k") is None
    cache.put("k", value)
    assert "k" in cache
    back = cache.get("k")
    assert back is not None and back.dtype == torch.bfloat16 and torch.equal(back, value)
    assert EmbeddingCache(tmp_path, "enc1").get("k") is None  # another encoder: another space
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes leave no temporary files
    cache.path("k").write_bytes(b"not a tensor")
    with pytest.raises(FormatError, match="cached embedding"):
        cache.get("k")
    with pytest.raises(ValueError, match=r"\(D, h, w\)"):
        cache.put("k", torch.zeros(2, 2))


def test_encoder_identity_follows_weights_and_dtype() -> None:
    model, _ = load_model("plum", device="cpu", dtype="float32")
    ident = encoder_identity(model.mask_head)
    assert ident == encoder_identity(model.mask_head) and len(ident) == 16
    with torch.no_grad():
        next(model.mask_head.sam.vision_encoder.parameters()).add_(1e-3)
    assert encoder_identity(model.mask_head) != ident
    changed = encoder_identity(model.mask_head)
    assert encoder_identity(model.mask_head.to(torch.bfloat16)) != changed  # dtype counts


def test_cli_fills_resumes_and_eval_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qa_file = FIXTURES / "tiny_qa.json"
    out = tmp_path / "cache"
    runner = CliRunner()
    args = ["cache-embeddings", str(qa_file), "--out", str(out), "--device", "cpu",
            "--dtype", "float32", "--no-progress", "--batch-size", "2"]  # fmt: skip
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    records = load_qa_pairs(qa_file)
    n_images = len({qa.image_path for qa in records})
    assert f"{n_images} embedding(s) computed, 0 already cached" in first.output
    again = runner.invoke(cli, args)
    assert (
        again.exit_code == 0
        and f"0 embedding(s) computed, {n_images} already cached" in again.output
    )

    # The cached values are the encoder's own, and evaluation uses them without the encoder.
    model, processor = load_model("plum", device="cpu", dtype="float32")
    items = []
    for qa in records:
        with Image.open(FIXTURES / qa.image_path) as img:
            items.append(EvalItem(qa, np.asarray(img.convert("RGB"), dtype=np.uint8)))
    cache = EmbeddingCache.for_mask_head(out, model.mask_head)
    key = image_key(items[0].image)
    _clip, sam, _, _ = processor.preprocess_image(items[0].image)
    with torch.no_grad():
        want = model.image_embeddings(sam[None])[0]
    got = cache.get(key)
    assert got is not None
    torch.testing.assert_close(got, want)
    plain = SegPredictor(model, processor, batch_size=3).predict(items)

    def no_encoder(pixels: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the encoder ran although every embedding is cached")

    monkeypatch.setattr(model, "image_embeddings", no_encoder)
    cached = SegPredictor(model, processor, batch_size=3, embedding_cache=str(out)).predict(items)
    for a, b in zip(plain, cached, strict=True):
        np.testing.assert_allclose(a.choice_scores, b.choice_scores, atol=1e-6)
        assert a.masks is not None and b.masks is not None
        for part, mask in a.masks.items():
            assert np.array_equal(mask, b.masks[part])
