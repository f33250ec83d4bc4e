"""Atomic file output: a reader never sees a half-written file, even after ``kill -9``.

Whole files are written to a temporary sibling, flushed, fsynced and renamed over the target.
Append-only JSON-lines files are written one complete line per ``write`` and fsynced; a reader
drops a torn last line (see :func:`read_jsonl_tolerant`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success it is fsynced and renamed over
    ``path``, on error it is removed and ``path`` is untouched.

    The file gets the usual permissions (``0o666`` minus the umask), not ``mkstemp``'s ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``)."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON straight into a temp file and rename it over ``path``.

    Streaming (rather than building the whole text first) keeps memory flat for large files
    such as full-size QA sets. NaN is refused (it is not JSON).
    """
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=indent, allow_nan=False)
        handle.write("\n")


def jsonl_line(record: dict[str, Any]) -> bytes:
    """One record as the UTF-8 bytes of a JSON-lines line (compact, newline-terminated)."""
    return (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")


class JsonlAppender:
    """Append JSON records to a ``.jsonl`` file, one fsynced line each.

    A crash can at worst leave one torn last line, which :func:`read_jsonl_tolerant` drops and
    :meth:`open` truncates away before appending, so the file never holds a corrupt record in
    the middle.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> JsonlAppender:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open for appending, first cutting off a torn (newline-less) last line, if any."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            keep = data.rfind(b"\n") + 1
            if keep != len(data):
                with open(self.path, "r+b") as handle:
                    handle.truncate(keep)
        self._handle = open(self.path, "ab")  # noqa: SIM115 (closed in close())

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a single line and fsync it."""
        if self._handle is None:
            raise RuntimeError("JsonlAppender.write called before open()")
        self._handle.write(jsonl_line(record))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_jsonl_tolerant(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the complete records of a JSON-lines file written by :class:`JsonlAppender`.

    A last line without a trailing newline is a record torn by a crash and is skipped. Any other
    undecodable line is an error (the file was not written by us, or was edited by hand).
    """
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    for line in complete.splitlines():
        if not line.strip():
            continue
        yield json.loads(line)
