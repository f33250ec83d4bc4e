"""Prompt sources: which text positions become mask prompts, and how.

A *target* is one mask to predict. Its *span* is the list of token positions whose last-layer
hidden states prompt the mask head for it:

* PLUM (:class:`~partonomy.models.plum.prompts.BioSpanPrompts`): the tokens of a part name,
  tagged B/I/O by the span extractor; the span query projects each token and mean-pools them into
  one prompt token.
* LISA and GLaMM (:class:`SegTokenPrompts`): the single position of a ``[SEG]`` token, found by
  its id; an MLP ``Linear(d, d) -> ReLU -> Linear(d, D) -> Dropout(0)`` (LISA's ``text_hidden_fcs``)
  projects its hidden state into one prompt token.
* PixelLM (:class:`~partonomy.models.pixellm.codebook.CodebookPrompts`): a span of ``k`` codebook
  tokens becomes one prompt token per decoder scale; :meth:`PromptSource.prompts` returns
  ``(n, t, D)`` for that reason.

Every source answers three questions: the prompt tokens of given spans, optional per-token tag
logits (a loss term of PLUM), and the spans it finds on its own in a generated answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

Spans = list[list[int]]
"""One conversation's targets: token positions per target, in token order."""


class PromptSource(nn.Module, ABC):
    """Interface of a prompt source (see the module docstring)."""

    tokens_per_target: int = 1
    accepts_text_spans: bool = False
    """Whether any span of answer tokens can prompt a mask (PLUM's span query; highlight-to-segment
    needs it), rather than only the source's own marker tokens."""

    @abstractmethod
    def prompts(self, hidden: torch.Tensor, spans: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(n_spans, t, D)`` prompt tokens of one conversation's spans (``hidden``: ``(L, d)``)."""

    def tag_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Per-token logits ``(B, L, C)`` the source trains (PLUM's B/I/O), or None."""
        return None

    @abstractmethod
    def find_spans(
        self,
        input_ids: torch.Tensor,
        tag_logits: torch.Tensor | None,
        allowed: torch.Tensor,
    ) -> list[Spans]:
        """The spans the model itself marks, restricted to ``allowed`` ``(B, L)`` positions."""


def text_hidden_fc(hidden_size: int, prompt_dim: int) -> nn.Sequential:
    """LISA's ``text_hidden_fcs[0]`` (also PixelLM's): ``d -> d -> D``.

    The index layout (0 Linear, 1 ReLU, 2 Linear, 3 Dropout(0)) is the released one, so converted
    keys ``projection.{0,2}.*`` load unchanged.
    """
    return nn.Sequential(
        nn.Linear(hidden_size, hidden_size),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_size, prompt_dim),
        nn.Dropout(0.0),
    )


class SegTokenPrompts(PromptSource):
    """LISA / GLaMM: the hidden state at each ``[SEG]`` token, projected to one prompt token.

    Args:
        hidden_size: the LLM width ``d``.
        prompt_dim: the mask head's prompt width ``D`` (256 for SAM).
        seg_token_id: the id of ``[SEG]`` in the tokenizer.
    """

    def __init__(self, hidden_size: int, prompt_dim: int, seg_token_id: int) -> None:
        super().__init__()
        self.seg_token_id = seg_token_id
        self.prompt_dim = prompt_dim
        self.projection = text_hidden_fc(hidden_size, prompt_dim)

    def prompts(self, hidden: torch.Tensor, spans: Sequence[Sequence[int]]) -> torch.Tensor:
        dtype = next(self.projection.parameters()).dtype
        if not spans:
            return hidden.new_zeros((0, 1, self.prompt_dim), dtype=dtype)
        for span in spans:
            if len(span) != 1:
                raise ValueError(f"a [SEG] target is one token position, got span {list(span)}")
        index = torch.tensor([int(s[0]) for s in spans], device=hidden.device)
        return self.projection(hidden[index].to(dtype))[:, None]  # (n, 1, D)

    def find_spans(
        self,
        input_ids: torch.Tensor,
        tag_logits: torch.Tensor | None,
        allowed: torch.Tensor,
    ) -> list[Spans]:
        """Every ``[SEG]`` position (by id) inside ``allowed``, one target each, in token order."""
        hits = (input_ids == self.seg_token_id) & allowed.bool()
        return [[[int(k)] for k in row.nonzero().flatten().tolist()] for row in hits]
