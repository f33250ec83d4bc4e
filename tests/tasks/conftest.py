"""Tiny datasets in the official formats of each task, written into ``tmp_path``
(builders in ``tests/fixtures/tasks/builders.py``, shared with the PLUM task tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

_BUILDERS = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "builders.py"


def load_builders() -> ModuleType:
    spec = importlib.util.spec_from_file_location("task_fixture_builders", _BUILDERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDERS = load_builders()


@pytest.fixture
def textvqa(tmp_path: Path) -> Path:
    return BUILDERS.make_textvqa(tmp_path)  # type: ignore[no-any-return]


@pytest.fixture
def gqa(tmp_path: Path) -> Path:
    return BUILDERS.make_gqa(tmp_path)  # type: ignore[no-any-return]


@pytest.fixture
def pope(tmp_path: Path) -> Path:
    return BUILDERS.make_pope(tmp_path)  # type: ignore[no-any-return]


@pytest.fixture
def reason_seg(tmp_path: Path) -> Path:
    return BUILDERS.make_reason_seg(tmp_path)  # type: ignore[no-any-return]


@pytest.fixture
def refer(tmp_path: Path) -> Path:
    return BUILDERS.make_refer(tmp_path)  # type: ignore[no-any-return]
