"""The own loop without a CUDA graph: greedy decoding with eager steps over HF's dynamic KV cache
(:class:`EagerDecoder`), used on a CPU and with ``cuda_graphs=False``.

An eager step of a 13B model on a GPU is bound by the host, not the GPU: ~1,600 kernels launched
from Python for ~10 ms of GPU work (the same step as a CUDA graph). So the step launches nothing
beyond the decoder forward, the output head and the argmax, fewer kernels than a step of HF
``generate``, and never waits for the GPU:

* HF's ``DynamicCache``: one ``cat`` per key and value and layer (a static cache's update is an
  ``arange``, two adds and two ``index_copy_``), and attention reads only the tokens so far;
* no attention mask when no prompt is padded (e.g. a batch of one): SDPA's fastest kernel, and HF
  builds no mask; a padded batch gets one additive ``(B, 1, 1, W + T)`` mask, built at the
  prefill and sliced to the current length each step (a view);
* position ids precomputed for every step (a view per step);
* no stop tracking on the device: the host reads the tokens a few steps behind
  (:class:`~partonomy.models.core.generation_host.TokenReader`) and replaces a finished row's
  later tokens by pads, so finished rows simply keep decoding (rows never attend to each other);
* hidden states kept in a list and concatenated once.

The graphed path's fused RMSNorm, SwiGLU and rotary kernels are not used here: called eagerly,
each ``torch.compile``'d kernel costs more host time than the plain operators it replaces (13B on
an H200: 50 ms a step with them, 28.5 ms without; ``docs/benchmarks.md``).

The static-cache decoder (:mod:`~partonomy.models.core.static_decoder`) needs its fixed addresses
only to be captured in a graph; run eagerly, they cost launches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from partonomy.models.core.generation_batch import positions
from partonomy.models.core.generation_host import TokenReader
from partonomy.models.core.hf_lm import CachedDecoding, base_and_head


class EagerDecoder(CachedDecoding):
    """Greedy decoding of one batch with eager steps over a fresh ``DynamicCache``.

    Use :meth:`of` (None for models with sliding-window or other non-full cache layers), then
    :meth:`prefill` and :meth:`run` once. Left padding and position ids are as in the other
    paths: a row's positions count its real tokens only.
    """

    def __init__(
        self, lm: nn.Module, cache: DynamicCache, stops: tuple[int, ...], banned: tuple[int, ...],
        pad: int,
    ) -> None:  # fmt: skip
        super().__init__(lm, cache)
        self.stops, self.pad = stops, pad
        self.banned = torch.tensor(banned, dtype=torch.long, device=self.device) if banned else None
        self.hidden: list[torch.Tensor] = []  # (B, 1, d) per step
        self.token = torch.zeros(0, dtype=torch.long)  # the token fed next, (B,)
        self.positions = torch.zeros(0, dtype=torch.long)  # (B, T): position id of answer token t
        self.mask: torch.Tensor | None = None  # (B, 1, 1, W + T) additive, padded batches only
        self.width = 0

    @classmethod
    def of(
        cls, lm: nn.Module, stops: tuple[int, ...], banned: tuple[int, ...], pad: int
    ) -> EagerDecoder | None:
        """A decoder for one call of ``generate`` (``stops``, ``banned`` ids, ``pad`` id)."""
        base, _ = base_and_head(lm)
        config: Any = base.config  # the LM's (or VLM's) PretrainedConfig
        cache = DynamicCache(config=config)
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            return None
        return cls(lm, cache, stops, banned, pad)

    def prefill(
        self, first: dict[str, Any], mask: torch.Tensor, max_new_tokens: int, padded: bool
    ) -> torch.Tensor:
        """Run the prompts (``first``: ids and pixels, or embeddings; ``mask (B, W)`` left-padded,
        ``padded`` whether any row has pads) into the cache and pick answer token 0. Returns the
        prompt's last hidden states ``(B, W, d)``."""
        batch, self.width = mask.shape
        out = self.base(
            **first,
            attention_mask=mask,
            position_ids=positions(mask),
            use_cache=True,
            **self._base_cache,
        )
        steps = torch.arange(max_new_tokens, device=mask.device)
        self.positions = mask.sum(1, keepdim=True) + steps
        if padded:
            blocked = torch.finfo(self.dtype).min
            self.mask = torch.zeros(
                (batch, 1, 1, self.width + max_new_tokens), dtype=self.dtype, device=mask.device
            )
            self.mask[:, 0, 0, : self.width].masked_fill_(mask == 0, blocked)
        self.token = self._choose(out.last_hidden_state[:, -1])
        return out.last_hidden_state

    def run(
        self,
        max_new_tokens: int,
        return_hidden: bool,
        on_token: Callable[[torch.Tensor], None] | None,
    ) -> tuple[torch.Tensor, int]:
        """Decode after :meth:`prefill`. Returns the ``(max_new_tokens, B)`` CPU tokens (pads
        after a row's stop) and the number of steps run (:meth:`answer_hidden`)."""
        batch = int(self.token.shape[0])
        reader = TokenReader(batch, max_new_tokens, self.stops, self.pad, self.device, on_token)
        # Step t feeds answer token t and picks token t + 1; the last token needs a step only
        # for its hidden state.
        steps = reader.run(
            self.token,
            lambda t: self.step(t, return_hidden),
            max_new_tokens - (not return_hidden),
        )
        return reader.tokens, steps

    def step(self, t: int, keep_hidden: bool) -> torch.Tensor:
        """Feed answer token ``t`` (keeping its hidden state if asked); returns token ``t + 1``."""
        mask = None if self.mask is None else self.mask[..., : self.width + t + 1]
        out = self.text(
            input_ids=self.token[:, None],
            attention_mask=mask,
            position_ids=self.positions[:, t : t + 1],
            use_cache=True,
            **self._text_cache,
        )
        last = out.last_hidden_state
        if keep_hidden:
            self.hidden.append(last)
        self.token = self._choose(last[:, -1])
        return self.token

    def answer_hidden(self, steps: int) -> torch.Tensor:
        """``(B, steps, d)`` the kept hidden states of answer tokens ``0 .. steps - 1``."""
        return torch.cat(self.hidden[:steps], 1)

    def _choose(self, last: torch.Tensor) -> torch.Tensor:
        logits = self.head(last)
        if self.banned is not None:
            logits.index_fill_(1, self.banned, float("-inf"))
        return logits.argmax(-1)
