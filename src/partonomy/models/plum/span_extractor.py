"""The span extractor: per-token B/I/O logits from the LLM's last hidden states.

A one-layer bidirectional Transformer encoder (PyTorch's ``nn.TransformerEncoderLayer``: ReLU,
post-norm, no added positional encoding, Xavier-initialised as in the released code) lets every
token see the whole conversation, including the image tokens, before it is tagged. Two orders:

* ``"encoder_then_mlp"`` (the released code): encoder -> Linear(d, d) -> ReLU -> Linear(d, 3).
* ``"mlp_then_encoder"`` (the paper's text): Linear(d, d) -> ReLU -> Linear(d, d) -> encoder ->
  Linear(d, 3).

Logit order is (O, B, I) = (0, 1, 2), matching :mod:`partonomy.models.plum.bio`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

N_TAGS = 3


class SpanExtractor(nn.Module):
    """B/I/O tagger over the LLM's last hidden states.

    Args:
        hidden_size: the LLM width ``d``.
        heads: encoder attention heads (must divide ``d``).
        ff: encoder feed-forward width.
        dropout: encoder dropout.
        order: see the module docstring.
    """

    def __init__(
        self,
        hidden_size: int,
        *,
        heads: int = 8,
        ff: int = 2048,
        dropout: float = 0.1,
        order: Literal["encoder_then_mlp", "mlp_then_encoder"] = "encoder_then_mlp",
    ) -> None:
        super().__init__()
        if hidden_size % heads:
            raise ValueError(
                f"span extractor: hidden size {hidden_size} is not divisible by {heads} heads"
            )
        d = hidden_size
        self.order = order
        self.encoder = nn.TransformerEncoderLayer(d, heads, ff, dropout, batch_first=True)
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.pre: nn.Module
        self.head: nn.Module
        if order == "encoder_then_mlp":
            self.pre = nn.Identity()
            self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, N_TAGS))
        elif order == "mlp_then_encoder":
            self.pre = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
            self.head = nn.Linear(d, N_TAGS)
        else:
            raise ValueError(f"unknown span_extractor_order {order!r}")

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Tag every position.

        Args:
            hidden: ``(B, L, d)`` last hidden states of the LLM.
            attention_mask: ``(B, L)``, nonzero/True where a position may be attended (real tokens,
                image tokens included); padding is excluded as a key.

        Returns:
            ``(B, L, 3)`` logits over (O, B, I), in the module's dtype. Padding positions get
            logits too; callers ignore them.
        """
        x = self.pre(hidden.to(next(self.parameters()).dtype))
        x = self.encoder(x, src_key_padding_mask=~attention_mask.bool())
        return self.head(x)
