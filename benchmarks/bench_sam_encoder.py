"""SAM image-encoder speed: transformers' attention (eager, SDPA) against the flash path.

Builds a random SAM image encoder of the chosen shape (``tiny``: the test config's ViT;
``7b`` / ``13b``: ViT-H at 1024 px, as every real family uses) and times a forward of ``--batch``
images per variant, after warm-up:

* ``hf-eager``: transformers' ``SamVisionAttention`` (dense logits + bias, softmax in float32);
* ``hf-sdpa``: transformers' ``SamVisionSdpaAttention`` (SDPA with a dense additive bias);
* ``flash``: :class:`~partonomy.models.backbones.sam_fast.FlashRelPosAttention` (relative
  positions folded into the dot product, no bias: the flash kernel);
* ``flash+compile``: the same with every block compiled (``--compile``; first-call cost printed).

Every variant's output is compared with ``hf-eager`` (max abs difference, relative to the
output's largest magnitude). The variants share one set of weights.

Usage::

    .venv/bin/python benchmarks/bench_sam_encoder.py                               # tiny, CPU
    python benchmarks/bench_sam_encoder.py --shape 13b --device cuda --dtype bfloat16 --compile
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
import transformers
from transformers.models.sam import modeling_sam

from partonomy.models.backbones.sam import SamConfig, build_sam
from partonomy.models.backbones.sam_fast import FlashRelPosAttention, compile_blocks

SAM_H = {"image_size": 1024, "vision_hidden": 1280, "vision_layers": 32, "vision_heads": 16,
         "patch_size": 16, "decoder_hidden": 256}  # fmt: skip
SHAPES = {"tiny": {}, "7b": SAM_H, "13b": SAM_H}


def set_attention(encoder: torch.nn.Module, kind: str) -> None:
    """Give every block the attention ``kind`` over its current parameters."""
    for layer in encoder.layers:  # type: ignore[union-attr]
        attn = layer.attn
        if kind == "flash":
            if not isinstance(attn, FlashRelPosAttention):
                layer.attn = FlashRelPosAttention(attn)
            continue
        if isinstance(attn, FlashRelPosAttention):  # back to an HF module over the same weights
            hf = modeling_sam.SamVisionAttention.__new__(modeling_sam.SamVisionAttention)
            torch.nn.Module.__init__(hf)
            hf.qkv, hf.proj = attn.qkv, attn.proj
            hf.num_attention_heads, hf.scale = attn.num_attention_heads, attn.scale
            hf.dropout, hf.use_rel_pos = 0.0, attn.use_rel_pos
            if attn.use_rel_pos:
                hf.rel_pos_h, hf.rel_pos_w = attn.rel_pos_h, attn.rel_pos_w
            attn = layer.attn = hf
        attn.__class__ = (
            modeling_sam.SamVisionAttention
            if kind == "eager"
            else modeling_sam.SamVisionSdpaAttention
        )


def timed(fn: Callable[[], torch.Tensor], device: torch.device, iters: int) -> float:
    """Seconds per call (mean of ``iters`` after two warm-up calls)."""
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also time flash+compile")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    torch.manual_seed(0)
    with device:
        sam = build_sam(SamConfig(**SHAPES[args.shape], encoder_attention="hf"))  # type: ignore[arg-type]
    encoder = sam.vision_encoder.to(device=device, dtype=dtype).eval()
    with torch.no_grad():  # random weights of unit-scale activations (HF's init zeros some)
        for pname, p in encoder.named_parameters():
            if "rel_pos" in pname:
                p.normal_(0, 0.1)
            elif p.dim() >= 2:
                p.normal_(0, p[0].numel() ** -0.5)
            else:
                p.normal_(1.0 if "weight" in pname else 0.0, 0.02)
    side = encoder.config.image_size
    pixels = torch.randn(args.batch, 3, side, side, device=device, dtype=dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name} ({os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.2f})  "
        f"torch {torch.__version__}  transformers {transformers.__version__}"
    )
    params = sum(p.numel() for p in encoder.parameters()) / 1e6
    print(
        f"SAM image encoder shape={args.shape} ({params:.0f}M params, {side} px), "
        f"dtype={args.dtype}, batch {args.batch}"
    )

    def run() -> torch.Tensor:
        with torch.no_grad():
            return encoder(pixels)[0]  # type: ignore[no-any-return]

    reference = None
    base = None
    variants = ["eager", "sdpa", "flash"] + (["flash+compile"] if args.compile else [])
    for kind in variants:
        set_attention(encoder, kind.split("+")[0])
        extra = ""
        if kind.endswith("+compile"):
            compile_blocks(encoder)
            t = time.perf_counter()
            try:
                run()
            except Exception as err:  # report and go on: the other numbers stand
                print(f"{kind}: compile failed: {type(err).__name__}: {err}"[:400])
                break
            if device.type == "cuda":
                torch.cuda.synchronize()
            extra = f"  (first call incl. compile {time.perf_counter() - t:.1f} s)"
        seconds = timed(run, device, args.iters)
        out = run().float()
        if reference is None:
            reference = out
        diff = (out - reference).abs().max().item() / reference.abs().max().item()
        rate = args.batch / seconds
        base = base or rate
        label = "hf-" + kind if kind in ("eager", "sdpa") else kind
        print(
            f"{label:14s} {seconds * 1e3:8.1f} ms/batch  {rate:7.1f} img/s  {rate / base:5.2f}x  "
            f"max|diff| vs hf-eager {diff:.1e} (relative){extra}"
        )
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
