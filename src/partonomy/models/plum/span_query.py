"""The span query: one SAM prompt token per tagged span.

A token-wise MLP ``Linear(d, d) -> ReLU -> Linear(d, D_sam)`` over the LLM's last hidden states (not
the span extractor's encoder output: the released code found this worked best), mean-pooled over the
span's tokens. The pooled vector is the single sparse prompt token of SAM's mask decoder, and the
FiLM conditioning of that span's mask in the feedback loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SpanQuery(nn.Module):
    """Project LLM hidden states to SAM's prompt width and pool them per span.

    Args:
        hidden_size: the LLM width ``d``.
        prompt_dim: SAM's prompt width ``D_sam`` (256 in real SAM).
    """

    def __init__(self, hidden_size: int, prompt_dim: int) -> None:
        super().__init__()
        self.prompt_dim = prompt_dim
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, prompt_dim)
        )

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(..., d)`` -> ``(..., D_sam)``, token-wise."""
        return self.mlp(hidden.to(next(self.parameters()).dtype))

    def forward(self, hidden: torch.Tensor, spans: Sequence[Sequence[int]]) -> torch.Tensor:
        """Pooled queries of one conversation's spans.

        Args:
            hidden: ``(L, d)`` last hidden states of one conversation.
            spans: token indices per span (each non-empty).

        Returns:
            ``(n_spans, D_sam)``: the mean of the projected tokens of each span; ``(0, D_sam)`` when
            there are no spans.
        """
        if not spans:
            return hidden.new_zeros((0, self.prompt_dim), dtype=next(self.parameters()).dtype)
        # Project only the tokens that are used, once each, then pool per span.
        used = sorted({int(k) for span in spans for k in span})
        where = {k: n for n, k in enumerate(used)}
        projected = self.project(hidden[torch.tensor(used, device=hidden.device)])  # (n_used, D)
        pooled = [projected[[where[int(k)] for k in span]].mean(0) for span in spans]
        return torch.stack(pooled)  # (n_spans, D)
