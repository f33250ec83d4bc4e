"""Errors that tell the user which file, which record and which field is wrong, and what to do."""

from __future__ import annotations

from pathlib import Path


class PartonomyError(Exception):
    """Base class of every error this package raises on purpose (the CLI prints these without a traceback)."""


class FormatError(PartonomyError, ValueError):
    """A file on disk does not follow its documented format.

    Args:
        message: what is wrong, in one sentence.
        file: the file that holds the bad record.
        record: the record's position or id (e.g. ``3`` or ``"question_id 'q7'"``), if any.
        field: the offending field (dotted for nested fields, e.g. ``segmentations.wing[0]``), if any.
        hint: what the user should do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        record: int | str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.record = record
        self.field = field
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        text = ": ".join([", ".join(where), self.message]) if where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(PartonomyError, ValueError):
    """A configuration (YAML file or CLI override) has an unknown key or an invalid value."""
