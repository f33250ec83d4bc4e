"""Target schemes: how an answer that names parts becomes model text and mask targets.

A scheme does two things for the processor (:class:`~partonomy.models.core.processing.SegProcessor`):

1. ``rewrite(answer, parts)``: the answer text the model reads and writes. PLUM keeps it as is;
   LISA writes ``[SEG]`` after each part name ("a wing [SEG], an engine [SEG]"), as the original
   PARTONOMY code did for the baselines; GLaMM also wraps the name in phrase tags
   ("<p> wing </p> [SEG]").
2. ``locate(ids, ...)``: the token positions of each target (its *span*) in the tokenised
   conversation, and per-token labels for the prompt source's tagger (PLUM's B/I/O; none for
   ``[SEG]`` schemes).

PLUM's B/I/O scheme lives in :mod:`partonomy.models.plum.targets`; the ``[SEG]`` scheme here is
shared by LISA and GLaMM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

IGNORE_LABEL = -100
"""Tag label of positions without a tagger target (and of every position for ``[SEG]`` schemes)."""
SEG_TOKEN = "[SEG]"
PHRASE_START, PHRASE_END = "<p>", "</p>"


@dataclass(frozen=True)
class PartSpan:
    """One target in a tokenised conversation.

    Attributes:
        part: the part name (the key of the answer's mask dict).
        tokens: indices into ``input_ids``, ascending and contiguous (PLUM: the name's tokens;
            ``[SEG]`` schemes: the single ``[SEG]`` position).
    """

    part: str
    tokens: tuple[int, ...]


@dataclass
class Located:
    """What :meth:`TargetScheme.locate` finds.

    Attributes:
        spans: the targets in token order.
        unmatched: parts that could not be placed (only when ``strict=False``), in the given order.
    """

    spans: list[PartSpan]
    unmatched: list[str]


class TargetScheme(Protocol):
    """How one family marks the parts of an answer (module docstring)."""

    special_tokens: tuple[str, ...]
    """Tokens the scheme writes into text, added to the tokenizer by the family's builder."""

    def rewrite(self, answer: str, parts: Sequence[str]) -> tuple[str, list[str]]:
        """``(model answer text, the parts it marks in target order)``; unplaceable parts dropped."""
        ...

    def locate(
        self,
        ids: Sequence[int],
        answer_start: int,
        answer_end: int,
        parts: Sequence[str],
        tokenizer: Any,
        *,
        all_occurrences: bool,
        strict: bool,
    ) -> Located:
        """Spans of ``parts`` (as returned by :meth:`rewrite`) inside ``[answer_start, answer_end)``.

        Raises:
            ValueError: ``strict`` and a part cannot be found, or the marks and parts disagree.
        """
        ...

    def labels(
        self, length: int, answer_start: int, answer_end: int, spans: Sequence[Sequence[int]]
    ) -> list[int]:
        """Per-token tagger labels ``(L,)``, :data:`IGNORE_LABEL` where there is no target."""
        ...


def _word_pattern(part: str) -> re.Pattern[str]:
    """Case-insensitive whole-word match of ``part`` (not inside a longer word)."""
    return re.compile(rf"(?<![\w]){re.escape(part)}(?![\w])", re.IGNORECASE)


class SegTokenTargets:
    """LISA / GLaMM: a ``[SEG]`` token after the first occurrence of each part name.

    Args:
        seg_token: the mask token written after each part name.
        phrase_tags: wrap the name as ``<p> name </p>`` before the token (GLaMM's GCG format).

    Parts are placed longest first, so "wing tip" is not also taken as "wing"; a part whose name
    does not occur as whole words in the answer gets no ``[SEG]`` (it is dropped by
    :meth:`rewrite`, so the number of ``[SEG]`` tokens always equals the number of targets).
    """

    def __init__(self, seg_token: str = SEG_TOKEN, *, phrase_tags: bool = False) -> None:
        self.seg_token = seg_token
        self.phrase_tags = phrase_tags
        self.special_tokens: tuple[str, ...] = (seg_token,)
        if phrase_tags:
            self.special_tokens = (PHRASE_START, PHRASE_END, seg_token)

    def rewrite(self, answer: str, parts: Sequence[str]) -> tuple[str, list[str]]:
        taken: list[tuple[int, int, str]] = []
        for part in sorted(dict.fromkeys(parts), key=lambda p: -len(p)):
            for match in _word_pattern(part).finditer(answer):
                lo, hi = match.span()
                if all(hi <= a or lo >= b for a, b, _ in taken):
                    taken.append((lo, hi, part))
                    break
        taken.sort()
        out, cursor = [], 0
        for lo, hi, _part in taken:
            name = answer[lo:hi]
            marked = f"{PHRASE_START} {name} {PHRASE_END}" if self.phrase_tags else name
            out.append(answer[cursor:lo] + marked + " " + self.seg_token)
            cursor = hi
        out.append(answer[cursor:])
        return "".join(out), [p for _, _, p in taken]

    def locate(
        self,
        ids: Sequence[int],
        answer_start: int,
        answer_end: int,
        parts: Sequence[str],
        tokenizer: Any,
        *,
        all_occurrences: bool,
        strict: bool,
    ) -> Located:
        """One span per ``[SEG]`` token (found by id) of the answer, paired with ``parts`` in order.

        Raises:
            ValueError: the answer holds a different number of ``[SEG]`` tokens than ``parts``.
        """
        seg_id = int(tokenizer.convert_tokens_to_ids(self.seg_token))
        where = [k for k in range(answer_start, answer_end) if int(ids[k]) == seg_id]
        if len(where) != len(parts):
            raise ValueError(
                f"the answer holds {len(where)} {self.seg_token} token(s) but {len(parts)} "
                f"target(s) ({', '.join(parts) or 'none'}); write one {self.seg_token} per part"
            )
        return Located([PartSpan(p, (k,)) for p, k in zip(parts, where)], [])

    def labels(
        self, length: int, answer_start: int, answer_end: int, spans: Sequence[Sequence[int]]
    ) -> list[int]:
        return [IGNORE_LABEL] * length
