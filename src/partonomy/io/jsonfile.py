"""Loading JSON and YAML files with errors that name the file and the position of the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from partonomy.errors import FormatError


def load_json(path: str | Path, *, what: str = "JSON file") -> Any:
    """Parse a JSON file; a missing, truncated or invalid file raises :class:`FormatError`."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{what} not found", file=path, hint="check the path")
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text)
    except json.JSONDecodeError as err:
        # A JSON list or object always ends with its closing bracket; a file cut short does not
        # (the decoder may report the error far from the end, e.g. an unterminated string).
        ending = text.rstrip()[-1:]
        truncated = err.pos >= max(len(text) - 2, 0) or ending not in ("]", "}")
        reason = "the file is truncated" if truncated else "invalid JSON"
        raise FormatError(
            f"{reason} at line {err.lineno}, column {err.colno}: {err.msg}",
            file=path,
            hint="re-create or re-download the file",
        ) from None
    except UnicodeDecodeError as err:
        raise FormatError(f"not UTF-8 text ({err.reason})", file=path) from None


def load_yaml(path: str | Path, *, what: str = "YAML file") -> Any:
    """Parse a YAML file safely (no Python objects); errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{what} not found", file=path, hint="check the path")
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise FormatError(
            f"invalid YAML{where}: {getattr(err, 'problem', err)}", file=path
        ) from None
