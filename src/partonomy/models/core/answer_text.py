"""From generated answer tokens to text: per-token character offsets, and the token spans of
phrases (highlight-to-segment)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextSpan:
    """A span of answer tokens and the characters it covers.

    Attributes:
        tokens: indices into the answer's token list, ascending and contiguous.
        start, end: character offsets into the answer text, end exclusive, whitespace trimmed.
    """

    tokens: tuple[int, ...]
    start: int
    end: int


def decode_with_offsets(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decode ``ids`` and give each token the character range it adds to the text.

    Uses incremental decoding (the text of ``ids[:k + 1]`` minus that of ``ids[:k]``), so it is
    exact for any tokenizer whose decoding is prefix-stable, SentencePiece's word-start spaces
    included. Special tokens are skipped (they cover an empty range). A token that completes a
    multi-byte character started by earlier byte tokens may shift the range; ranges are clamped to
    stay monotonic.

    Returns:
        ``(text, offsets)`` with ``offsets[k] = (start, end)`` into ``text``.
    """
    offsets: list[tuple[int, int]] = []
    previous = 0
    text = ""
    for k in range(len(ids)):
        text = tokenizer.decode(list(ids[: k + 1]), skip_special_tokens=True)
        end = max(previous, len(text))
        offsets.append((previous, end))
        previous = end
    return text, offsets


def char_span(text: str, offsets: Sequence[tuple[int, int]], tokens: Sequence[int]) -> TextSpan:
    """The :class:`TextSpan` of answer tokens ``tokens``, leading/trailing whitespace trimmed."""
    start, end = offsets[tokens[0]][0], offsets[tokens[-1]][1]
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return TextSpan(tuple(tokens), start, end)


def find_phrases(
    text: str, offsets: Sequence[tuple[int, int]], phrases: Sequence[str]
) -> list[TextSpan]:
    """Highlight-to-segment: every occurrence of each phrase in the answer, as token spans.

    Matching is on characters, case-insensitive, whole words only (the characters on either side
    of a match may not be letters or digits), longest phrase first; a match that overlaps an
    earlier one (in characters or in tokens) is skipped, as BIO tags cannot express overlaps. A
    match covers every token whose character range overlaps it, so a phrase that starts or ends
    inside a token takes that whole token. Empty phrases are ignored.

    Returns:
        The spans in token order (a phrase that is not found contributes none).
    """
    lowered = text.lower()
    taken = [False] * len(text)
    used: set[int] = set()  # tokens already in a span
    found: list[TextSpan] = []
    for phrase in sorted({p.strip() for p in phrases if p.strip()}, key=lambda p: -len(p)):
        needle = phrase.lower()
        at = lowered.find(needle)
        while at >= 0:
            end = at + len(needle)
            whole = (at == 0 or not text[at - 1].isalnum()) and (
                end == len(text) or not text[end].isalnum()
            )
            tokens = [k for k, (s, e) in enumerate(offsets) if s < end and e > at and e > s]
            if whole and tokens and not any(taken[at:end]) and not used & set(tokens):
                taken[at:end] = [True] * (end - at)
                used.update(tokens)
                found.append(TextSpan(tuple(tokens), at, end))
            at = lowered.find(needle, at + 1)
    return sorted(found, key=lambda s: s.tokens[0])
