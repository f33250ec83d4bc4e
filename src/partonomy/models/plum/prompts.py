"""PLUM's prompt source: B/I/O span tagging and mean-pooled span queries."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from partonomy.models.core.prompt_sources import PromptSource, Spans
from partonomy.models.plum.bio import O, group_spans
from partonomy.models.plum.span_extractor import SpanExtractor
from partonomy.models.plum.span_query import SpanQuery


class BioSpanPrompts(PromptSource):
    """PLUM: B/I/O span tagging and mean-pooled span queries.

    Args:
        span_extractor: the B/I/O tagger over the LLM's last hidden states.
        span_query: the token-wise MLP to SAM's prompt width, mean-pooled per span.
    """

    accepts_text_spans = True

    def __init__(self, span_extractor: SpanExtractor, span_query: SpanQuery) -> None:
        super().__init__()
        self.span_extractor = span_extractor
        self.span_query = span_query

    def prompts(self, hidden: torch.Tensor, spans: Sequence[Sequence[int]]) -> torch.Tensor:
        return self.span_query(hidden, spans)[:, None]  # (n, 1, D)

    def tag_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """B/I/O logits ``(B, L, 3)``; ``attention_mask`` marks attendable keys (image included)."""
        return self.span_extractor(hidden, attention_mask)  # type: ignore[no-any-return]

    def find_spans(
        self,
        input_ids: torch.Tensor,
        tag_logits: torch.Tensor | None,
        allowed: torch.Tensor,
    ) -> list[Spans]:
        """Greedy-grouped argmax tags; positions outside ``allowed`` count as O."""
        if tag_logits is None:
            raise ValueError("BioSpanPrompts.find_spans needs the tag logits")
        tags = tag_logits.argmax(-1).masked_fill(~allowed.bool(), O)
        return [group_spans(row.tolist()) for row in tags]
