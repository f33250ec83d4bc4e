"""The host side of the own decoding loops: queue steps, read each step's tokens a few steps
behind the device, stream them, and stop when every row has stopped.

Both decoders (:class:`~partonomy.models.core.static_decoder.StaticDecoder`, graphed, and
:class:`~partonomy.models.core.generation_eager.EagerDecoder`) leave every answer token on the
device; :class:`TokenReader` copies each row of tokens to pinned host memory without waiting, and
looks at it only :data:`HOST_LAG` steps later, so the host never stalls a step it has just queued.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

HOST_LAG = 3
"""Decoding steps the host lets a GPU run ahead before it reads a step's tokens (to stop, or to
stream them). The host then never waits on a step it has just queued; after the last row stops,
at most this many extra steps run (their tokens are dropped). On a CPU the lag is 0."""


class TokenReader:
    """The answer tokens of one decoding run, on their way to the host.

    Token row ``t`` (``(B,)`` int64 on the device, answer token ``t`` of every row) is
    *published* as soon as the step that picks it is queued (a non-blocking copy into pinned
    memory and a CUDA event) and *examined* once the device is :data:`HOST_LAG` steps further
    (wait for its event; stream it; note the rows that stopped). A row's tokens after its stop
    token are replaced by ``pad`` here, so a decoder may keep decoding a finished row.

    Args:
        batch: B rows.
        max_new_tokens: T, token rows kept.
        stops: ids that end a row (the stop token itself is kept and streamed).
        pad: the id a finished row gets.
        device: where the decoder runs (a CUDA device gets the lag and pinned memory).
        on_token: called with each examined ``(B,)`` CPU row, in order (see ``generate``).
    """

    def __init__(
        self,
        batch: int,
        max_new_tokens: int,
        stops: Sequence[int],
        pad: int,
        device: torch.device,
        on_token: Callable[[torch.Tensor], None] | None,
    ) -> None:
        self.on_gpu = device.type == "cuda"
        self.lag = HOST_LAG if self.on_gpu else 0
        self.limit = max_new_tokens
        self.stops = frozenset(int(s) for s in stops)
        self.pad = pad
        self.on_token = on_token
        self.tokens = torch.full((max_new_tokens, batch), pad, dtype=torch.long)
        if self.on_gpu:
            self.tokens = self.tokens.pin_memory()
        self.events: list[torch.cuda.Event] = []
        self.finished = [False] * batch  # plain Python: examining a row launches nothing
        self.published = 0
        self.seen = 0

    def publish(self, row: torch.Tensor) -> None:
        """Start copying the next token row ``(B,)`` (device) to the host."""
        t = self.published
        self.published += 1
        if t >= self.limit:
            return
        self.tokens[t].copy_(row, non_blocking=self.on_gpu)
        if self.on_gpu:
            event = torch.cuda.Event()
            event.record()
            self.events.append(event)

    def _examine(self) -> bool:
        """Read the next published row (waiting for its copy): stream it, note stopped rows.
        Returns True when every row has stopped."""
        t = self.seen
        self.seen += 1
        if self.on_gpu:
            self.events[t].synchronize()
        values = self.tokens[t].tolist()
        for r, value in enumerate(values):
            if self.finished[r]:
                if value != self.pad:
                    self.tokens[t, r] = self.pad
            elif value in self.stops:
                self.finished[r] = True
        if self.on_token is not None:
            self.on_token(self.tokens[t].clone())
        return all(self.finished)

    def _ready(self) -> int:
        return min(self.published, self.limit)

    def run(self, first: torch.Tensor, advance: Callable[[int], torch.Tensor], steps: int) -> int:
        """Drive a decoder: ``first`` is token row 0 (from the prefill); ``advance(t)`` queues
        step ``t`` (feed answer token ``t``, pick token ``t + 1``) and returns the new row.
        Runs at most ``steps`` steps, fewer once every row has stopped. Returns the steps run."""
        self.publish(first)
        done, run = False, 0
        while True:
            while not done and self.seen <= run - self.lag and self.seen < self._ready():
                done = self._examine()
            if done or run >= steps:
                break
            self.publish(advance(run))
            run += 1
        while not done and self.seen < self._ready():  # the trailing rows
            done = self._examine()
        if self.events:  # copies still in flight would land after the clean-up below
            self.events[-1].synchronize()
        self.tokens[self.seen :] = self.pad  # rows queued after every row stopped
        return run
