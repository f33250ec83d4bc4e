"""Typed dataclass configs: YAML files are instances of them, and an unknown key is an error.

Usage::

    @dataclass
    class TrainConfig:
        lr: float = 3e-4
        model: ModelConfig = field(default_factory=ModelConfig)

    cfg = from_dict(TrainConfig, yaml_dict, source="configs/tiny.yaml")
    cfg = apply_overrides(cfg, ["model.hidden=64", "lr=1e-3"])
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from partonomy.errors import ConfigError
from partonomy.io.jsonfile import load_yaml

C = TypeVar("C")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        val_tp = args[1] if len(args) == 2 else Any
        return {k: _convert(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _from_dict(cls: type[C], data: dict[str, Any], where: str) -> C:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{where}: unknown key '{key}'.{hint} Known keys: {', '.join(sorted(fields))}"
            )
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def from_dict(cls: type[C], data: dict[str, Any] | None, *, source: str = "") -> C:
    """Build config ``cls`` from a plain dict; unknown keys and wrong types raise :class:`ConfigError`.

    ``__post_init__`` of the dataclass runs as usual, so value checks live there.
    """
    return _from_dict(cls, data or {}, source)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain, YAML-safe data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def apply_overrides_to_dict(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(text)
    return data


def load_config(cls: type[C], path: str | Path, overrides: list[str] | None = None) -> C:
    """Read a YAML config file into ``cls`` and apply ``key.sub=value`` overrides (YAML-typed)."""
    data = load_yaml(path, what="config") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping")
    apply_overrides_to_dict(data, overrides or [])
    return from_dict(cls, data, source=str(path))


def merge_overrides(base: Any, overrides: dict[str, Any], where: str) -> Any:
    """``base`` (a config instance) with ``overrides`` applied: nested dataclasses take dicts,
    unknown keys are errors naming ``where``, and the result is re-validated."""
    known = {f.name for f in dataclasses.fields(base)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(known))}"
            )
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = merge_overrides(current, value, f"{where}.{key}")
        changes[key] = value
    merged = dataclasses.replace(base, **changes)
    # Round-trip through the typed loader so types and __post_init__ checks apply.
    return from_dict(type(merged), to_dict(merged), source=where)
