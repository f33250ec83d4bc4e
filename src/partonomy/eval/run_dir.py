"""The run directory of ``partonomy eval``: its files, and what a rerun reads back from it.

``config.json`` names the run; a rerun resumes in the same directory only when the
:data:`IDENTITY_KEYS` match (model, model options, QA file content). ``predictions.jsonl`` holds
one line per finished question; a torn last line (a killed run) is dropped. ``results.json`` is
written once every question is predicted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from partonomy.errors import ConfigError, FormatError
from partonomy.io.atomic import atomic_write_json, read_jsonl_tolerant
from partonomy.io.predictions import Prediction, parse_prediction

CONFIG_FILE = "config.json"
PREDICTIONS_FILE = "predictions.jsonl"
RESULTS_FILE = "results.json"
IDENTITY_KEYS = ("model", "model_options", "qa_sha256")
"""The config.json keys that must match for a rerun to resume in the same directory."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
