"""SegLLM's prompt source: the ``<seg>`` hidden state -> pseudo-text tokens for the decoder.

``segmentator_predictor`` (``build_vision_predictor``, ``mlp2x_gelu``): ``Linear(d, d) -> GELU ->
Linear(d, t * D)`` (7B: 4096 -> 4096 -> 6144 = 8 x 768), reshaped to ``t`` tokens of width ``D``;
the first half conditions the decoder's reference class, the second half its target class. The
original takes the hidden state of the position *before* each ``<seg>`` (the one that predicts it,
``hidden_states[:, :-1][seg_mask[:, 1:]]``); so does this source.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from partonomy.models.core.prompt_sources import PromptSource, Spans


class SegPredictorPrompts(PromptSource):
    """``<seg>`` -> ``(t, D)`` pseudo-text tokens (module docstring).

    Args:
        hidden_size: the LLM width ``d``.
        text_tokens: ``t`` (8).
        text_dim: ``D`` (768).
        seg_token_id: the id of ``<seg>``.
    """

    def __init__(
        self, hidden_size: int, text_tokens: int, text_dim: int, seg_token_id: int
    ) -> None:
        super().__init__()
        self.tokens_per_target = text_tokens
        self.text_dim = text_dim
        self.seg_token_id = seg_token_id
        # Index layout of SegLLM's segmentator_predictor: 0 Linear, 1 GELU, 2 Linear.
        self.predictor = nn.Sequential(
            nn.Linear(hidden_size, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, text_tokens * text_dim),
        )

    def prompts(self, hidden: torch.Tensor, spans: Sequence[Sequence[int]]) -> torch.Tensor:
        dtype = next(self.predictor.parameters()).dtype
        if not spans:
            return hidden.new_zeros((0, self.tokens_per_target, self.text_dim), dtype=dtype)
        for span in spans:
            if len(span) != 1 or int(span[0]) < 1:
                raise ValueError(
                    f"a <seg> target is one token position after the first, got {list(span)}"
                )
        index = torch.tensor([int(s[0]) - 1 for s in spans], device=hidden.device)
        out = self.predictor(hidden[index].to(dtype))  # (n, t * D)
        return out.reshape(len(spans), self.tokens_per_target, self.text_dim)

    def find_spans(
        self, input_ids: torch.Tensor, tag_logits: torch.Tensor | None, allowed: torch.Tensor
    ) -> list[Spans]:
        """Every ``<seg>`` position (by id) inside ``allowed``, one target each, in token order."""
        hits = (input_ids == self.seg_token_id) & allowed.bool()
        return [[[int(k)] for k in row.nonzero().flatten().tolist()] for row in hits]
