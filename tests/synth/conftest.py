"""Shared Partonomy-Synth worlds, generated once per test session (small images keep them fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from partonomy.data.synth import SynthConfig, generate_world

WORLD_IMAGES = 80
WORLD_SIZE = 96
WORLD_SEED = 7


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A default-config world: ``(descriptor_path, graph_path)``."""
    out = tmp_path_factory.mktemp("synth_world")
    return generate_world(
        out, n_images=WORLD_IMAGES, seed=WORLD_SEED, size=WORLD_SIZE, progress=False
    )


@pytest.fixture(scope="session")
def busy_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Every image multi-object (red box) and occluded: ``(descriptor_path, graph_path)``."""
    out = tmp_path_factory.mktemp("synth_busy")
    cfg = SynthConfig(multi_object_prob=1.0, occlusion_prob=1.0, canonical_first=False)
    return generate_world(out, n_images=24, seed=3, size=128, config=cfg, progress=False)
