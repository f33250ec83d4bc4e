"""Tiny datasets in the official formats of each task, written into ``tmp_path``
(builders in ``tests/fixtures/tasks/builders.py``, shared with the PLUM task tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.tasks import builders as BUILDERS


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
