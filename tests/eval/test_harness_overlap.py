"""The harness's overlap with the model: a batch's images decoded in threads (each image once per
batch and across consecutive questions, every question its own array), and answers checked and
written in a background thread, in order, with errors stopping the run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from partonomy.eval import harness
from partonomy.eval.harness import _ImageCache, _Pending
from partonomy.io.images import load_image
from partonomy.io.qa_pairs import load_qa_pairs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "qa" / "tiny_qa.json"


def test_batch_images_decoded_once_each_in_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    paths = {}
    for name in "ABC":
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 255, (6, 9, 3), dtype=np.uint8)).save(paths[name])
    qa = load_qa_pairs(FIXTURE)[0]
    decoded: list[str] = []

    def counting(image: Path, *, file: Path, record: str) -> np.ndarray:
        decoded.append(image.stem)
        return load_image(image, file=file, record=record)

    monkeypatch.setattr(harness, "load_image", counting)
    with ThreadPoolExecutor(2) as pool:
        cache = _ImageCache(FIXTURE, pool)
        got = []
        for batch in (["A", "B", "A", "B"], ["A", "C"], ["C", "C"]):
            pendings = [_Pending(qa, paths[n], str(k)) for k, n in enumerate(batch)]
            arrays = cache.batch(pendings)
            for name, array in zip(batch, arrays, strict=True):
                want = load_image(paths[name], file=FIXTURE, record="x")
                assert np.array_equal(array, want)
            got += arrays
    # A and B once in the first batch; A again after B was held; C once for two batches
    assert sorted(decoded) == ["A", "A", "B", "C"]
    got[0][...] = 0  # every question has its own copy
    assert got[2].any() and got[4].any()
