"""Which checkpoint a run resumes from, and the checks that it is the same run.

``resume: auto`` continues from the newest checkpoint with resume state (``final`` included);
``resume: <dir>`` from that one; no ``resume`` refuses a run directory that already holds
checkpoints. A resumed run must have the same ``model`` section (paths of pretrained files
aside) and the same trainable parameters as the checkpoint, and the same number of processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from partonomy.config import to_dict
from partonomy.errors import ConfigError
from partonomy.io.atomic import JsonlAppender, read_jsonl_tolerant
from partonomy.training import checkpoint as ckpt
from partonomy.training.config import TrainConfig, load_train_config

FINAL = "final"
# Model keys that are locations, which legitimately change between machines (a wrong file still
# fails on tensor shapes).
_LOCATION_KEYS = frozenset({"pretrained", "tokenizer"})


def resume_source(cfg: TrainConfig, ckpt_dir: Path) -> Path | None:
    """The checkpoint this run resumes from, or None for a fresh run.

    Raises:
        ConfigError: checkpoints exist but ``resume`` is unset, or ``resume=<dir>`` holds no
            resume state.
    """
    existing = ckpt.list_checkpoints(ckpt_dir)
    final = ckpt_dir / FINAL
    if cfg.resume is None:
        if existing or (final / ckpt.MANIFEST).exists():
            raise ConfigError(
                f"{cfg.run_dir} already holds checkpoints: pass resume=auto to continue that "
                "run, or choose another run_dir"
            )
        return None
    if cfg.resume == "auto":
        candidates = [p for _, p in existing if (p / ckpt.RESUME).exists()]
        if (final / ckpt.RESUME).exists():
            candidates.append(final)
        if not candidates:
            return None
        return max(candidates, key=lambda p: ckpt.read_manifest(p).step)
    path = ckpt.resolve_checkpoint(cfg.resume)
    if not (path / ckpt.RESUME).exists():
        raise ConfigError(f"resume={cfg.resume}: {path} holds no resume state")
    return path


def check_same_model(checkpoint: Path, cfg: TrainConfig) -> None:
    """Refuse to resume ``checkpoint`` when its ``model`` section differs from ``cfg``'s.

    Raises:
        ConfigError: naming each differing ``model.*`` key with both values.
    """
    saved = _flatten(to_dict(load_train_config(checkpoint / ckpt.CONFIG).model), "model")
    now = _flatten(to_dict(cfg.model), "model")
    changed = [
        f"{key}: {saved.get(key)!r} -> {now.get(key)!r}"
        for key in sorted(saved.keys() | now.keys())
        if saved.get(key) != now.get(key) and key.rsplit(".", 1)[-1] not in _LOCATION_KEYS
    ]
    if changed:
        raise ConfigError(
            f"{checkpoint} was trained with another model config ({'; '.join(changed)}). "
            "Resume with the checkpoint's config, or train into a new run_dir (the "
            f"quickstart: a new --out) or delete {cfg.run_dir}"
        )


def check_same_trainable(checkpoint: Path, trainable: list[str]) -> None:
    """Refuse to resume when the checkpoint trained other parameters than this config does.

    Raises:
        ConfigError: the trainable parameter names differ.
    """
    if ckpt.read_manifest(checkpoint).trainable != trainable:
        raise ConfigError(
            f"{checkpoint}: its trainable parameters differ from this config's "
            "(the 'trainable' or 'model' section changed); resume with the same config"
        )


def check_same_world(checkpoint: Path, state: dict[str, Any], world: int) -> None:
    """Refuse to resume on another number of processes (the data order depends on it).

    Raises:
        ConfigError: naming both numbers.
    """
    if state["world_size"] != world:
        raise ConfigError(
            f"{checkpoint} was written by {state['world_size']} process(es); resume with the "
            f"same number (this run has {world})"
        )


def truncate_log(logfile: Path, step: int) -> None:
    """Drop the log records after ``step`` (written by the stopped run after its checkpoint)."""
    kept = [r for r in read_jsonl_tolerant(logfile) if r.get("step", 0) <= step]
    logfile.unlink(missing_ok=True)
    with JsonlAppender(logfile) as out:
        for record in kept:
            out.write(record)


def _flatten(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"prefix.a.b": 1}`` (lists and scalars are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat
