"""Relative paths copied from a file in one directory into a file in another."""

from __future__ import annotations

from pathlib import Path

import pytest

from partonomy.io.paths import rebase_path, relative_path


@pytest.mark.parametrize(
    ("source", "target", "path", "expected"),
    [
        ("world", "world", "images/1.png", "images/1.png"),  # same directory: untouched
        ("world", "world/../world", "./images/1.png", "./images/1.png"),  # same, spelled apart
        ("world", "splits", "images/1.png", "../world/images/1.png"),
        ("world", "world/qa", "images/1.png", "../images/1.png"),
        ("world/qa", "world", "../images/1.png", "images/1.png"),
        ("a/b", "c/d/e", "x.png", "../../../a/b/x.png"),
    ],
)
def test_rebase_path(tmp_path: Path, source: str, target: str, path: str, expected: str) -> None:
    got = rebase_path(path, tmp_path / source, tmp_path / target)  # directories need not exist
    assert got == expected
    # the rebased path names the same file from the target directory
    assert (tmp_path / target / got).resolve() == (tmp_path / source / path).resolve()


@pytest.mark.parametrize("path", ["/data/images/1.png", "C:\\data\\1.png", "D:/data/1.png"])
def test_absolute_paths_are_kept(tmp_path: Path, path: str) -> None:
    assert rebase_path(path, tmp_path / "a", tmp_path / "b") == path


def test_relative_path_uses_forward_slashes(tmp_path: Path) -> None:
    (tmp_path / "root" / "images").mkdir(parents=True)
    image = tmp_path / "root" / "images" / "1.png"
    assert relative_path(image, tmp_path / "root") == "images/1.png"
    assert relative_path(image, tmp_path / "other") == "../root/images/1.png"
