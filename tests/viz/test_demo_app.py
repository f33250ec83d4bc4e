"""The demo's Blocks (built, not served) and the `partonomy demo` command's checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from partonomy.cli.demo import model_names
from partonomy.cli.main import cli
from partonomy.viz.demo_app import build_demo


class _Model:
    def answer(self, image: Any, question: str, **kwargs: Any) -> Any:
        raise AssertionError("not called")


def _by_elem_id(demo: Any) -> dict[str, Any]:
    return {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def test_elements_and_the_model_selector() -> None:
    one = _by_elem_id(build_demo({"a": _Model()}))
    assert {"image", "question", "ask", "answer", "masks", "highlight", "status"} <= set(one)
    assert one["model"].visible is False
    two = _by_elem_id(build_demo({"a": _Model(), "b": _Model()}))
    assert two["model"].visible is True and two["model"].choices == [("a", "a"), ("b", "b")]
    with pytest.raises(ValueError, match="at least one model"):
        build_demo({})


def test_without_a_checkpoint_it_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 2
    assert "make quickstart" in result.output and "--checkpoint" in result.output
    result = CliRunner().invoke(cli, ["demo", "--checkpoint", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file or directory" in result.output


def test_model_names_are_distinct(tmp_path: Path) -> None:
    a = tmp_path / "run_a" / "checkpoints" / "final"
    b = tmp_path / "other" / "run_a" / "checkpoints" / "final"
    c = tmp_path / "ckpt"
    assert model_names([a, b, c]) == ["run_a/final", "run_a/final (2)", "ckpt"]
