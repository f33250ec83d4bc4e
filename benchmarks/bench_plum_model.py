"""PLUM model speed: one training step (forward + losses + backward) and the teacher-forced mask pass.

A random-weight PLUM of a chosen shape runs on synthetic conversations laid out like stage-2
training (an Identification answer naming ``--parts`` parts, each with a mask):

* ``train step``: ``model(batch)`` + ``plum_loss`` + ``backward`` with PLUM's trainable set
  approximated (LLaMA q/v projections as a stand-in for LoRA's gradient path, ``lm_head``, SAM
  prompt encoder and mask decoder, span extractor, span query, feedback pooler; CLIP, projector and
  SAM's image encoder frozen).
* ``segmentation``: the span -> mask stage alone, with the k-th spans of all conversations in one
  decoder call vs one conversation at a time.
* ``mask pass``: inference-mode forward of 5 answer choices of one image (the benchmark's
  teacher-forced masks), where the image is shared by key: SAM's encoder runs once for the 5
  conversations. The same 5 conversations with unshared images are timed for comparison.

Usage::

    .venv/bin/python benchmarks/bench_plum_model.py                       # tiny, CPU
    python benchmarks/bench_plum_model.py --shape 7b --device cuda --dtype bfloat16 --tokenizer DIR

Shapes: ``tiny`` (the test config) and ``7b`` (LLaMA-7B 4096-d/32L + CLIP ViT-L/14 at 224 ->
256 image tokens; SAM ViT-H at 1024 px: 1280-d/32L, window 14, global 7/15/23/31, D_sam 256).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from partonomy.models.plum.builders import build_plum, tiny_config
from partonomy.models.plum.losses import plum_loss

SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {},
    "7b": {
        "llava": {"text_hidden": 4096, "text_layers": 32, "text_heads": 32, "text_intermediate": 11008,
                  "vision_hidden": 1024, "vision_layers": 24, "vision_heads": 16, "image_size": 224,
                  "patch_size": 14},
        "sam": {"image_size": 1024, "vision_hidden": 1280, "vision_layers": 32, "vision_heads": 16,
                "patch_size": 16, "decoder_hidden": 256},
        "bidir_heads": 8, "bidir_ff": 2048, "bidir_dropout": 0.1, "feedback_heads": 8,
    },
}  # fmt: skip
PARTS = [
    "cockpit",
    "front wheel",
    "propeller",
    "tail",
    "wing",
    "spraying rig",
    "fuel tank",
    "rudder",
]
TRAINABLE = (
    "q_proj",
    "v_proj",
    "lm_head",
    "sam.prompt_encoder",
    "sam.mask_decoder",
    "span_",
    "feedback",
)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls after one warm-up, and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def conversation(
    processor: Any, rng: np.random.Generator, n_parts: int, image: np.ndarray, key: Any
) -> Any:
    parts = sorted(rng.choice(PARTS, size=n_parts, replace=False).tolist())
    answer = "The agricultural airplane in the image has the following visible parts: "
    answer += ", ".join(parts[:-1]) + f", and {parts[-1]}." if n_parts > 1 else parts[0] + "."
    h, w = image.shape[:2]
    masks = {p: (rng.random((h, w)) > 0.5).astype(np.uint8) for p in parts}
    question = "What visible parts does the agricultural airplane in the image have?"
    return processor.encode(image, [], question, answer, masks, image_key=key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--tokenizer", default="llama", help="llava.tokenizer value")
    parser.add_argument(
        "--batch", type=int, default=6, help="training conversations (one image each)"
    )
    parser.add_argument("--parts", type=int, default=4, help="parts (masks) per answer")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    shape = dict(SHAPES[args.shape])
    llava = dict(shape.pop("llava", {}), tokenizer=args.tokenizer, dtype=args.dtype)
    sam = dict(shape.pop("sam", {}), dtype=args.dtype)
    start = time.perf_counter()
    with device:  # build the random weights where they will run
        model, processor = build_plum(tiny_config(llava=llava, sam=sam, **shape))
    build_s = time.perf_counter() - start
    for name, p in model.named_parameters():
        p.requires_grad_(any(t in name for t in TRAINABLE))
    n_all = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(args.batch)]
    train = processor.collate([conversation(processor, rng, args.parts, im, None) for im in images])
    train = train.to(device, dtype=model.llava.dtype)
    tokens = int(train.attention_mask.sum())

    def step() -> float:
        model.zero_grad(set_to_none=True)
        loss = plum_loss(model(train), train)
        loss.total.backward()
        return float(loss.total.detach())

    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step_s, loss = timed(step, device, args.repeats)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    model.eval()
    model.zero_grad(set_to_none=True)
    key = object()
    choices = [conversation(processor, rng, args.parts, images[0], key) for _ in range(5)]
    shared = processor.collate(choices).to(device, dtype=model.llava.dtype)
    for c in choices:
        c.image_key = None
    unshared = processor.collate(choices).to(device, dtype=model.llava.dtype)
    with torch.inference_mode():
        shared_s, _ = timed(lambda: model(shared), device, args.repeats)
        unshared_s, _ = timed(lambda: model(unshared), device, args.repeats)
        enc1_s, _ = timed(
            lambda: model.image_embeddings(shared.sam_pixel_values), device, args.repeats
        )
        enc5_s, _ = timed(
            lambda: model.image_embeddings(unshared.sam_pixel_values), device, args.repeats
        )
        emb = model.image_embeddings(train.sam_pixel_values)
        hidden, _ = model.language_model(train.input_ids, train.attention_mask, train.pixel_values)
        per_conv = [emb[int(i)] for i in train.image_index]
        sizes = (train.original_sizes, train.sam_input_sizes)
        batched_s, _ = timed(
            lambda: model.segment_batch(hidden, train.spans, per_conv, *sizes), device, args.repeats
        )
        looped_s, _ = timed(
            lambda: [
                model.segment_spans(
                    hidden[b], train.spans[b], per_conv[b], sizes[0][b], sizes[1][b]
                )
                for b in range(len(train))
            ],
            device,
            args.repeats,
        )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}  torch {torch.__version__}  shape={args.shape} dtype={args.dtype}")
    print(
        f"params: {n_all / 1e6:.1f}M total, {n_train / 1e6:.1f}M trainable   build {build_s:.1f}s"
    )
    print(f"train step (B={args.batch} conversations, {args.parts} masks each, {tokens} tokens): "
          f"{step_s * 1e3:.1f} ms  ({tokens / step_s:.0f} tok/s, {args.batch * args.parts / step_s:.1f} masks/s, "
          f"loss {loss:.3f}, peak {peak:.1f} GiB)")  # fmt: skip
    print(f"mask pass, 5 choices x {args.parts} masks of one image: shared image {shared_s * 1e3:.1f} ms, "
          f"unshared {unshared_s * 1e3:.1f} ms  (SAM encoder: 1 image {enc1_s * 1e3:.1f} ms, "
          f"5 images {enc5_s * 1e3:.1f} ms)")  # fmt: skip
    print(f"segmentation of the training batch ({args.batch} x {args.parts} spans, feedback on, no grad): "
          f"k-th spans batched {batched_s * 1e3:.1f} ms, "
          f"one conversation at a time {looped_s * 1e3:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
