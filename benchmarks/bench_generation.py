"""Batch-1 greedy generation speed: the own loop (a CUDA graph over a static cache with the
default fused kernels, with each fused kernel set -- ``torch.compile``'d, and ``liger-kernel``'s
when it is installed -- and with plain kernels; eager steps over a dynamic cache) against HF
``generate``, at the tiny, 7B or 13B LLaVA shape.

A random-weight ``LlavaForConditionalGeneration`` answers one prompt laid out like PLUM's (BOS,
~40 system tokens, the image tokens, a ~25-token question): ``--new-tokens`` tokens are decoded
with a stop id that never occurs, so every path decodes the same number. Each path's time is the
median of ``--repeats`` calls after a warm-up (the first graphed call, which captures the graph,
is timed on its own). The decoding step alone is ``(t(n) - t(1)) / (n - 1)``. The bandwidth limit
is the bytes of the language model's weights over the GPU's memory bandwidth (``--bandwidth``).
The paths' answers are compared: common token prefix, and the largest hidden-state difference
over it (random weights give near-tied logits, so bf16 rounding can flip a token).

Operators per step: the ATen operators one decoding step dispatches, counted with a dispatch mode
(:func:`~partonomy.models.core.generation_ops.ops_per_step`), in all and those that are not views
(one kernel launch each on a GPU, which is what bounds an eager batch-1 step there): the eager
steps, the static decoder's steps run eagerly (on a CPU: what its CUDA graph holds), HF
``generate``. This makes the claim "the own loop's eager step is lighter than HF's" checkable on a
CPU with ``--shape tiny``; ``--ops-layers N`` counts on a model of N decoder layers instead (the
13B has 40) without its width.

Usage::

    .venv/bin/python benchmarks/bench_generation.py                                  # tiny, CPU
    python benchmarks/bench_generation.py --shape 13b --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import transformers
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from partonomy.models.core.fused_kernels import decoder_kernels
from partonomy.models.core.generation import DecoderSlot, Generation, generate
from partonomy.models.core.generation_ops import StepOps, ops_per_step

VOCAB = 32002
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"v": (64, 2, 4, 16), "t": (128, 2, 4, 256)},
    "7b": {"v": (1024, 24, 16, 14), "t": (4096, 32, 32, 11008)},
    "13b": {"v": (1024, 24, 16, 14), "t": (5120, 40, 40, 13824)},
}
"""(hidden, layers, heads, patch) of CLIP at 224 px and (hidden, layers, heads, MLP) of LLaMA."""


def build(
    shape: str, device: str, dtype: torch.dtype, layers: int | None = None
) -> tuple[LlavaForConditionalGeneration, int]:
    """A random LLaVA of ``shape`` (``layers`` decoder layers instead of the shape's, if given)."""
    (vh, vl, vn, patch), (th, tl, tn, ti) = SHAPES[shape]["v"], SHAPES[shape]["t"]
    tl = tl if layers is None else layers
    n_image = (224 // patch) ** 2
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=vh, intermediate_size=4 * vh, num_hidden_layers=vl,
            num_attention_heads=vn, image_size=224, patch_size=patch,
        ),
        text_config=LlamaConfig(
            hidden_size=th, intermediate_size=ti, num_hidden_layers=tl, num_attention_heads=tn,
            num_key_value_heads=tn, vocab_size=VOCAB,
        ),
        image_token_index=VOCAB - 1,
        image_seq_length=n_image,
    )  # fmt: skip
    with torch.device(device):
        model = LlavaForConditionalGeneration(cfg).to(dtype).eval()
    return model, n_image


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str, repeats: int) -> float:
    """Median seconds of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--slow-tokens", type=int, default=32, help="tokens for the slow paths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bandwidth", type=float, default=4.8e12, help="bytes/s (H200: 4.8e12)")
    parser.add_argument(
        "--ops-layers", type=int, default=None,
        help="count operators per step on a tiny-width model with this many decoder layers",
    )  # fmt: skip
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()  # stop id -1 (never stop) makes HF warn each call
    dtype = getattr(torch, args.dtype)
    dev = args.device
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model, n_image = build(args.shape, dev, dtype)
    build_s = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(0)
    prompt = torch.cat(
        [
            torch.tensor([1]),
            torch.randint(3, 30000, (40,), generator=gen),
            torch.full((n_image,), VOCAB - 1),
            torch.randint(3, 30000, (25,), generator=gen),
        ]
    )
    pv = torch.randn(1, 3, 224, 224, generator=gen)
    lm_bytes = sum(
        p.numel() * p.element_size() for n, p in model.named_parameters() if "vision" not in n
    )
    on_gpu = dev.startswith("cuda")
    name = torch.cuda.get_device_name() if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"device: {name} ({os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.2f})  "
        f"torch {torch.__version__}  transformers {transformers.__version__}"
    )
    print(
        f"shape {args.shape} {args.dtype}: LM weights {lm_bytes / 1e9:.2f} GB (built in "
        f"{build_s:.1f} s); prompt {prompt.numel()} tokens ({n_image} image)"
    )
    if on_gpu:
        print(f"bandwidth limit: {args.bandwidth / lm_bytes:.1f} tokens/s")

    def own(
        n: int, graphs: bool, fused: bool | str | None = None, on_token: Any = None
    ) -> Generation:
        out = generate(
            model, [prompt], pv, stop_token_ids=[-1], max_new_tokens=n, cuda_graphs=graphs,
            fused_kernels=fused, banned_token_ids=[VOCAB - 1], on_token=on_token,
        )  # fmt: skip
        return out[0]

    def hf(n: int) -> None:
        model.generate(
            input_ids=prompt[None].to(dev), pixel_values=pv.to(dev, dtype), max_new_tokens=n,
            min_new_tokens=n, do_sample=False, num_beams=1,
        )  # fmt: skip

    def row(label: str, seconds: float, n: int, extra: str = "") -> None:
        print(f"{label:<52} {seconds * 1e3:8.1f} ms  {n / seconds:7.1f} tokens/s  {extra}")

    n, slow = args.new_tokens, args.slow_tokens
    kept: dict[str, Generation] = {}
    paths: list[tuple[str, bool | str | None]] = [("own loop, eager steps, dynamic cache", None)]
    if on_gpu:
        paths = [("own loop, CUDA graph, default kernels", None)]
        if decoder_kernels("liger") is not None:  # else the default is the compiled set
            paths.append(("own loop, CUDA graph, compiled kernels", "compiled"))
        paths.append(("own loop, CUDA graph, plain kernels", False))
    for label, fused in paths:
        if on_gpu:
            t0 = time.perf_counter()
            own(n, True, fused)
            sync(dev)
            slot = model.__dict__.get(DecoderSlot.ATTRIBUTE)
            kernels = (
                slot.decoder.kernels if isinstance(slot, DecoderSlot) and slot.decoder else None
            )
            used = "none" if kernels is None else kernels.name
            print(f"{label}: first call (prefill, kernel compile, capture, {n} tokens) "
                  f"{time.perf_counter() - t0:.2f} s; fused kernels in use: {used}")  # fmt: skip
        t_n = timed(lambda f=fused: own(n, on_gpu, f), dev, args.repeats)
        t_one = timed(lambda f=fused: own(1, on_gpu, f), dev, args.repeats)
        step = (t_n - t_one) / (n - 1)
        row(f"{label}, {n} tokens", t_n, n,
            f"(decode step {step * 1e3:.2f} ms = {1 / step:.1f} tok/s)")  # fmt: skip
        kept[label] = own(slow, on_gpu, fused)
        kept[label + " (again)"] = own(slow, on_gpu, fused)
        if fused is None:
            t_stream = timed(lambda: own(n, on_gpu, None, lambda t: None), dev, 1)
            row(f"{label} + on_token stream, {n} tokens", t_stream, n)
    slow_repeats = max(1, args.repeats - 1)

    def slow_row(label: str, fn: Callable[[int], Any]) -> None:
        """``fn(slow)`` timed, and the decoding step alone (less ``fn(1)``)."""
        t_slow = timed(lambda: fn(slow), dev, slow_repeats)
        t_one = timed(lambda: fn(1), dev, slow_repeats)
        step = (t_slow - t_one) / (slow - 1)
        row(f"{label}, {slow} tokens", t_slow, slow,
            f"(decode step {step * 1e3:.2f} ms = {1 / step:.1f} tok/s)")  # fmt: skip

    if on_gpu:  # eager steps over a dynamic cache (plain kernels, as HF's)
        slow_row("own loop, eager steps, dynamic cache", lambda k: own(k, False, False))
        kept["eager steps"] = own(slow, False, False)
    else:  # the static decoder's steps, run eagerly: what its CUDA graph would replay
        slow_row("own loop, static-cache steps (eager)", lambda k: own(k, True, None))
        kept["static-cache steps"] = own(slow, True, None)
    slow_row("HF generate (dynamic cache)", hf)
    print_ops(args, model, prompt, pv, n_image)
    names = list(kept)
    print(f"agreement over {slow} new tokens (same tokens; max |hidden difference| / max |hidden| "
          "over the prompt and the common prefix):")  # fmt: skip
    for other in names[1:]:
        a, b = kept[names[0]], kept[other]
        same = 0
        while same < slow and int(a.new_tokens[same]) == int(b.new_tokens[same]):
            same += 1
        assert a.hidden is not None and b.hidden is not None
        k = a.prompt_length + same
        diff = float((a.hidden[:k].float() - b.hidden[:k].float()).abs().max())
        scale = float(a.hidden[:k].float().abs().max())
        print(f"  {names[0]} vs {other}: {same}/{slow} tokens, {diff / scale:.1e}")
    if on_gpu:
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def print_ops(
    args: argparse.Namespace,
    model: LlavaForConditionalGeneration,
    prompt: torch.Tensor,
    pv: torch.Tensor,
    n_image: int,
) -> None:
    """Operators per decoding step of each path without a graph (plain kernels)."""
    dev = args.device
    if args.ops_layers is not None:
        model, n_image = build("tiny", dev, getattr(torch, args.dtype), args.ops_layers)
        prompt = torch.cat([prompt[prompt != VOCAB - 1], torch.full((n_image,), VOCAB - 1)])
    layers = model.config.text_config.num_hidden_layers
    dtype = next(model.parameters()).dtype

    def own(graphs: bool) -> Callable[[int], Any]:
        return lambda k: generate(
            model, [prompt], pv, stop_token_ids=[-1], max_new_tokens=k, cuda_graphs=graphs,
            fused_kernels=False, banned_token_ids=[VOCAB - 1],
        )  # fmt: skip

    def hf(k: int) -> None:
        model.generate(
            input_ids=prompt[None].to(dev), pixel_values=pv.to(dev, dtype), max_new_tokens=k,
            min_new_tokens=k, do_sample=False, num_beams=1,
        )  # fmt: skip

    counts: list[tuple[str, StepOps]] = [("own loop, eager steps", ops_per_step(own(False)))]
    if not dev.startswith("cuda"):  # on a GPU these steps are a graph replay: no operators
        counts.append(("own loop, static-cache steps (eager)", ops_per_step(own(True))))
    counts.append(("HF generate", ops_per_step(hf)))
    print(f"operators per decoding step ({layers} decoder layers, plain kernels; "
          "non-views = kernel launches on a GPU):")  # fmt: skip
    for label, ops in counts:
        print(f"  {label:<40} {ops.kernels:7.1f} non-view  {ops.total:7.1f} in all")
    print("  most frequent in the eager step: "
          + ", ".join(f"{name.removeprefix('aten.')} {c:.0f}" for name, c in counts[0][1].top))  # fmt: skip


if __name__ == "__main__":
    main()
