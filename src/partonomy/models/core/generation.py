"""Greedy generation with a KV cache, collecting the last-layer hidden states as it goes.

The original PLUM sets ``use_cache=False`` and so recomputes the whole sequence at every new token.
Here the prompt (image included) is prefilled once into a static KV cache and each step feeds one
token per row; the hidden state of each fed token is kept, so the span tagger gets the full
sequence's hidden states without another forward. On a GPU the decoding step is captured once as a
CUDA graph and replayed, and the host reads the tokens a few steps behind the GPU, so batch-1
decoding runs near the memory-bandwidth limit (:class:`StaticDecoder`). ``use_cache=False`` keeps
a recomputing loop as the reference (tests check both give the same tokens), and
``static_cache=True`` HF's own ``generate``.

Batching: prompts of different lengths are left-padded, with explicit position ids so each row sees
the positions it would have alone. Decoding is greedy (the original's ``num_beams=1``, no sampling);
ties go to the lowest token id (``argmax``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import StaticCache
from transformers.cache_utils import StaticLayer

from partonomy.models.core.fused_kernels import (
    liger_kernels,
    model_sizes,
    self_test,
    supports,
    swapped_kernels,
)
from partonomy.models.core.scoring import base_and_head, cache_kwargs

if TYPE_CHECKING:
    from partonomy.models.core.generation_vlm import VlmVision

logger = logging.getLogger(__name__)


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


def _left_pad(
    prompts: Sequence[torch.Tensor], pad_token_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(int(p.shape[0]) for p in prompts)
    ids = torch.full((len(prompts), n), pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), n), dtype=torch.long, device=device)
    for r, p in enumerate(prompts):
        ids[r, n - p.shape[0] :] = p.to(device)
        mask[r, n - p.shape[0] :] = 1
    return ids, mask


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token (pads get 0)."""
    return (mask.cumsum(1) - 1).clamp(min=0)


@torch.no_grad()
def generate(
    lm: nn.Module,
    prompts: Sequence[torch.Tensor],
    pixel_values: torch.Tensor | VlmVision,
    *,
    stop_token_ids: Sequence[int],
    max_new_tokens: int = 512,
    pad_token_id: int = 0,
    use_cache: bool = True,
    return_hidden: bool = True,
    static_cache: bool = False,
    prompt_embeds: Sequence[torch.Tensor] | None = None,
    on_token: Callable[[torch.Tensor], None] | None = None,
    banned_token_ids: Sequence[int] = (),
    cuda_graphs: bool | None = None,
    fused_kernels: bool | None = None,
) -> list[Generation]:
    """Greedy-decode one answer per prompt.

    Args:
        lm: an HF causal LM (``LlavaForConditionalGeneration``) in eval mode.
        prompts: B int64 tensors ``(L_b,)``: each prompt up to and including ``ASSISTANT:``, with its
            image placeholder tokens.
        pixel_values: ``(B, 3, S, S)`` the LM's vision input, one image per prompt; an HF VLM
            backbone's :class:`~partonomy.models.core.generation_vlm.VlmVision` instead goes to
            :func:`~partonomy.models.core.generation_vlm.generate_vlm` (the rest of the options
            do not apply there).
        stop_token_ids: ids that end an answer (EOS, i.e. the llava_v1 ``</s>`` separator).
        max_new_tokens: at most this many tokens per answer (the stop token included).
        pad_token_id: any valid id, used for padding (masked out).
        use_cache: False recomputes the full sequence at every step (the slow reference).
        return_hidden: collect the hidden states of prompt and answer.
        static_cache: decode with HF ``generate`` over a static KV cache instead of the own loop
            (HF compiles its decoding step on a GPU: ~30-40 s once per process); the hidden
            states then come from one forward over the final sequences. Kept as a reference.
        prompt_embeds: per prompt ``(L_b, d)`` input embeddings to use instead of embedding the
            prompt ids and scattering ``pixel_values`` (models whose input encoders replace
            special tokens, e.g. GLaMM's ``<bbox>``); the own KV loop only.
        on_token: called with the ``(B,)`` int64 CPU tokens chosen at each step, in step order (a
            row that has already stopped gets ``pad_token_id``; the stop token itself is passed
            too; no call after every row has stopped), e.g. to stream an answer. On a GPU the
            calls trail the decoding by a few steps (:data:`HOST_LAG` tokens), so that reading
            the tokens never stalls the GPU. With ``static_cache`` it is called after decoding
            has finished, once per step of the longest kept answer (stop tokens not passed).
        banned_token_ids: ids never generated (their logits are -inf before the argmax): the
            image placeholder tokens, which only the processor may place (a generated ``<image>``
            would break the next forward's image-token count).
        cuda_graphs: capture the own loop's decoding step in a CUDA graph (None: on a CUDA
            device). The capture happens at the first call for a batch size and cache length
            and costs about one step; later calls of the same shape replay it (see
            :class:`StaticDecoder`).
        fused_kernels: capture the graph with ``liger-kernel``'s fused RMSNorm, SwiGLU and
            rotary kernels swapped in (:mod:`~partonomy.models.core.fused_kernels`; the model
            itself is left as it was). None: when the package is installed and the model is
            LLaMA-shaped. Graphed decoding only.

    Returns:
        One :class:`Generation` per prompt, in order.
    """
    if not prompts:
        return []
    from partonomy.models.core.generation_vlm import VlmVision, generate_vlm  # it imports us

    if isinstance(pixel_values, VlmVision):  # an HF VLM backbone decodes with its own generate
        return generate_vlm(lm, pixel_values, prompts, stop_token_ids=stop_token_ids,
                            max_new_tokens=max_new_tokens, pad_token_id=pad_token_id,
                            return_hidden=return_hidden, on_token=on_token,
                            banned_token_ids=banned_token_ids)  # fmt: skip
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if prompt_embeds is not None and (static_cache or not use_cache):
        raise ValueError("prompt_embeds needs the KV-cached loop (static_cache=False, use_cache)")
    args = (lm, prompts, pixel_values, stop_token_ids, max_new_tokens, pad_token_id)
    if static_cache:
        results = _generate_static(*args, return_hidden, banned_token_ids)
        if on_token is not None:
            _replay_tokens(results, on_token, pad_token_id)
        return results
    if not use_cache:
        return _generate_recompute(*args, return_hidden, on_token, banned_token_ids)
    _, head = base_and_head(lm)
    weight = next(head.parameters())
    device = weight.device
    ids, mask = _left_pad(prompts, pad_token_id, device)
    batch, width = ids.shape
    length = _bucket(width + max_new_tokens)
    graphs = device.type == "cuda" if cuda_graphs is None else cuda_graphs
    key = DecoderKey(
        batch=batch,
        length=length,
        stops=tuple(sorted({int(t) for t in stop_token_ids})),
        banned=tuple(sorted({int(t) for t in banned_token_ids})),
        pad=pad_token_id,
        weight=weight.data_ptr(),
        inference_mode=torch.is_inference_mode_enabled(),
        fused=graphs and device.type == "cuda" and fused_kernels is not False,
    )
    decoder = StaticDecoder.of(lm, key)
    if decoder is None:  # a sliding-window or hybrid cache: HF knows its masks, we do not
        if prompt_embeds is not None:
            raise NotImplementedError(
                f"{type(lm).__name__}: prompt_embeds need the own loop, which supports only "
                "full-attention layers"
            )
        logger.warning("%s has sliding-window layers: generating with HF generate", type(lm))
        results = _generate_static(*args, return_hidden, banned_token_ids, "dynamic")
        if on_token is not None:
            _replay_tokens(results, on_token, pad_token_id)
        return results
    if prompt_embeds is None:
        first: dict[str, Any] = {
            "input_ids": ids,
            "pixel_values": pixel_values.to(device, weight.dtype),
        }
    else:
        embeds = torch.zeros(
            (batch, width, prompt_embeds[0].shape[-1]), dtype=weight.dtype, device=device
        )
        for r, e in enumerate(prompt_embeds):  # left-padded like the ids
            embeds[r, width - e.shape[0] :] = e.to(device, weight.dtype)
        first = {"inputs_embeds": embeds}
    if fused_kernels and decoder.kernels is None:
        logger.warning("fused_kernels asked, but liger-kernel is unavailable or unsuited here")
    prompt_hidden = decoder.prefill(first, mask, max_new_tokens)
    tokens, steps = decoder.run(max_new_tokens, return_hidden, on_token, graphs)
    return _results(prompts, tokens, prompt_hidden, decoder, steps, key.stops, return_hidden)


HOST_LAG = 3
"""Decoding steps the host lets the GPU run ahead before it reads a step's tokens (to stop, or to
stream them). The host then never waits on a step it has just queued; after the last row stops,
at most this many extra steps run (their tokens are dropped)."""

BUCKET = 256
"""Static caches are sized in multiples of this many positions, so that prompts of different
lengths reuse one captured graph."""


def _bucket(n: int) -> int:
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
    fused: bool  # capture with fused kernels if they are available


class DecoderSlot:
    """Where a model keeps its last :class:`StaticDecoder` (attribute ``_partonomy_decoder``).

    A copy (or a pickled model) gets an empty slot: a CUDA graph cannot be copied, and the copy's
    weights live elsewhere anyway.
    """

    ATTRIBUTE = "_partonomy_decoder"

    def __init__(self) -> None:
        self.decoder: StaticDecoder | None = None

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


class StaticDecoder:
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
    time, no compiler) and replayed. The host reads tokens :data:`HOST_LAG` steps behind, from
    pinned memory.

    A model keeps its last decoder (:class:`DecoderSlot`); a call with another :class:`DecoderKey`
    replaces it (:func:`release_decoder` frees it). Left padding and position ids are as in the
    plain loop: a row's positions count its real tokens only; a finished row keeps feeding
    masked pads.
    """

    def __init__(self, lm: nn.Module, key: DecoderKey, cache: Any) -> None:
        self.key = key
        self.base, self.head = base_and_head(lm)
        self.text = getattr(self.base, "language_model", self.base)  # decoder steps skip vision
        self.cache = cache
        self._base_cache = cache_kwargs(self.base, cache)
        self._text_cache = cache_kwargs(self.text, cache)
        weight = next(self.head.parameters())
        device, dtype = weight.device, weight.dtype
        b, n = key.batch, key.length
        hidden_size = int(weight.shape[-1])
        self.device, self.dtype = device, dtype
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
        self.kernels = liger_kernels() if key.fused else None
        if self.kernels is not None and not (
            supports(self.text) and self_test(self.kernels, device, dtype, model_sizes(self.text))
        ):
            self.kernels = None

    @classmethod
    def of(cls, lm: nn.Module, key: DecoderKey) -> StaticDecoder | None:
        """``lm``'s decoder for ``key`` (reused, or built and kept); None if the model has
        sliding-window or other non-full cache layers."""
        slot = lm.__dict__.get(DecoderSlot.ATTRIBUTE)
        if not isinstance(slot, DecoderSlot):
            slot = DecoderSlot()
            object.__setattr__(lm, DecoderSlot.ATTRIBUTE, slot)
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
            position_ids=_positions(mask),
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
        # Step t feeds answer token t and picks token t + 1; the last token needs a step only
        # for its hidden state.
        limit = max_new_tokens if return_hidden else max_new_tokens - 1
        on_gpu = self.device.type == "cuda"
        lag = HOST_LAG if on_gpu else 0
        rows = self.tokens[:max_new_tokens]
        host = torch.empty(rows.shape, dtype=torch.long, pin_memory=on_gpu) if on_gpu else rows
        events: list[torch.cuda.Event] = []
        stops = torch.tensor(self.key.stops, dtype=torch.long)
        finished = torch.zeros(self.key.batch, dtype=torch.bool)

        def publish(t: int) -> None:  # start copying token row t to the host
            if on_gpu and t < max_new_tokens:
                host[t].copy_(rows[t], non_blocking=True)
                events.append(torch.cuda.Event())
                events[-1].record()

        def examine(t: int) -> bool:  # token row t on the host: stream it; all rows done?
            if on_gpu:
                events[t].synchronize()
            row = host[t]
            if on_token is not None:
                on_token(row.clone())
            finished.logical_or_(torch.isin(row, stops))
            return bool(finished.all())

        publish(0)
        steps, seen, all_done = 0, 0, False
        while True:
            while not all_done and seen <= steps - lag and seen < min(steps + 1, max_new_tokens):
                all_done = examine(seen)
                seen += 1
            if all_done or steps >= limit:
                break
            self._advance(graphs)
            steps += 1
            publish(steps)
        while not all_done and seen < min(steps + 1, max_new_tokens):  # the trailing rows
            all_done = examine(seen)
            seen += 1
        return rows.cpu(), steps


def _results(
    prompts: Sequence[torch.Tensor],
    tokens: torch.Tensor,
    prompt_hidden: torch.Tensor,
    decoder: StaticDecoder,
    steps: int,
    stops: Sequence[int],
    return_hidden: bool,
) -> list[Generation]:
    """Cut each row of ``tokens (T, B)`` at its first stop token and gather its hidden states."""
    width = prompt_hidden.shape[1]
    stop_set = set(stops)
    answer_hidden = decoder.hidden[:steps].transpose(0, 1) if return_hidden else None
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


def _replay_tokens(
    results: Sequence[Generation], on_token: Callable[[torch.Tensor], None], pad_token_id: int
) -> None:
    """``on_token`` once per step of the longest answer, after the fact (HF ``generate`` paths)."""
    steps = max(int(r.new_tokens.shape[0]) for r in results)
    for t in range(steps):
        on_token(
            torch.tensor(
                [
                    int(r.new_tokens[t]) if t < r.new_tokens.shape[0] else pad_token_id
                    for r in results
                ]
            )
        )


def _generate_recompute(
    lm: nn.Module,
    prompts: Sequence[torch.Tensor],
    pixel_values: torch.Tensor,
    stop_token_ids: Sequence[int],
    max_new_tokens: int,
    pad_token_id: int,
    return_hidden: bool,
    on_token: Callable[[torch.Tensor], None] | None,
    banned_token_ids: Sequence[int],
) -> list[Generation]:
    """The reference: a full forward over prompt + answer so far at every step, no cache.

    A finished row keeps receiving pads; they come after its stop token, so no kept position
    attends to them (causal attention) and they are left unmasked.
    """
    base, head = base_and_head(lm)
    weight = next(head.parameters())
    device = weight.device
    pixel_values = pixel_values.to(device, weight.dtype)
    ids, mask = _left_pad(prompts, pad_token_id, device)
    width = ids.shape[1]
    stops = torch.tensor(sorted({int(t) for t in stop_token_ids}), device=device)
    banned = sorted({int(t) for t in banned_token_ids})
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    tokens = ids[:, :0]

    def forward() -> torch.Tensor:
        seq_mask = torch.cat([mask, torch.ones_like(tokens)], 1)
        return base(
            input_ids=torch.cat([ids, tokens], 1),
            pixel_values=pixel_values,
            attention_mask=seq_mask,
            position_ids=_positions(seq_mask),
        ).last_hidden_state

    for _step in range(max_new_tokens):
        logits = head(forward()[:, -1])
        if banned:
            logits[:, banned] = float("-inf")
        token = torch.where(done, pad_token_id, logits.argmax(-1))
        done |= torch.isin(token, stops)
        tokens = torch.cat([tokens, token[:, None]], 1)
        if on_token is not None:
            on_token(token.cpu())
        if bool(done.all()):
            break
    hidden = forward() if return_hidden else None
    results = []
    for r, p in enumerate(prompts):
        row = tokens[r].tolist()
        cut = next((i for i, t in enumerate(row) if t in stops.tolist()), None)
        n = len(row) if cut is None else cut
        plen = int(p.shape[0])
        seq = torch.cat([p.to(device), tokens[r, :n]])
        h = None if hidden is None else hidden[r, width - plen : width + n]
        results.append(Generation(plen, seq, h, cut is not None))
    return results


def _generate_static(
    lm: nn.Module,
    prompts: Sequence[torch.Tensor],
    pixel_values: torch.Tensor,
    stop_token_ids: Sequence[int],
    max_new_tokens: int,
    pad_token_id: int,
    return_hidden: bool,
    banned_token_ids: Sequence[int] = (),
    cache_implementation: str = "static",
) -> list[Generation]:
    """:func:`generate` through HF ``generate`` (a static KV cache unless told otherwise)."""
    base, head = base_and_head(lm)
    weight = next(head.parameters())
    device = weight.device
    pixel_values = pixel_values.to(device, weight.dtype)
    ids, mask = _left_pad(prompts, pad_token_id, device)
    width = ids.shape[1]
    out = lm.generate(  # type: ignore[operator]
        input_ids=ids,
        attention_mask=mask,
        pixel_values=pixel_values,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=list(stop_token_ids),
        pad_token_id=pad_token_id,
        cache_implementation=cache_implementation,
        suppress_tokens=sorted({int(t) for t in banned_token_ids}) or None,
    )
    new = out[:, width:].cpu()
    stops = set(int(t) for t in stop_token_ids)
    results: list[Generation] = []
    kept: list[tuple[torch.Tensor, bool]] = []
    for row in new:
        tokens = row.tolist()
        cut = next((i for i, t in enumerate(tokens) if t in stops), None)
        kept.append((row[: len(tokens) if cut is None else cut], cut is not None))
    hidden = None
    if return_hidden:
        full = [torch.cat([p.cpu(), k]) for p, (k, _) in zip(prompts, kept, strict=True)]
        full_ids, full_mask = _left_pad(full, pad_token_id, device)
        hidden = base(
            input_ids=full_ids,
            pixel_values=pixel_values,
            attention_mask=full_mask,
            position_ids=_positions(full_mask),
        ).last_hidden_state
    for r, (p, (k, stopped)) in enumerate(zip(prompts, kept, strict=True)):
        seq = torch.cat([p.to(device), k.to(device)])
        h = None if hidden is None else hidden[r, hidden.shape[1] - seq.numel() :]
        results.append(Generation(int(p.shape[0]), seq, h, stopped))
    return results


# ------------------------------------------------------------------------- answer text and spans
@dataclass(frozen=True)
class TextSpan:
    """A span of answer tokens and the characters it covers.

    Attributes:
        tokens: indices into the answer's token list, ascending and contiguous.
        start, end: character offsets into the answer text, end exclusive, whitespace trimmed.
    """

    tokens: tuple[int, ...]
    start: int
    end: int


def decode_with_offsets(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decode ``ids`` and give each token the character range it adds to the text.

    Uses incremental decoding (the text of ``ids[:k + 1]`` minus that of ``ids[:k]``), so it is
    exact for any tokenizer whose decoding is prefix-stable, SentencePiece's word-start spaces
    included. Special tokens are skipped (they cover an empty range). A token that completes a
    multi-byte character started by earlier byte tokens may shift the range; ranges are clamped to
    stay monotonic.

    Returns:
        ``(text, offsets)`` with ``offsets[k] = (start, end)`` into ``text``.
    """
    offsets: list[tuple[int, int]] = []
    previous = 0
    text = ""
    for k in range(len(ids)):
        text = tokenizer.decode(list(ids[: k + 1]), skip_special_tokens=True)
        end = max(previous, len(text))
        offsets.append((previous, end))
        previous = end
    return text, offsets


def char_span(text: str, offsets: Sequence[tuple[int, int]], tokens: Sequence[int]) -> TextSpan:
    """The :class:`TextSpan` of answer tokens ``tokens``, leading/trailing whitespace trimmed."""
    start, end = offsets[tokens[0]][0], offsets[tokens[-1]][1]
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return TextSpan(tuple(tokens), start, end)


def find_phrases(
    text: str, offsets: Sequence[tuple[int, int]], phrases: Sequence[str]
) -> list[TextSpan]:
    """Highlight-to-segment: every occurrence of each phrase in the answer, as token spans.

    Matching is on characters, case-insensitive, whole words only (the characters on either side
    of a match may not be letters or digits), longest phrase first; a match that overlaps an
    earlier one (in characters or in tokens) is skipped, as BIO tags cannot express overlaps. A
    match covers every token whose character range overlaps it, so a phrase that starts or ends
    inside a token takes that whole token. Empty phrases are ignored.

    Returns:
        The spans in token order (a phrase that is not found contributes none).
    """
    lowered = text.lower()
    taken = [False] * len(text)
    used: set[int] = set()  # tokens already in a span
    found: list[TextSpan] = []
    for phrase in sorted({p.strip() for p in phrases if p.strip()}, key=lambda p: -len(p)):
        needle = phrase.lower()
        at = lowered.find(needle)
        while at >= 0:
            end = at + len(needle)
            whole = (at == 0 or not text[at - 1].isalnum()) and (
                end == len(text) or not text[end].isalnum()
            )
            tokens = [k for k, (s, e) in enumerate(offsets) if s < end and e > at and e > s]
            if whole and tokens and not any(taken[at:end]) and not used & set(tokens):
                taken[at:end] = [True] * (end - at)
                used.update(tokens)
                found.append(TextSpan(tuple(tokens), at, end))
            at = lowered.find(needle, at + 1)
    return sorted(found, key=lambda s: s.tokens[0])
