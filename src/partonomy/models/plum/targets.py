"""PLUM's target scheme: part names stay plain text and are tagged B/I/O (no ``[SEG]`` token).

Spans are found by :func:`~partonomy.models.plum.bio.find_part_spans`. In lenient mode
(evaluation), parts are tried longest first and each is kept only if the set found so far still
matches with it added, so one part whose name is missing from the answer (e.g. a synonym) does
not cost the others their masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from partonomy.models.core.targets import Located, PartSpan
from partonomy.models.plum.bio import bio_labels_from_spans, find_part_spans


class BioTargets:
    """The answer is unchanged; each part name's tokens form one span (B then I's)."""

    special_tokens: tuple[str, ...] = ()

    def rewrite(self, answer: str, parts: Sequence[str]) -> tuple[str, list[str]]:
        return answer, list(dict.fromkeys(parts))

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
        ids = [int(t) for t in ids]
        unique = list(dict.fromkeys(parts))
        try:
            found = find_part_spans(
                ids,
                answer_start,
                unique,
                tokenizer,
                all_occurrences=all_occurrences,
                answer_end=answer_end,
            )
            return Located(found, [])
        except ValueError:
            if strict:
                raise
        lengths = {p: len(tokenizer.encode(p, add_special_tokens=False)) for p in unique}
        kept: list[str] = []
        spans: list[PartSpan] = []
        for part in sorted(unique, key=lambda p: (-lengths[p], -len(p))):
            try:
                spans = find_part_spans(
                    ids,
                    answer_start,
                    [*kept, part],
                    tokenizer,
                    all_occurrences=all_occurrences,
                    answer_end=answer_end,
                )
            except ValueError:
                continue
            kept.append(part)
        return Located(spans if kept else [], [p for p in unique if p not in kept])

    def labels(
        self, length: int, answer_start: int, answer_end: int, spans: Sequence[Sequence[int]]
    ) -> list[int]:
        return bio_labels_from_spans(length, answer_start, answer_end, spans)
