"""Plumbing for HF causal LMs shared by scoring and generation: the base model and output head,
the cache keyword of this transformers version, and copies to the device that do not stall it."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn


def to_device(
    tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A CPU tensor on ``device`` without draining the stream: a blocking host-to-device copy
    waits for every queued kernel, a non-blocking one from pageable memory is staged at once."""
    return tensor.to(device=device, dtype=dtype, non_blocking=True)


def base_and_head(lm: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The base model (hidden states + cache) and the output projection of an HF causal LM."""
    model: Any = lm
    if hasattr(model, "get_base_model"):  # a PEFT wrapper
        model = model.get_base_model()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    base = getattr(model, "model", None)
    if not isinstance(head, nn.Module) or not isinstance(base, nn.Module):
        raise TypeError(f"{type(lm).__name__} is not an HF causal LM with .model and an lm_head")
    return base, head


def cache_kwargs(base: nn.Module, cache: Any) -> dict[str, Any]:
    """``{name: cache}`` under the name ``base.forward`` takes: ``cache`` (transformers >= 5.2x)
    or ``past_key_values`` (older), so the same code runs on either."""
    params = inspect.signature(base.forward).parameters
    return {"cache" if "cache" in params else "past_key_values": cache}


def output_cache(out: Any) -> Any:
    """The KV cache of a model output, under either attribute name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


class CachedDecoding:
    """What a hand-written decoding loop over one KV cache drives (the eager and the static
    decoder share it): the base model and output head of ``lm``, its text model (decode steps
    skip the vision tower of a VLM), the cache under the keyword each forward takes, and the
    head's device and dtype, which the loop's own tensors use."""

    def __init__(self, lm: nn.Module, cache: Any) -> None:
        self.base, self.head = base_and_head(lm)
        self.text = getattr(self.base, "language_model", self.base)
        self.cache = cache
        self._base_cache = cache_kwargs(self.base, cache)
        self._text_cache = cache_kwargs(self.text, cache)
        weight = next(self.head.parameters())
        self.device, self.dtype = weight.device, weight.dtype
        self.hidden_size = int(weight.shape[-1])
