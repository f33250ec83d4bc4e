"""Fused GPU kernels for a LLaMA-style decoder, swapped in for one block of code.

At batch 1 a decoding step of LLaMA-13B is ~1,800 kernels, ~1,400 of them tiny element-wise ops
(RMSNorm is ~7 eager ops, rotary embedding ~10 per layer, SwiGLU 2), each costing a couple of
microseconds even inside a CUDA graph: about a third of the step. Two sets of fused kernels
replace them (:data:`KERNEL_SETS`): ``liger-kernel``'s hand-written Triton kernels (optional
package, the ``gpu`` extra), and the plain-torch references put through ``torch.compile``, whose
Inductor backend fuses each into one Triton kernel (needs only torch and Triton, so it is the
fallback; compiling the three small graphs costs a few seconds once per process and shape, and
Inductor's on-disk cache shortens it in later processes). :func:`swapped_kernels` replaces the
three inside a ``with`` block only (the decoder captures its CUDA graph there), and restores the
model and the modeling module afterwards, so training and every other use of the model are
unaffected.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecoderKernels:
    """The three fused operations, with HF LLaMA's semantics.

    Attributes:
        rms_norm: ``(x, weight, eps) -> weight * x / rms(x)`` (computed in float32, cast back).
        swiglu: ``(gate, up) -> silu(gate) * up``.
        rope: ``(q, k, cos, sin) -> (q, k)`` rotated, as ``apply_rotary_pos_emb``.
        name: which set (``"liger"``, ``"compiled"``, ``"reference"``), for logs and benchmarks.
    """

    rms_norm: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    swiglu: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    rope: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    name: str = "custom"


KERNEL_SETS = ("liger", "compiled")
"""The fused kernel sets :func:`decoder_kernels` knows, in the order ``"auto"`` tries them."""


def decoder_kernels(choice: str) -> DecoderKernels | None:
    """The kernel set ``choice`` (one of :data:`KERNEL_SETS`, or ``"auto"``: the first of them
    that is available), or None when it is unavailable here."""
    if choice not in (*KERNEL_SETS, "auto"):
        raise ValueError(f"fused kernels must be one of {', '.join(KERNEL_SETS)} or 'auto'")
    if choice in ("liger", "auto"):
        kernels = liger_kernels()
        if kernels is not None or choice == "liger":
            return kernels
    return compiled_kernels()


def compiled_kernels(backend: str = "inductor") -> DecoderKernels | None:
    """:func:`reference_kernels` through ``torch.compile`` (static shapes, one graph each), or None
    when the Inductor backend has no Triton to generate GPU kernels with.

    The functions compile lazily, at their first call (the decoder's self-test, with the model's
    sizes). ``backend`` other than Inductor is for tests (``"eager"`` traces without generating
    code, which checks that each function is one graph).
    """
    if backend == "inductor":
        try:
            import triton  # noqa: F401
        except Exception:  # no Triton (e.g. a CPU-only install): nothing to fuse with
            return None
    ref = reference_kernels()

    def compiled(fn: Callable[..., Any]) -> Any:
        return torch.compile(fn, backend=backend, dynamic=False, fullgraph=True)

    return DecoderKernels(
        rms_norm=compiled(ref.rms_norm),
        swiglu=compiled(ref.swiglu),
        rope=compiled(ref.rope),
        name="compiled",
    )


def liger_kernels() -> DecoderKernels | None:
    """Liger's kernels, or None when ``liger-kernel`` (or Triton) is not installed."""
    try:
        from liger_kernel.transformers.functional import (
            liger_rms_norm,
            liger_rope,
            liger_swiglu,
        )
    except Exception:  # not installed, or no Triton: an optional speed-up only
        return None
    return DecoderKernels(
        rms_norm=lambda x, w, eps: liger_rms_norm(x, w, eps, in_place=False),
        swiglu=liger_swiglu,
        rope=lambda q, k, cos, sin, *args, **kwargs: liger_rope(q, k, cos, sin),
        name="liger",
    )


def _layers(text_model: nn.Module) -> list[nn.Module]:
    layers = getattr(text_model, "layers", None)
    return list(layers) if isinstance(layers, nn.ModuleList) else []


def supports(text_model: nn.Module) -> bool:
    """Whether ``text_model`` is LLaMA-shaped: RMSNorms with ``weight`` and ``variance_epsilon``,
    SwiGLU MLPs (``gate_proj``/``up_proj``/``down_proj``, SiLU) and a modeling module whose
    attention calls ``apply_rotary_pos_emb``."""
    layers = _layers(text_model)
    if not layers:
        return False
    config = getattr(text_model, "config", None)
    if getattr(config, "hidden_act", None) not in ("silu", "swish"):
        return False
    for layer in layers:
        norms = [getattr(layer, n, None) for n in ("input_layernorm", "post_attention_layernorm")]
        if not all(_is_rms_norm(n) for n in norms):
            return False
        mlp = getattr(layer, "mlp", None)
        if not all(hasattr(mlp, p) for p in ("gate_proj", "up_proj", "down_proj")):
            return False
        attention = getattr(layer, "self_attn", None)
        module = sys.modules.get(type(attention).__module__)
        if not callable(getattr(module, "apply_rotary_pos_emb", None)):
            return False
    return _is_rms_norm(getattr(text_model, "norm", None))


def model_sizes(text_model: nn.Module) -> tuple[int, int, int, int, int]:
    """(hidden, MLP width, query heads, key/value heads, head dim) of a :func:`supports` model."""
    cfg: Any = text_model.config
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    return int(cfg.hidden_size), int(cfg.intermediate_size), heads, kv_heads, head_dim


def _is_rms_norm(module: Any) -> bool:
    return (
        isinstance(module, nn.Module)
        and type(module).__name__.endswith("RMSNorm")
        and isinstance(getattr(module, "weight", None), torch.Tensor)
        and hasattr(module, "variance_epsilon")
    )


def reference_kernels() -> DecoderKernels:
    """Plain torch versions of the three operations (the self-test's reference, and the CPU
    stand-in that lets the swapping be tested without a GPU)."""
    return DecoderKernels(rms_norm=_rms_norm, swiglu=_swiglu, rope=_rope, name="reference")


# Module-level (not closures) so that every compiled copy shares one code object, which is what
# torch.compile caches its graphs by: a second decoder does not recompile.
def _rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(x.dtype)


def _swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def _rotate(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), -1)


def _rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *_: Any, **__: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + _rotate(q) * sin, k * cos + _rotate(k) * sin


def self_test(
    kernels: DecoderKernels,
    device: torch.device,
    dtype: torch.dtype,
    sizes: tuple[int, int, int, int, int] = (64, 96, 4, 2, 32),
) -> bool:
    """Run ``kernels`` once on one-token inputs against :func:`reference_kernels`; False, with a
    logged warning, if one fails or differs beyond dtype tolerance.

    ``sizes`` = (hidden, MLP width, query heads, key/value heads, head dim): give the model's, so
    that the (Triton) kernels compiled here are the ones its decoding step reuses.
    """
    ref = reference_kernels()
    gen = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device, dtype)

    hidden, inter, heads, kv_heads, head_dim = sizes
    x, w, a, b = rand(1, 1, hidden), rand(hidden), rand(1, 1, inter), rand(1, 1, inter)
    q, k = rand(1, heads, 1, head_dim), rand(1, kv_heads, 1, head_dim)
    angle = rand(1, 1, head_dim // 2).float()
    cos = torch.cat([angle.cos()] * 2, -1).to(dtype)
    sin = torch.cat([angle.sin()] * 2, -1).to(dtype)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    try:  # each call on its own copies: a kernel may work in place (Liger's rope does)
        want_q, want_k = ref.rope(q.clone(), k.clone(), cos, sin)
        pairs = [
            (kernels.rms_norm(x.clone(), w, 1e-6), ref.rms_norm(x, w, 1e-6)),
            (kernels.swiglu(a.clone(), b.clone()), ref.swiglu(a, b)),
            *zip(kernels.rope(q.clone(), k.clone(), cos, sin), (want_q, want_k), strict=True),
        ]
        for got, want in pairs:
            torch.testing.assert_close(got, want, atol=tol, rtol=tol)
    except Exception as err:  # a broken optional kernel must not break generation
        logger.warning("fused decoder kernels failed their self-test, not used: %s", err)
        return False
    return True


@contextmanager
def swapped_kernels(text_model: nn.Module, kernels: DecoderKernels) -> Iterator[None]:
    """Within the block, ``text_model``'s RMSNorms, MLPs and rotary embedding run ``kernels``.

    The norms' and MLPs' ``forward`` are shadowed by instance attributes and the modeling
    module's ``apply_rotary_pos_emb`` is replaced; all are restored on exit, errors included.
    The model must pass :func:`supports`.
    """
    if not supports(text_model):
        raise ValueError(f"{type(text_model).__name__} is not a LLaMA-style decoder")
    modules: list[nn.Module] = [text_model.norm]  # type: ignore[list-item]
    for layer in _layers(text_model):
        modules += [layer.input_layernorm, layer.post_attention_layernorm, layer.mlp]  # type: ignore[list-item]
    for module in modules:
        if "forward" in module.__dict__:
            raise RuntimeError(f"{type(module).__name__}.forward is already overridden")
    attention = _layers(text_model)[0].self_attn
    modeling = sys.modules[type(attention).__module__]
    original_rope = modeling.apply_rotary_pos_emb  # type: ignore[attr-defined]
    try:
        for module in modules:
            if hasattr(module, "gate_proj"):
                module.forward = _mlp_forward(module, kernels)  # type: ignore[method-assign]
            else:
                module.forward = _norm_forward(module, kernels)  # type: ignore[method-assign]
        modeling.apply_rotary_pos_emb = kernels.rope  # type: ignore[attr-defined]
        yield
    finally:
        modeling.apply_rotary_pos_emb = original_rope  # type: ignore[attr-defined]
        for module in modules:
            module.__dict__.pop("forward", None)


def _norm_forward(norm: Any, kernels: DecoderKernels) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: kernels.rms_norm(x, norm.weight, float(norm.variance_epsilon))


def _mlp_forward(mlp: Any, kernels: DecoderKernels) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: mlp.down_proj(kernels.swiglu(mlp.gate_proj(x), mlp.up_proj(x)))
