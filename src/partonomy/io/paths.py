"""Relative paths inside files: a relative path resolves from the directory of the file that
names it (``docs/formats.md``), so a path copied into a file in another directory is rebased."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath


def relative_path(path: Path, start: Path) -> str:
    """``path`` relative to the directory ``start``, with ``/`` separators (portable when both
    trees move together). Both are resolved first, which touches the file system."""
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def rebase_path(path: str, source_dir: Path, target_dir: Path) -> str:
    """``path``, as named by a file in ``source_dir``, rewritten for a file in ``target_dir``.

    Absolute paths (POSIX or Windows style) are returned unchanged, and so is every path when
    the two directories are the same one, so a file written next to its source is byte for
    byte what it would have been without rebasing.

    Example: ``rebase_path("images/1.png", Path("world"), Path("splits"))`` is
    ``"../world/images/1.png"``.
    """
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute():
        return path
    source, target = source_dir.resolve(), target_dir.resolve()
    if source == target:
        return path
    # lexical (no resolve() of the file itself): a symlinked image stays the link it was
    return Path(os.path.relpath(os.path.normpath(source / path), target)).as_posix()
