from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from partonomy.qa.mutation import make_wrong_answers, mutate


class ListSource:
    """Draws uniformly from a fixed pool minus the excluded parts."""

    def __init__(self, pool: list[str]) -> None:
        self.pool = pool
        self.calls: list[set[str]] = []

    def sample(self, rng: np.random.Generator, excluded: Iterable[str]) -> str | None:
        excluded = set(excluded)
        self.calls.append(excluded)
        allowed = [p for p in self.pool if p not in excluded]
        return allowed[int(rng.integers(len(allowed)))] if allowed else None


def apply(correct: list[str], ops: Iterable[dict[str, str]]) -> list[str]:
    parts = list(correct)
    for op in ops:
        if op["op"] == "add":
            parts.append(op["part"])
        elif op["op"] == "delete":
            parts.remove(op["part"])
        else:
            parts[parts.index(op["part"])] = op["new"]
    return sorted(parts)


def test_mutations_touch_each_part_once_and_replay() -> None:
    correct = ["door", "wheel", "window"]
    source = ListSource(["door", "mirror", "roof", "seat", "wheel", "window"])
    for seed in range(200):
        rng = np.random.default_rng(seed)
        n_ops = int(rng.integers(1, 3))
        answer = mutate(correct, n_ops, source, rng)
        assert answer is not None
        assert len(answer.operations) == n_ops
        touched = [op.part for op in answer.operations] + [
            op.new for op in answer.operations if op.new is not None
        ]
        assert len(touched) == len(set(touched))  # never touched twice
        assert list(answer.parts) == apply(correct, [op.to_dict() for op in answer.operations])
        assert set(answer.parts) != set(correct)


def test_sampler_excludes_the_present_parts() -> None:
    # one operation: whatever it is, the parts present when sampling are the correct ones
    source = ListSource(["a", "b", "c", "d", "e"])
    for seed in range(50):
        before = len(source.calls)
        answer = mutate(["a", "b"], 1, source, np.random.default_rng(seed))
        assert answer is not None
        for call in source.calls[before:]:
            assert call == {"a", "b"}


def test_empty_list_only_adds() -> None:
    rng = np.random.default_rng(1)
    answer = mutate([], 2, ListSource(["x", "y", "z"]), rng)
    assert answer is not None
    assert [op.kind for op in answer.operations] == ["add", "add"]


def test_wrong_answers_are_valid() -> None:
    correct = ["door", "wheel", "window"]
    source = ListSource(["door", "mirror", "roof", "seat", "wheel", "window"])
    for seed in range(50):
        wrong = make_wrong_answers(correct, source, np.random.default_rng(seed), n_wrong=4)
        assert wrong is not None and len(wrong) == 4
        sets = [tuple(w.parts) for w in wrong]
        assert len(set(sets)) == 4
        assert tuple(correct) not in sets
        assert all(len(s) > 0 for s in sets)
        assert all(1 <= len(w.operations) <= 2 for w in wrong)


def test_gives_up_after_max_tries() -> None:
    # one part and nothing to add: the only edits are deleting it (empty) -> impossible
    source = ListSource(["wheel"])
    assert make_wrong_answers(["wheel"], source, np.random.default_rng(0), n_wrong=4) is None
    # two parts, nothing to add: only {a} and {b} exist, fewer than 4 wrong answers
    source = ListSource(["a", "b"])
    assert make_wrong_answers(["a", "b"], source, np.random.default_rng(0), n_wrong=4) is None
