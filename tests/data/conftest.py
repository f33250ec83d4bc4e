"""Fixtures of the real-data tests: the builders of tests/fixtures/real, and a full tree."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from partonomy.data.sources.label_maps import packaged_class_names

_BUILDERS = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "builders.py"


def _load_builders() -> ModuleType:
    spec = importlib.util.spec_from_file_location("real_fixture_builders", _BUILDERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def real() -> ModuleType:
    """The fixture builders (``real.make_ade20k(root)``, ...)."""
    return _load_builders()


@pytest.fixture(scope="session")
def cocostuff_names() -> list[str]:
    return packaged_class_names("cocostuff")


@pytest.fixture(scope="session")
def full_tree(tmp_path_factory: pytest.TempPathFactory, real: ModuleType, cocostuff_names) -> Path:
    """A complete seed-README ``dataset/`` tree (read-only for tests: copy before breaking it)."""
    return real.make_full_tree(tmp_path_factory.mktemp("tree"), cocostuff_names)
