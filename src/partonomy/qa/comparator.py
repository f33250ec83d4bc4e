"""How part names are compared in the set operations of the question types.

A comparator maps each part name to a canonical key; two parts are "the same" when their keys
are equal. :class:`ExactComparator` (the default, as the original's default config) uses the
name itself. :class:`SynonymComparator` maps the names of a synonym group to one key, which is
how a lemmatiser or an LLM-built synonym table plugs in (the original's Core run used an LLM).

Answers always list the image's own part names (the mask keys), never the canonical keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class PartComparator(Protocol):
    """Maps a part name to the key under which set operations compare it."""

    def canonical(self, part: str) -> str:
        """The comparison key of ``part`` (equal keys = the same part)."""
        ...


class ExactComparator:
    """Parts are the same only when their names are identical."""

    def canonical(self, part: str) -> str:
        return part


class SynonymComparator:
    """Parts are the same when they belong to one synonym group (else compared exactly).

    Args:
        groups: head word -> its synonyms, e.g. ``{"wing": ["wings", "aerofoil"]}``. The head
            is the key of the whole group.

    Raises:
        ValueError: a name is listed in two groups.
    """

    def __init__(self, groups: Mapping[str, Iterable[str]]) -> None:
        self._key: dict[str, str] = {}
        for head, synonyms in groups.items():
            for name in (head, *synonyms):
                previous = self._key.setdefault(name, head)
                if previous != head:
                    raise ValueError(
                        f"part '{name}' is in two synonym groups ('{previous}' and '{head}')"
                    )

    def canonical(self, part: str) -> str:
        return self._key.get(part, part)
