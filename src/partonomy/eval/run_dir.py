"""The run directory of ``partonomy eval``: its files, and what a rerun reads back from it.

``config.json`` names the run; a rerun resumes in the same directory only when the
:data:`IDENTITY_KEYS` match (model, model options, QA file content). ``predictions.jsonl`` holds
one line per finished question; a torn last line (a killed run) is dropped. ``results.json`` is
written once every question is predicted. ``.lock`` is held (``flock``) by the one run writing the
directory: a second concurrent run on the same directory is refused, and a killed run's lock is
released by the kernel, so resuming after ``kill -9`` needs no clean-up.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from partonomy.errors import ConfigError, FormatError
from partonomy.io.atomic import atomic_write_json, read_jsonl_tolerant
from partonomy.io.predictions import Prediction, parse_prediction

CONFIG_FILE = "config.json"
PREDICTIONS_FILE = "predictions.jsonl"
RESULTS_FILE = "results.json"
LOCK_FILE = ".lock"
IDENTITY_KEYS = ("model", "model_options", "qa_sha256")
"""The config.json keys that must match for a rerun to resume in the same directory."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def locked_out_dir(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` exclusively for the duration of the block.

    Two runs appending to one ``predictions.jsonl`` would interleave lines and each skip the
    other's questions, so the second run fails fast instead of waiting. The lock is advisory
    (``fcntl.flock``) and tied to the open file: the kernel drops it when the process exits,
    however it exits. On platforms without ``fcntl`` no lock is taken.

    Raises:
        ConfigError: another process holds the lock (its pid is named when known).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ConfigError(
                f"another `partonomy eval` (pid {holder}) is writing to {out}; wait for it to "
                "finish, or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_out_dir(out: Path, run_config: dict[str, Any], overwrite: bool) -> None:
    """Refuse a mismatched earlier run (unless ``overwrite``), then write config.json."""
    config_path, predictions_path = out / CONFIG_FILE, out / PREDICTIONS_FILE
    if overwrite:
        for name in (PREDICTIONS_FILE, RESULTS_FILE, CONFIG_FILE):
            (out / name).unlink(missing_ok=True)
    elif config_path.exists():
        try:
            old = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise FormatError(
                f"unreadable run config ({err})", file=config_path, hint="use --overwrite"
            ) from None
        for key in IDENTITY_KEYS:
            if not isinstance(old, dict) or old.get(key) != run_config[key]:
                was = old.get(key) if isinstance(old, dict) else None
                raise ConfigError(
                    f"{out} holds a run with a different {key} ({was!r}, now "
                    f"{run_config[key]!r}); config mismatch: pass --overwrite to discard it, "
                    "or choose another --out"
                )
    elif predictions_path.exists():
        raise ConfigError(
            f"{predictions_path} exists but {config_path} does not, so the run it belongs to is "
            "unknown; pass --overwrite to discard it, or choose another --out"
        )
    atomic_write_json(config_path, run_config)


def load_done(path: Path, known: set[str]) -> dict[str, Prediction]:
    """Predictions already written by an earlier (possibly killed) run, by question id."""
    done: dict[str, Prediction] = {}
    lines = read_jsonl_tolerant(path)
    lineno = 0
    while True:
        lineno += 1
        try:
            raw = next(lines)
        except StopIteration:
            break
        except json.JSONDecodeError as err:
            raise FormatError(
                f"invalid JSON ({err.msg}) in the middle of the file",
                file=path,
                record=f"line {lineno}",
                hint="the file was edited by hand; fix the line or use --overwrite",
            ) from None
        pred = parse_prediction(raw, lineno, path)
        if pred.question_id not in known:
            raise FormatError(
                f"prediction for unknown question {pred.question_id!r}",
                file=path,
                record=f"line {lineno}",
                field="question_id",
                hint="the QA file has no such question; use --overwrite to start afresh",
            )
        done[pred.question_id] = pred
    return done
