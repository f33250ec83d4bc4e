"""What greedy generation returns, and how a batch of prompts of different lengths is laid out.

Prompts are left-padded, with explicit position ids, so each row sees the positions it would have
alone; every decoding path (:mod:`~partonomy.models.core.static_decoder`,
:mod:`~partonomy.models.core.generation_reference`) shares these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(eq=False)
class Generation:
    """One generated answer.

    Attributes:
        prompt_length: number of prompt tokens (image placeholders included).
        sequence: ``(prompt_length + n,)`` int64: the prompt then the ``n`` generated tokens, the
            stop token excluded.
        hidden: ``(prompt_length + n, d)`` last-layer hidden states (after the final norm) of
            ``sequence``, model dtype, or None when not requested.
        stopped: True if a stop token ended it, False if ``max_new_tokens`` did.
    """

    prompt_length: int
    sequence: torch.Tensor
    hidden: torch.Tensor | None
    stopped: bool

    @property
    def new_tokens(self) -> torch.Tensor:
        """``(n,)`` the generated tokens, stop token excluded."""
        return self.sequence[self.prompt_length :]


def left_pad(
    prompts: Sequence[torch.Tensor], pad_token_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(int(p.shape[0]) for p in prompts)
    ids = torch.full((len(prompts), n), pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), n), dtype=torch.long, device=device)
    for r, p in enumerate(prompts):
        ids[r, n - p.shape[0] :] = p.to(device)
        mask[r, n - p.shape[0] :] = 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token (pads get 0)."""
    return (mask.cumsum(1) - 1).clamp(min=0)
