"""Fused RMSNorm, SwiGLU and rotary kernels for the choice-scoring forwards.

A scoring forward at 13B is a prefill of a few thousand tokens: its matrix products run near the
GPU's peak, and the element-wise work between them (HF LLaMA's RMSNorm is ~7 eager ops in float32,
rotary embedding ~10, SwiGLU 2) is memory traffic of ~0.6 MB per token and layer, a tenth or more
of the forward. The fused kernels of :mod:`~partonomy.models.core.fused_kernels` do that work in
one pass each. Unlike a decoding step, every scoring forward has other shapes (groups x prefix or
continuation width), so the ``compiled`` set here is compiled with automatic dynamic shapes
(static at the first call, dynamic in the dimensions that change from the second shape on: two
compilations per kernel and process, not one per batch) from wrappers of its own, so that its
compiled code never replaces the decoder's static one. Liger's kernels take any shape as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from partonomy.models.core.fused_kernels import (
    KERNEL_SETS,
    DecoderKernels,
    liger_kernels,
    model_sizes,
    reference_kernels,
    self_test,
    supports,
    swapped_kernels,
)

SCORING_KERNELS = ("off", "auto", *KERNEL_SETS)
"""Values of the predictor's ``scoring_kernels`` option."""


_REFERENCE = reference_kernels()  # immutable: plain functions


# Module-level wrappers (not closures, not the decoder's functions): one code object each, which is
# what torch.compile caches its graphs by, separate from the decoder's static-shape graphs.
def _rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return _REFERENCE.rms_norm(x, w, eps)


def _swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return _REFERENCE.swiglu(gate, up)


def _rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *_: Any, **__: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    return _REFERENCE.rope(q, k, cos, sin)


def compiled_any_shape(backend: str = "inductor") -> DecoderKernels | None:
    """The reference kernels through ``torch.compile`` with automatic dynamic shapes, or None
    without Triton (``backend="eager"`` is for tests: it traces without generating code)."""
    if backend == "inductor":
        try:
            import triton  # noqa: F401
        except Exception:  # no Triton (e.g. a CPU-only install): nothing to fuse with
            return None

    def compiled(fn: Callable[..., Any]) -> Any:
        return torch.compile(fn, backend=backend, fullgraph=True)

    return DecoderKernels(
        rms_norm=compiled(_rms_norm),
        swiglu=compiled(_swiglu),
        rope=compiled(_rope),
        name="compiled",
    )


def scoring_kernels(choice: str) -> DecoderKernels | None:
    """The kernel set for scoring: ``liger``, ``compiled``, ``auto`` (Liger's when installed, else
    compiled), ``off``; None when off or unavailable here."""
    if choice not in SCORING_KERNELS:
        raise ValueError(f"scoring kernels must be one of {', '.join(SCORING_KERNELS)}")
    if choice == "off":
        return None
    if choice in ("liger", "auto"):
        kernels = liger_kernels()
        if kernels is not None or choice == "liger":
            return kernels
    return compiled_any_shape()


def text_model(base: nn.Module) -> nn.Module:
    """The decoder stack of a scoring base model (LLaVA's ``language_model``, or the base itself)."""
    inner = getattr(base, "language_model", base)
    return inner if isinstance(inner, nn.Module) else base


def usable(kernels: DecoderKernels | None, base: nn.Module) -> DecoderKernels | None:
    """``kernels`` if ``base``'s decoder is LLaMA-shaped and they pass their self-test at its sizes
    on its device and dtype (which also compiles them there), else None (logged by the test)."""
    if kernels is None:
        return None
    text = text_model(base)
    if not supports(text):
        return None
    weight = next(text.parameters())
    if not self_test(kernels, weight.device, weight.dtype, model_sizes(text)):
        return None
    return kernels


@contextmanager
def fused(base: nn.Module, kernels: DecoderKernels | None) -> Iterator[None]:
    """Within the block, ``base``'s decoder runs ``kernels`` (nothing changes when None)."""
    with nullcontext() if kernels is None else swapped_kernels(text_model(base), kernels):
        yield
