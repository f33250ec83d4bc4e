"""The answer mutation: wrong answers made by editing the correct part list.

Each wrong answer applies 1 or 2 operations (``rng.integers(1, 3)``) to the correct list. An
operation is ``add`` (a sampled part), ``delete`` (a present part) or ``replace`` (a present part
by a sampled one), drawn uniformly among those possible: on an empty list, or when every present
part was already touched, only ``add`` is. No part is touched twice, so a deleted part never
comes back and an added one is never removed again. A wrong answer must be non-empty, differ
from the correct answer and from the wrong answers before it; each gets 20 tries, and if one
fails the whole question is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

MAX_TRIES = 20
"""Tries per wrong answer before the question is dropped."""

OperationKind = Literal["add", "delete", "replace"]


class PartSource(Protocol):
    """Where added parts come from (:class:`partonomy.qa.samplers.QuestionPartSampler`)."""

    def sample(self, rng: np.random.Generator, excluded: Iterable[str]) -> str | None: ...


@dataclass(frozen=True)
class Operation:
    """One edit: ``add`` puts ``part`` in, ``delete`` takes ``part`` out, ``replace`` swaps
    ``part`` for ``new``."""

    kind: OperationKind
    part: str
    new: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.kind, "part": self.part}
        if self.new is not None:
            out["new"] = self.new
        return out


@dataclass(frozen=True)
class WrongAnswer:
    """A wrong part list (sorted) and the operations that made it from the correct one."""

    parts: tuple[str, ...]
    operations: tuple[Operation, ...]


def mutate(
    correct: Sequence[str], n_ops: int, source: PartSource, rng: np.random.Generator
) -> WrongAnswer | None:
    """Apply ``n_ops`` operations to ``correct``; None when a part had to be sampled and none was left.

    The result may be empty: the caller checks validity.
    """
    current = list(correct)
    touched: set[str] = set()
    operations: list[Operation] = []
    for _ in range(n_ops):
        untouched = [p for p in current if p not in touched]
        kinds: tuple[OperationKind, ...] = ("add", "delete", "replace") if untouched else ("add",)
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "delete":
            gone = untouched[int(rng.integers(len(untouched)))]
            current.remove(gone)
            touched.add(gone)
            operations.append(Operation("delete", gone))
            continue
        replaced = untouched[int(rng.integers(len(untouched)))] if kind == "replace" else None
        new = source.sample(rng, touched.union(current))
        if new is None:
            return None
        touched.add(new)
        if replaced is None:
            current.append(new)
            operations.append(Operation("add", new))
        else:
            current[current.index(replaced)] = new
            touched.add(replaced)
            operations.append(Operation("replace", replaced, new))
    return WrongAnswer(tuple(sorted(current)), tuple(operations))


def make_wrong_answers(
    correct: Sequence[str],
    source: PartSource,
    rng: np.random.Generator,
    *,
    n_wrong: int,
    max_tries: int = MAX_TRIES,
) -> list[WrongAnswer] | None:
    """``n_wrong`` distinct, non-empty wrong answers, or None if one failed ``max_tries`` times.

    Args:
        correct: the correct parts, sorted and distinct.
        source: the part sampler of this question.
        rng: the question's generator.
    """
    seen = {tuple(correct)}
    wrong: list[WrongAnswer] = []
    for _ in range(n_wrong):
        for _try in range(max_tries):
            answer = mutate(correct, int(rng.integers(1, 3)), source, rng)
            if answer is not None and answer.parts and answer.parts not in seen:
                seen.add(answer.parts)
                wrong.append(answer)
                break
        else:
            return None
    return wrong
