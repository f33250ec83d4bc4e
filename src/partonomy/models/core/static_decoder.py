"""The default decoding path: greedy decoding over a static KV cache, one step captured as a CUDA
graph on a GPU (:class:`StaticDecoder`), with the host reading tokens a few steps behind.

Batch-1 decoding of a 13B model is bound by reading its weights once per token; this module keeps
every tensor a step touches at a fixed address so the step needs no host input and can be replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import StaticCache
from transformers.cache_utils import StaticLayer

from partonomy.models.core.fused_kernels import (
    decoder_kernels,
    model_sizes,
    self_test,
    supports,
    swapped_kernels,
)
from partonomy.models.core.generation_batch import Generation, positions
from partonomy.models.core.generation_host import TokenReader
from partonomy.models.core.hf_lm import CachedDecoding

logger = logging.getLogger(__name__)


BUCKET = 256
"""Static caches are sized in multiples of this many positions, so that prompts of different
lengths reuse one captured graph."""


def bucket(n: int) -> int:
    return -(-n // BUCKET) * BUCKET


def _hf_model(lm: nn.Module) -> Any:
    get_base = getattr(lm, "get_base_model", None)  # a PEFT wrapper
    return get_base() if callable(get_base) else lm


@dataclass(frozen=True)
class DecoderKey:
    """What a :class:`StaticDecoder` (and its captured graph) is valid for."""

    batch: int
    length: int  # static cache positions
    stops: tuple[int, ...]
    banned: tuple[int, ...]
    pad: int
    weight: int  # data_ptr of the output head's weight: a moved model invalidates the graph
    inference_mode: bool  # tensors made under inference mode cannot be updated outside it
    fused: str  # the fused kernel set to capture with (decoder_kernels), "" for none


class DecoderSlot:
    """Where a model keeps its last :class:`StaticDecoder` (attribute ``_partonomy_decoder``).

    A copy (or a pickled model) gets an empty slot: a CUDA graph cannot be copied, and the copy's
    weights live elsewhere anyway.
    """

    ATTRIBUTE = "_partonomy_decoder"

    def __init__(self) -> None:
        self.decoder: StaticDecoder | None = None

    @classmethod
    def of(cls, lm: nn.Module) -> DecoderSlot:
        """``lm``'s slot (made empty the first time)."""
        slot = lm.__dict__.get(cls.ATTRIBUTE)
        if not isinstance(slot, DecoderSlot):
            slot = DecoderSlot()
            object.__setattr__(lm, cls.ATTRIBUTE, slot)
        return slot

    def __deepcopy__(self, memo: dict[int, Any]) -> DecoderSlot:
        return DecoderSlot()

    def __getstate__(self) -> dict[str, Any]:  # pickling (e.g. torch.save of a whole model)
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.decoder = None


def release_decoder(lm: nn.Module) -> None:
    """Drop ``lm``'s static KV cache and captured graph (frees their device memory)."""
    slot = lm.__dict__.get(DecoderSlot.ATTRIBUTE)
    if isinstance(slot, DecoderSlot):
        slot.decoder = None


class StaticDecoder(CachedDecoding):
    """Greedy decoding over a static KV cache, one step optionally replayed as a CUDA graph.

    Batch-1 decoding of a 13B model reads 26 GB of weights per token (~5 ms on an H200), but an
    eager step also launches ~1,500 kernels from Python and the classic loop waits for each
    token on the host; both cost more than the arithmetic. So every tensor a step touches has a
    fixed address: an HF ``StaticCache`` of ``length`` positions, an additive ``(B, 1, 1,
    length)`` attention mask, and the token, position, cache-slot and step counters on the
    device. One step (write the fed token's mask column, run the decoder on the fed token, keep
    its hidden state, pick the next token with the banned ids at -inf, mark rows that hit a stop
    token, advance the counters) then needs no host input, and on a GPU it is captured once in a
    ``torch.cuda.CUDAGraph`` (eager warm-up step on a side stream, then capture: about one step's
    time, no compiler) and replayed. The host reads tokens
    :data:`~partonomy.models.core.generation_host.HOST_LAG` steps behind, from pinned memory.

    A model keeps its last decoder (:class:`DecoderSlot`); a call with another :class:`DecoderKey`
    replaces it (:func:`release_decoder` frees it). Left padding and position ids are as in the
    plain loop: a row's positions count its real tokens only; a finished row keeps feeding
    masked pads.
    """

    def __init__(self, lm: nn.Module, key: DecoderKey, cache: Any) -> None:
        super().__init__(lm, cache)
        self.key = key
        device, dtype, hidden_size = self.device, self.dtype, self.hidden_size
        b, n = key.batch, key.length
        self.blocked = torch.finfo(dtype).min
        self.mask = torch.full((b, 1, 1, n), self.blocked, dtype=dtype, device=device)
        self.token = torch.zeros(b, dtype=torch.long, device=device)  # the token fed next
        self.position = torch.zeros((b, 1), dtype=torch.long, device=device)  # its position id
        self.slot = torch.zeros(1, dtype=torch.long, device=device)  # its cache slot
        self.step = torch.zeros(1, dtype=torch.long, device=device)  # its index in the answer
        self.done = torch.zeros(b, dtype=torch.bool, device=device)
        self.tokens = torch.full((n + 1, b), key.pad, dtype=torch.long, device=device)
        self.hidden = torch.zeros((n, b, hidden_size), dtype=dtype, device=device)
        self.stops = torch.tensor(key.stops, dtype=torch.long, device=device)
        self.banned = torch.tensor(key.banned, dtype=torch.long, device=device)
        self.open_column = torch.zeros(b, dtype=dtype, device=device)
        self.shut_column = torch.full((b,), self.blocked, dtype=dtype, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.capture_failed = False
        self.kernels = decoder_kernels(key.fused) if key.fused else None
        if self.kernels is not None and not (
            supports(self.text) and self_test(self.kernels, device, dtype, model_sizes(self.text))
        ):
            self.kernels = None

    @classmethod
    def of(cls, lm: nn.Module, key: DecoderKey) -> StaticDecoder | None:
        """``lm``'s decoder for ``key`` (reused, or built and kept); None if the model has
        sliding-window or other non-full cache layers."""
        slot = DecoderSlot.of(lm)
        if slot.decoder is not None and slot.decoder.key == key:
            return slot.decoder
        slot.decoder = None  # free the old cache and graph before allocating new ones
        cache = StaticCache(config=_hf_model(lm).config, max_cache_len=key.length)
        if any(type(layer) is not StaticLayer for layer in cache.layers):
            return None
        slot.decoder = cls(lm, key, cache)
        return slot.decoder

    # --------------------------------------------------------------------------- device side
    def prefill(self, first: dict[str, Any], mask: torch.Tensor, max_new_tokens: int) -> Any:
        """Run the prompts (``first``: ids and pixels, or embeddings; ``mask`` ``(B, W)``
        left-padded), fill the cache and pick the first token. Returns the prompt's last hidden
        states ``(B, W, d)``."""
        width = mask.shape[1]
        if width + max_new_tokens > self.key.length:
            raise ValueError(f"{width} + {max_new_tokens} tokens exceed the cache")
        self.cache.reset()
        out = self.base(
            **first,
            attention_mask=mask,
            position_ids=positions(mask),
            use_cache=True,
            **self._base_cache,
        )
        self.mask.fill_(self.blocked)
        self.mask[:, 0, 0, :width].masked_fill_(mask.bool(), 0.0)
        self.position.copy_(mask.sum(1, keepdim=True))
        self.slot.fill_(width)
        self.step.zero_()
        self.done.zero_()
        self.tokens.fill_(self.key.pad)
        self._choose(out.last_hidden_state[:, -1])
        return out.last_hidden_state

    def _choose(self, last: torch.Tensor) -> None:
        """Pick the token after hidden states ``last (B, d)`` as answer token ``step``."""
        logits = self.head(last)
        if self.banned.numel():
            logits = logits.index_fill(1, self.banned, float("-inf"))
        token = logits.argmax(-1)
        token = torch.where(self.done, self.tokens[0].new_full((), self.key.pad), token)
        self.done |= (token[:, None] == self.stops).any(1)
        self.tokens.index_copy_(0, self.step, token[None])
        self.token.copy_(token)

    def _step(self) -> None:
        """Feed ``token`` (keep its hidden state) and pick the next one: no host sync."""
        column = torch.where(self.done, self.shut_column, self.open_column)  # finished: masked
        self.mask.index_copy_(3, self.slot, column.view(-1, 1, 1, 1))
        out = self.text(
            input_ids=self.token[:, None],
            attention_mask=self.mask,
            position_ids=self.position,
            use_cache=True,
            **self._text_cache,
        )
        last = out.last_hidden_state[:, -1]
        self.hidden.index_copy_(0, self.step, last[None])
        self.step += 1
        self._choose(last)
        self.position += 1
        self.slot += 1

    def _advance(self, graphs: bool) -> None:
        """One decoding step: eager (``graphs`` False, a CPU, or a failed capture), replayed, or
        captured (the first time, after an eager warm-up step that counts as this step)."""
        if not graphs or self.device.type != "cuda" or self.capture_failed:
            self._step()
            return
        if self.graph is not None:
            self.graph.replay()
            return
        fused = nullcontext() if self.kernels is None else swapped_kernels(self.text, self.kernels)
        with fused:  # the graph keeps the fused kernels; the model gets its own back
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    self._step()  # recorded, not run: the state is as the warm-up step left it
            except RuntimeError as err:  # a model whose step syncs with the host: stay eager
                logger.warning("decoding step not capturable as a CUDA graph (%s): eager", err)
                self.capture_failed = True
                return
        self.graph = graph

    # ----------------------------------------------------------------------------- host side
    def run(
        self,
        max_new_tokens: int,
        return_hidden: bool,
        on_token: Callable[[torch.Tensor], None] | None,
        graphs: bool,
    ) -> tuple[torch.Tensor, int]:
        """Decode after :meth:`prefill`. Returns the ``(max_new_tokens, B)`` CPU tokens (pads
        after a row's stop) and the number of steps run (hidden states ``hidden[:steps]``)."""
        reader = TokenReader(
            self.key.batch, max_new_tokens, self.key.stops, self.key.pad, self.device, on_token
        )

        def advance(t: int) -> torch.Tensor:
            self._advance(graphs)
            return self.tokens[t + 1]

        # Step t feeds answer token t and picks token t + 1; the last token needs a step only
        # for its hidden state.
        steps = reader.run(self.tokens[0], advance, max_new_tokens - (not return_hidden))
        return reader.tokens, steps

    def answer_hidden(self, steps: int) -> torch.Tensor:
        """``(B, steps, d)`` the hidden states of answer tokens ``0 .. steps - 1``."""
        return self.hidden[:steps].transpose(0, 1)


def collect_results(
    prompts: Sequence[torch.Tensor],
    tokens: torch.Tensor,
    prompt_hidden: torch.Tensor,
    answer_hidden: torch.Tensor | None,
    stops: Sequence[int],
) -> list[Generation]:
    """Cut each row of ``tokens (T, B)`` at its first stop token and gather its hidden states:
    the prompt's ``(B, W, d)`` (left-padded) then the answer's ``(B, steps, d)`` (None: no hidden
    states)."""
    width = prompt_hidden.shape[1]
    stop_set = set(stops)
    results = []
    for r, p in enumerate(prompts):
        row = tokens[:, r].tolist()
        cut = next((i for i, t in enumerate(row) if t in stop_set), None)
        n = len(row) if cut is None else cut
        device = prompt_hidden.device
        seq = torch.cat([p.to(device), tokens[:n, r].to(device)])
        h = None
        if answer_hidden is not None:
            plen = int(p.shape[0])
            h = torch.cat([prompt_hidden[r, width - plen :], answer_hidden[r, :n]]).clone()
        results.append(Generation(int(p.shape[0]), seq, h, cut is not None))
    return results
