"""One registry class for models, question types, metrics and data sources.

Entries are either objects registered with :meth:`Registry.register` or lazy ``"module:attr"``
strings that are imported on first use, so that listing a registry never imports torch.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from partonomy.errors import PartonomyError

T = TypeVar("T")


class UnknownNameError(PartonomyError, KeyError):
    """A name is not in a registry. The message lists close matches and every available name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """A named mapping from snake_case keys to objects (classes, builders, functions).

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"model"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers an object under ``name``; a duplicate name is an error."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T | str) -> None:
        """Register ``obj`` (or a lazy ``"package.module:attr"`` string) under ``name``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        """Return the entry for ``name``, importing it if it is lazy.

        Raises:
            UnknownNameError: ``name`` is not registered; the message suggests close matches.
        """
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UnknownNameError(
                f"Unknown {self.kind} '{name}'.{hint} Available: {', '.join(sorted(self._entries))}"
            )
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attr)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
