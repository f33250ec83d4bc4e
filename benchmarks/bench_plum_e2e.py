"""End-to-end benchmark evaluation speed: ``SegPredictor.predict`` on PARTONOMY questions.

What ``partonomy eval --model plum`` does per question: encode the 5 answer choices (CPU), score
them with the shared prefix, run SAM's image encoder on the (cold, never seen) image, and decode the
masks of the correct answer's parts. A random-weight model of the chosen shape answers ``--n``
questions built from the test fixture's records (their questions, choices and part names), each
with a fresh random ``480 x 640`` image, ``--batch`` questions per ``predict`` call. The first batch
is a warm-up and is not timed.

Usage::

    .venv/bin/python benchmarks/bench_plum_e2e.py                                  # tiny, CPU
    python benchmarks/bench_plum_e2e.py --shape 13b --device cuda --dtype bfloat16 --batch 16

Shapes: ``tiny`` (the test config), ``7b`` (LLaMA-7B + CLIP ViT-L/14 at 224 + SAM ViT-H) and
``13b`` (LLaMA-2-13B: 5120-d / 40 layers, same vision and SAM). ``--family`` picks another family
(``lisa``, ``glamm``) with the same backbones.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from partonomy.config import from_dict
from partonomy.eval.protocol import EvalItem
from partonomy.io.qa_pairs import load_qa_pairs
from partonomy.models.core.family import get_family
from partonomy.models.core.predictor import SegPredictor

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qa" / "tiny_qa.json"
VISION_7B = {"vision_hidden": 1024, "vision_layers": 24, "vision_heads": 16, "image_size": 224,
             "patch_size": 14}  # fmt: skip
SAM_H = {"image_size": 1024, "vision_hidden": 1280, "vision_layers": 32, "vision_heads": 16,
         "patch_size": 16, "decoder_hidden": 256}  # fmt: skip
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {},
    "7b": {"llava": {"text_hidden": 4096, "text_layers": 32, "text_heads": 32,
                     "text_intermediate": 11008, **VISION_7B}, "sam": SAM_H},
    "13b": {"llava": {"text_hidden": 5120, "text_layers": 40, "text_heads": 40,
                      "text_intermediate": 13824, **VISION_7B}, "sam": SAM_H},
}  # fmt: skip
PLUM_HEADS = {"bidir_heads": 8, "bidir_ff": 2048, "bidir_dropout": 0.0, "feedback_heads": 8}


def model_config(family: str, shape: str) -> Any:
    spec = get_family(family)
    if shape == "tiny":
        return spec.preset("tiny")
    overrides = dict(SHAPES[shape])
    if family == "plum":
        overrides |= PLUM_HEADS
    return from_dict(spec.config_type, overrides)


def items(n: int, seed: int = 0) -> list[EvalItem]:
    records = load_qa_pairs(FIXTURE)
    rng = np.random.default_rng(seed)
    return [
        EvalItem(records[k % len(records)], rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
        for k in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="plum")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--n", type=int, default=48, help="questions timed (after one warm-up batch)"
    )
    parser.add_argument("--batch", type=int, default=8, help="questions per predict call")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    family = get_family(args.family)
    t = time.perf_counter()
    with device:  # build the random weights where they will run
        model, processor = family.build(model_config(args.family, args.shape))
    model = model.to(device=device, dtype=dtype).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    build_s = time.perf_counter() - t
    predictor = SegPredictor(model, processor, batch_size=args.batch)
    n_params = sum(p.numel() for p in model.parameters())
    predictor.predict(items(args.batch, seed=1))  # warm-up: kernels, allocator, caches
    questions = items(args.n, seed=2)  # other images: every one is cold
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    answers = predictor.predict(questions)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    masks = sum(len(a.masks or {}) for a in answers)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name} ({os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.2f})  "
        f"torch {torch.__version__}  transformers {transformers.__version__}"
    )
    print(
        f"family={args.family} shape={args.shape} dtype={args.dtype} params={n_params / 1e9:.2f}B "
        f"(built in {build_s:.1f} s)"
    )
    print(
        f"{args.n} questions (cold 480x640 images, 5 choices, {masks} masks), batch {args.batch}: "
        f"{seconds:.2f} s, {args.n / seconds:.2f} questions/s"
    )
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
