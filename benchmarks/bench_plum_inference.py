"""PLUM inference speed: answer-choice scoring with a shared prefix vs one forward per choice,
and KV-cached vs recomputing greedy generation.

A random-weight LLaVA of a chosen shape scores synthetic questions laid out like the benchmark's:
BOS, the LLaVA v1 system prompt (~40 tokens), the image tokens, a question, ``ASSISTANT:``, then 5
answers of 15-40 tokens. Both scorers must agree (the max |difference| is printed).

Usage::

    .venv/bin/python benchmarks/bench_plum_inference.py                    # "small" on CPU
    python benchmarks/bench_plum_inference.py --device cuda --dtype bfloat16 --shape 7b

Shapes: ``small`` (CLIP 384-d/6L at 224 -> 196 image tokens, LLaMA 512-d/4L, vocab 32k) and
``7b`` (CLIP ViT-L/14 at 224 -> 256 image tokens, LLaMA-7B: 4096-d/32L, vocab 32k).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import transformers
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from partonomy.models.core.generation import generate
from partonomy.models.core.scoring import ChoiceGroup, score_groups, score_groups_full

VOCAB = 32002
SHAPES = {
    "small": dict(
        v_hidden=384,
        v_layers=6,
        v_heads=6,
        patch=16,
        t_hidden=512,
        t_layers=4,
        t_heads=8,
        t_inter=1376,
    ),
    "7b": dict(
        v_hidden=1024,
        v_layers=24,
        v_heads=16,
        patch=14,
        t_hidden=4096,
        t_layers=32,
        t_heads=32,
        t_inter=11008,
    ),
}


def build(shape: str, device: str, dtype: torch.dtype) -> tuple[LlavaForConditionalGeneration, int]:
    s = SHAPES[shape]
    n_image = (224 // s["patch"]) ** 2
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=s["v_hidden"],
            intermediate_size=4 * s["v_hidden"],
            num_hidden_layers=s["v_layers"],
            num_attention_heads=s["v_heads"],
            image_size=224,
            patch_size=s["patch"],
        ),
        text_config=LlamaConfig(
            hidden_size=s["t_hidden"],
            intermediate_size=s["t_inter"],
            num_hidden_layers=s["t_layers"],
            num_attention_heads=s["t_heads"],
            num_key_value_heads=s["t_heads"],
            vocab_size=VOCAB,
        ),
        image_token_index=VOCAB - 1,
        image_seq_length=n_image,
    )
    with torch.device(device):
        model = LlavaForConditionalGeneration(cfg).to(dtype).eval()
    return model, n_image


def questions(n: int, n_image: int, gen: torch.Generator) -> list[ChoiceGroup]:
    groups = []
    for _ in range(n):
        prefix = torch.cat(
            [
                torch.tensor([1]),
                torch.randint(3, 30000, (40,), generator=gen),
                torch.full((n_image,), VOCAB - 1),
                torch.randint(3, 30000, (25,), generator=gen),
            ]
        )
        ids, scored, answer = [], [], []
        for _k in range(5):
            n_ans = int(torch.randint(15, 41, (1,), generator=gen))
            seq = torch.cat(
                [prefix, torch.randint(3, 30000, (n_ans,), generator=gen), torch.tensor([2])]
            )
            ids.append(seq)
            scored.append(seq != VOCAB - 1)
            mask = torch.zeros_like(seq, dtype=torch.bool)
            mask[prefix.numel() :] = True
            answer.append(mask)
        groups.append(
            ChoiceGroup(ids, scored, answer, torch.randn(3, 224, 224, generator=gen), keep_hidden=0)
        )
    return groups


def timed(fn: Callable[[], object], device: str, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def row(label: str, seconds: float, count: int, unit: str) -> None:
    print(f"{label:<56} {seconds * 1e3:10.1f} ms  {count / seconds:9.2f} {unit}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--shape", default="small", choices=sorted(SHAPES))
    parser.add_argument(
        "--questions", type=int, default=8, help="questions scored per call (a batch)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32, help="generation length (0 = skip)")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()  # stop id -1 (never stop) makes HF warn each call
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model, n_image = build(args.shape, args.device, dtype)
    groups = questions(args.questions, n_image, torch.Generator().manual_seed(0))
    n_tokens = sum(int(s.numel()) for g in groups for s in g.input_ids)
    name = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"device: {name}; torch {torch.__version__}; shape {args.shape}; dtype {args.dtype}")
    print(
        f"{args.questions} questions x 5 choices, {n_image} image tokens, {n_tokens} tokens in all"
    )

    full = score_groups_full(model, groups)
    t_full = timed(lambda: score_groups_full(model, groups), args.device, args.repeats)
    row("choice scoring, per-choice full forwards", t_full, args.questions, "questions")
    for layout in ("expand", "packed"):
        shared = score_groups(model, groups, image_token_id=VOCAB - 1, layout=layout)
        diff = max(
            float((a.conversation - b.conversation).abs().max())
            for a, b in zip(shared, full, strict=True)
        )
        t_shared = timed(
            lambda layout=layout: score_groups(
                model, groups, image_token_id=VOCAB - 1, layout=layout
            ),
            args.device,
            args.repeats,
        )
        row(
            f"choice scoring, shared prefix, {layout} layout", t_shared, args.questions, "questions"
        )
        print(f"  speed-up {t_full / t_shared:.2f}x, max |score difference| {diff:.2e}")

    if args.new_tokens > 0:
        ids0 = groups[0].input_ids[0]
        prompt = [ids0[: ids0.numel() - int(groups[0].answer[0].sum())]]
        pv = groups[0].pixel_values[None]
        n = args.new_tokens

        def run(cache: bool) -> None:
            generate(model, prompt, pv, stop_token_ids=[-1], max_new_tokens=n, use_cache=cache)

        t_cached = timed(lambda: run(True), args.device, args.repeats)
        t_plain = timed(lambda: run(False), args.device, max(1, args.repeats // 2))
        row(f"generation of {n} tokens, batch 1, recompute every step", t_plain, n, "tokens")
        row(f"generation of {n} tokens, batch 1, KV cache", t_cached, n, "tokens")
        print(f"  speed-up {t_plain / t_cached:.2f}x")

        if args.device.startswith("cuda"):
            t0 = time.perf_counter()
            generate(model, prompt, pv, stop_token_ids=[-1], max_new_tokens=n, static_cache=True)
            print(f"  static cache: first call (compiles) {time.perf_counter() - t0:.1f} s")
            t_static = timed(
                lambda: generate(
                    model, prompt, pv, stop_token_ids=[-1], max_new_tokens=n, static_cache=True
                ),
                args.device,
                args.repeats,
            )
            row(
                f"generation of {n} tokens, batch 1, static cache + CUDA graphs",
                t_static,
                n,
                "tokens",
            )

        def hf_generate() -> None:
            model.generate(
                input_ids=prompt[0][None].to(args.device),
                pixel_values=pv.to(args.device, dtype),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
            )

        row(
            f"(for reference) HF generate of {n} tokens, batch 1",
            timed(hf_generate, args.device, args.repeats),
            n,
            "tokens",
        )


if __name__ == "__main__":
    main()
