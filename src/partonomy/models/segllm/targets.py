"""SegLLM's answers: one round per part, each round referring to the previous round's mask.

PARTONOMY ran SegLLM with one ``<seg>`` per part ("... wing <seg>, engine <seg>"), and its decoder
saw the previous part's mask as the reference class (``[MASK-DECODE:previous:current]`` in
``explanatory_seg_dataset.py``). Here every part is a round: round ``k >= 1`` starts with a
reference to round ``k - 1``'s mask (two ``<seg_input>`` tokens, re-encoded by
:mod:`partonomy.models.segllm.reencode`) and ends with its ``<seg>``::

    wing <seg>, <seg_input><seg_input> engine <seg>, <seg_input><seg_input> tail <seg>

``<seg_input>`` tokens are inputs, never predicted: they carry no LM label
(:class:`~partonomy.models.segllm.processing.SegLLMProcessor`) and are not scored.
"""

from __future__ import annotations

from collections.abc import Sequence

from partonomy.models.core.targets import SegTokenTargets
from partonomy.models.segllm.reencode import TOKENS_PER_REFERENCE

SEG_TOKEN = "<seg>"
SEG_INPUT_TOKEN = "<seg_input>"
REFERENCE = SEG_INPUT_TOKEN * TOKENS_PER_REFERENCE
"""The text of one reference to the previous round's mask."""


class SegLLMTargets(SegTokenTargets):
    """``<seg>`` after each part name, and a reference before every part but the first."""

    def __init__(self) -> None:
        super().__init__(SEG_TOKEN)
        self.special_tokens = (SEG_TOKEN, SEG_INPUT_TOKEN)

    def rewrite(self, answer: str, parts: Sequence[str]) -> tuple[str, list[str]]:
        text, marked = super().rewrite(answer, parts)
        pieces = text.split(SEG_TOKEN)
        out = []
        for k, piece in enumerate(pieces):
            if 0 < k < len(pieces) - 1:  # before the name of round k (k >= 1)
                out.append(_before_last_word_group(piece, REFERENCE))
            else:
                out.append(piece)
        return SEG_TOKEN.join(out), marked


def _before_last_word_group(piece: str, reference: str) -> str:
    """``piece`` (the text between two ``<seg>``) with ``reference`` put before its last run of
    words (the part name written just before the next ``<seg>``)."""
    stripped = piece.rstrip()
    k = len(stripped)
    # The name: the trailing words after the last separator (", ", "and ", ...) before the <seg>.
    cut = max(stripped.rfind(","), stripped.rfind(";"), stripped.rfind(":"))
    head = stripped[: cut + 1]
    tail = stripped[cut + 1 : k]
    lead = tail[: len(tail) - len(tail.lstrip())]
    return f"{head}{lead}{reference} {tail.lstrip()}{piece[k:]}"
