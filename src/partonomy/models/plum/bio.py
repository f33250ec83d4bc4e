"""BIO span tags: building targets from an answer's part names, and grouping predicted tags into spans.

PLUM has no ``[SEG]`` token. Every part named in the assistant's answer is a span of tokens tagged
B (first token) and I (the rest); all other answer tokens are O. Targets are built by matching each
part name's token ids as an exact subsequence of the answer's token ids:

* matching starts at the answer (``answer_start``, the first token after ``ASSISTANT:``);
* longer part names are matched first (more tokens, then more characters), so "front wheel" claims
  its tokens before "wheel" can;
* a match that runs into a longer word is rejected: the next token has no word-start marker
  (SentencePiece's ``▁``, byte-level BPE's ``Ġ``) and starts with a letter or digit ("wing"
  inside "wingtip");
* byte-level BPE tokenizers (Qwen, LLaVA-OneVision) fold a word's leading space into its first
  token, so a part name is also matched as encoded after a space (" wing" -> ``Ġwing``);
* a match that overlaps an already-labelled token is rejected (the original rejects on the first
  token only; overlapping spans cannot be expressed in BIO, so any overlap is rejected here);
* training tags the first acceptable occurrence of each part, evaluation (``all_occurrences=True``)
  every one;
* a part that has no acceptable match is an error naming the part and the answer.

Spans are returned in token order together with the part each one is (:class:`PartSpan`), so masks
are attached by name and a mask/span mismatch cannot happen silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from partonomy.models.core.targets import PartSpan

__all__ = ["BIO_IGNORE", "B", "I", "O", "PartSpan", "find_part_spans", "group_spans"]

O, B, I = 0, 1, 2  # noqa: E741 (the standard names of the three tags)
BIO_IGNORE = -100
"""Label of positions that carry no BIO target (image, padding, prompt): ignored by the loss."""
WORD_START = "▁"
"""SentencePiece's word-start marker."""
BYTE_LEVEL_SPACE = "Ġ"
"""Byte-level BPE's encoding of a leading space (GPT-2, Qwen)."""


def _continues_word(piece: str) -> bool:
    """True if ``piece`` glues onto the previous token as part of the same word."""
    return not piece.startswith((WORD_START, BYTE_LEVEL_SPACE)) and piece[:1].isalnum()


def _patterns(part: str, tokenizer: Any) -> list[list[int]]:
    """The token ids of ``part`` as it can appear in an answer: alone, and (byte-level BPE) after
    a space, when that gives a different first token."""
    plain = [int(t) for t in tokenizer.encode(part, add_special_tokens=False)]
    spaced = [int(t) for t in tokenizer.encode(" " + part, add_special_tokens=False)]
    first = tokenizer.convert_ids_to_tokens(spaced[:1])
    if spaced and spaced != plain and str(first[0]).startswith(BYTE_LEVEL_SPACE):
        return [plain, spaced]
    return [plain]


def find_part_spans(
    input_ids: Sequence[int],
    answer_start: int,
    part_names: Sequence[str],
    tokenizer: Any,
    *,
    all_occurrences: bool = False,
    answer_end: int | None = None,
) -> list[PartSpan]:
    """Locate each part name in the answer's tokens (rules in the module docstring).

    Args:
        input_ids: the full token sequence ``(L,)`` (prompt, image tokens and answer).
        answer_start: index of the answer's first token.
        part_names: the parts to find (duplicates are found once).
        tokenizer: a HF tokenizer (``encode`` and ``convert_ids_to_tokens``).
        all_occurrences: tag every acceptable occurrence instead of the first.
        answer_end: one past the answer's last token (default ``L``).

    Returns:
        The spans sorted by their first token.

    Raises:
        ValueError: a part name has no acceptable match; the message names the part and quotes the answer.
    """
    ids = [int(t) for t in input_ids]
    end = len(ids) if answer_end is None else answer_end
    if not 0 <= answer_start <= end <= len(ids):
        raise ValueError(
            f"answer range [{answer_start}, {end}) is outside a sequence of {len(ids)} tokens"
        )
    pieces = tokenizer.convert_ids_to_tokens(ids)
    patterns = {p: _patterns(p, tokenizer) for p in part_names}
    # Longest first: by token count, then character count; ties keep the caller's order.
    order = sorted(patterns, key=lambda p: (-len(patterns[p][0]), -len(p)))
    taken = [False] * len(ids)
    spans: list[PartSpan] = []
    for part in order:
        hits = 0
        for start in range(answer_start, end):
            pattern = next(
                (
                    q
                    for q in patterns[part]
                    if q and start + len(q) <= end and ids[start : start + len(q)] == q
                ),
                None,
            )
            if pattern is None:
                continue
            stop = start + len(pattern)
            if any(taken[start:stop]):
                continue
            if stop < len(ids) and _continues_word(pieces[stop]):
                continue
            for k in range(start, stop):
                taken[k] = True
            spans.append(PartSpan(part, tuple(range(start, stop))))
            hits += 1
            if not all_occurrences:
                break
        if hits == 0:
            answer = tokenizer.decode(ids[answer_start:end])
            raise ValueError(
                f"part {part!r} cannot be found in the answer {answer!r} (it must appear verbatim as "
                "whole words, not inside a longer word or a longer part name)"
            )
    return sorted(spans, key=lambda s: s.tokens[0])


def bio_labels_from_spans(
    length: int, answer_start: int, answer_end: int, spans: Sequence[Sequence[int]]
) -> list[int]:
    """Per-token labels: :data:`BIO_IGNORE` outside ``[answer_start, answer_end)``, O/B/I inside."""
    labels = [BIO_IGNORE] * length
    for k in range(answer_start, answer_end):
        labels[k] = O
    for span in spans:
        labels[span[0]] = B
        for k in span[1:]:
            labels[k] = I
    return labels


def build_bio_targets(
    input_ids: Sequence[int],
    answer_start: int,
    part_names: Sequence[str],
    tokenizer: Any,
    *,
    all_occurrences: bool = False,
) -> tuple[list[int], list[list[int]]]:
    """BIO labels and spans for one conversation (the answer runs to the end of ``input_ids``).

    Returns:
        ``labels`` of length ``L`` (:data:`BIO_IGNORE` before ``answer_start``; O/B/I from there) and
        ``spans`` (token indices per span, in token order). Use :func:`find_part_spans` to also get
        which part each span is.

    Raises:
        ValueError: a part cannot be found (see :func:`find_part_spans`).
    """
    found = find_part_spans(
        input_ids, answer_start, part_names, tokenizer, all_occurrences=all_occurrences
    )
    spans = [list(s.tokens) for s in found]
    return bio_labels_from_spans(len(input_ids), answer_start, len(input_ids), spans), spans


def group_spans(tags: Sequence[int]) -> list[list[int]]:
    """Greedy B/I grouping of per-token tags into spans (decoding at inference).

    A span starts at B and grows over the following I's; O, a new B or the end closes it. An I with
    no open span is ignored. Any other value (e.g. :data:`BIO_IGNORE`) acts like O.

    Example: tags ``B I I O B I`` -> ``[[0, 1, 2], [4, 5]]``; ``I B`` -> ``[[1]]``; ``B B`` -> ``[[0], [1]]``.
    """
    spans: list[list[int]] = []
    current: list[int] | None = None
    for k, tag in enumerate(int(t) for t in tags):
        if tag == B:
            current = [k]
            spans.append(current)
        elif tag == I and current is not None:
            current.append(k)
        else:
            current = None
    return spans
