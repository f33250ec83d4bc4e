"""Fixtures of the real-data tests: the builders of tests/fixtures/real, and a full tree."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from fixtures.real import builders
from partonomy.data.sources.label_maps import packaged_class_names


@pytest.fixture(scope="session")
def real() -> ModuleType:
    """The fixture builders (``real.make_ade20k(root)``, ...)."""
    return builders


@pytest.fixture(scope="session")
def cocostuff_names() -> list[str]:
    return packaged_class_names("cocostuff")


@pytest.fixture(scope="session")
def full_tree(tmp_path_factory: pytest.TempPathFactory, real: ModuleType, cocostuff_names) -> Path:
    """A complete seed-README ``dataset/`` tree (read-only for tests: copy before breaking it)."""
    return real.make_full_tree(tmp_path_factory.mktemp("tree"), cocostuff_names)
