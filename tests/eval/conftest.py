"""Shared fixtures of the evaluation tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "qa"


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    """A private copy of the tiny QA fixture (6 questions, their images) in ``tmp_path/qa``."""
    out = tmp_path / "qa"
    shutil.copytree(FIXTURES, out, ignore=shutil.ignore_patterns("*.py"))
    return out / "tiny_qa.json"
