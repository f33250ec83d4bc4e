"""End-to-end benchmark evaluation speed: ``SegPredictor.predict`` on PARTONOMY questions.

What ``partonomy eval --model plum`` does per question: encode the 5 answer choices (CPU), score
them with the shared prefix, run SAM's image encoder on the (cold, never seen) image, and decode the
masks of the correct answer's parts. A random-weight model of the chosen shape answers ``--n``
questions built from the test fixture's records (their questions, choices and part names), each
with a fresh random ``480 x 640`` image, ``--batch`` questions per ``predict`` call. The first batch
is a warm-up and is not timed.

One invocation reports: the old path (``pipeline=False``, transformers' SDPA attention in SAM's
encoder) with its per-stage breakdown; the plain path with the flash SAM encoder; the pipelined
path (the default) at ``--batch`` and ``--big-batch``; optionally with ``compile_encoder``; how far
the paths' answers are apart; and ``run_eval`` (what ``partonomy eval`` runs) over PNG files.

Usage::

    .venv/bin/python benchmarks/bench_plum_e2e.py                                  # tiny, CPU
    python benchmarks/bench_plum_e2e.py --shape 13b --device cuda --dtype bfloat16 --batch 16

Shapes: ``tiny`` (the test config), ``7b`` (LLaMA-7B + CLIP ViT-L/14 at 224 + SAM ViT-H) and
``13b`` (LLaMA-2-13B: 5120-d / 40 layers, same vision and SAM). ``--family`` picks another family
(``lisa``, ``glamm``) with the same backbones.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image

from partonomy.config import from_dict
from partonomy.eval.harness import EvalConfig, run_eval, score_run
from partonomy.eval.metrics.conventions import DEFAULT_MATCHING, DEFAULT_MISSING
from partonomy.eval.protocol import EvalItem, ModelAnswer
from partonomy.eval.run_dir import PREDICTIONS_FILE, load_done
from partonomy.io.images import fit_masks_to_image
from partonomy.io.qa_pairs import load_qa_pairs
from partonomy.models.core.family import get_family
from partonomy.models.core.predictor import SegPredictor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sam_encoder import set_attention

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


def timed_predict(
    predictor: SegPredictor, questions: list[EvalItem], device: torch.device
) -> tuple[list[ModelAnswer], float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    answers = predictor.predict(questions)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return answers, time.perf_counter() - t


def stages(
    predictor: SegPredictor, questions: list[EvalItem], device: torch.device
) -> dict[str, float]:
    """Seconds per stage of the plain path over ``questions`` (synchronised after each stage)."""
    spent = dict.fromkeys(("cpu prepare", "sam encoder", "scoring", "masks"), 0.0)

    def sync() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    # compile_encoder=False: a compiled encoder (compiled in place by an earlier predictor) stays so
    plain = type(predictor)(predictor.model, predictor.processor, batch_size=predictor.batch_size,
                         pipeline=False, compile_encoder=False, scoring_kernels="off",
                         share_image_prefix=predictor.share_image_prefix)  # fmt: skip
    plain.kernels = predictor.kernels  # the same fused kernels (or none)
    for start in range(0, len(questions), plain.batch_size):
        t = sync()
        prep = plain._prepare(questions[start : start + plain.batch_size], None)
        t1 = sync()
        emb = plain._embed(prep.keys, prep.sam_inputs.__getitem__)
        t2 = sync()
        scores = plain._score(prep.groups)
        t3 = sync()
        plain._teacher_forced_masks(prep.correct, [scores[g].hidden for g in prep.part_group], emb)
        t4 = sync()
        for key, a, b in zip(spent, (t, t1, t2, t3), (t1, t2, t3, t4), strict=True):
            spent[key] += b - a
    return spent


def agreement(a: list[ModelAnswer], b: list[ModelAnswer]) -> str:
    """How far two runs' answers are apart: scores, chosen answers (with the first run's margin
    between the two answers of each flipped question: random weights give near ties), mask
    pixels."""
    score_diff = max(
        float(np.max(np.abs(np.subtract(x.choice_scores, y.choice_scores)))) for x, y in zip(a, b)
    )
    margins = []
    for x, y in zip(a, b):
        i, j = int(np.argmin(x.choice_scores)), int(np.argmin(y.choice_scores))
        if i != j:
            margins.append(abs(x.choice_scores[i] - x.choice_scores[j]))
    pixels = same = 0
    for x, y in zip(a, b):
        for part, mask in (x.masks or {}).items():
            other = (y.masks or {}).get(part)
            if other is not None:
                pixels += mask.size
                same += int((mask == other).sum())
    flipped = f" (margins {max(margins):.1e} at most)" if margins else ""
    return (
        f"max |score diff| {score_diff:.2e}, same chosen answer {len(a) - len(margins)}/{len(a)}"
        f"{flipped}, mask pixels equal {same / max(pixels, 1):.4%}"
    )


def fixture_at_image_size() -> list[dict[str, Any]]:
    """The fixture's records with their masks fitted to the benchmark's 480x640 images, as a real
    QA file's masks have their image's size (the harness would resize every record's masks)."""
    log = logging.getLogger("partonomy")
    level = log.level
    log.setLevel(logging.ERROR)  # each resized mask warns
    try:
        return [
            fit_masks_to_image(qa, (480, 640), file=FIXTURE, record=qa.question_id).to_dict()
            for qa in load_qa_pairs(FIXTURE)
        ]
    finally:
        log.setLevel(level)


def harness_run(predictor: SegPredictor, n: int, batch: int, seed: int) -> tuple[float, float, str]:
    """``partonomy eval``'s harness (``run_eval``) over ``n`` questions whose images are PNG files
    on disk (decoded cold by the harness); returns the run's seconds (reading the QA file and
    scoring included), its prediction seconds (first batch to last line written) and a note:

    how long scoring the run's predictions takes on its own and how long the
    predicted masks' RLE strings are against the ground truth's: masks of random weights are
    noise, whose many runs make RLE encoding and scoring far slower than a trained model's."""
    records = fixture_at_image_size()
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = []
        for k in range(n):
            rec = dict(records[k % len(records)], question_id=f"q{k}", image_path=f"img{k}.png")
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(
                root / f"img{k}.png", compress_level=1
            )
            out.append(rec)
        (root / "qa.json").write_text(json.dumps(out))
        cfg = EvalConfig(model=predictor.name, qa_file=str(root / "qa.json"), out=str(root / "run"),
                         batch_size=batch, progress=False)  # fmt: skip
        t = time.perf_counter()
        outcome = run_eval(cfg, model=predictor)
        seconds = time.perf_counter() - t
        fitted = load_qa_pairs(root / "qa.json")
        predictions = load_done(root / "run" / PREDICTIONS_FILE, {qa.question_id for qa in fitted})
        t = time.perf_counter()
        score_run(fitted, predictions, matching=DEFAULT_MATCHING, missing=DEFAULT_MISSING,
                  qa_file=root / "qa.json", predictions_file=root / "run" / PREDICTIONS_FILE)  # fmt: skip
        scoring = time.perf_counter() - t
        rle = [len(r["counts"]) for p in predictions.values() for r in (p.masks or {}).values()]
        truth = [len(r["counts"]) for qa in fitted for rs in qa.segmentations.values() for r in rs]
        note = (f"  (of which scoring alone {scoring:.2f} s; RLE chars per mask: predicted "
                f"{statistics.mean(rle or [0]):.0f}, ground truth {statistics.mean(truth):.0f})")  # fmt: skip
        return seconds, outcome.seconds, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="plum")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--n", type=int, default=48, help="questions timed (after one warm-up batch)"
    )
    parser.add_argument("--batch", type=int, default=16, help="questions per predict call")
    parser.add_argument(
        "--big-batch", type=int, default=32, help="also time the pipeline at this batch (0: no)"
    )
    parser.add_argument("--compile", action="store_true", help="also time with compile_encoder")
    parser.add_argument("--no-harness", action="store_true", help="skip the run_eval timing")
    parser.add_argument(
        "--share-ab",
        action="store_true",
        help="only: pipeline (no compile) with and without image-prefix sharing, with stages",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the default path (pipeline, compiled encoder) and its scoring variants",
    )
    parser.add_argument("--repeats", type=int, default=2, help="--quick: timings per variant")
    parser.add_argument(
        "--variants",
        default=",".join(QUICK_VARIANTS),
        help="--quick: which scoring variants, in order (the first is the reference)",
    )
    parser.add_argument(
        "--steady", type=int, default=3, help="--quick: the default over this many x --n questions"
    )
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
    n_params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name} ({os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.2f})  "
        f"torch {torch.__version__}  transformers {transformers.__version__}"
    )
    print(
        f"family={args.family} shape={args.shape} dtype={args.dtype} params={n_params / 1e9:.2f}B "
        f"(built in {build_s:.1f} s); {args.n} questions, cold 480x640 images, 5 choices"
    )
    questions = items(args.n, seed=2)  # other images than the warm-up's: every one is cold
    encoder = model.mask_head.sam.vision_encoder

    def run(label: str, batch: int, **options: Any) -> list[ModelAnswer]:
        predictor = SegPredictor(model, processor, batch_size=batch, **options)
        predictor.predict(items(batch, seed=1))  # warm-up: kernels, allocator, caches, compile
        answers, seconds = timed_predict(predictor, questions, device)
        masks = sum(len(a.masks or {}) for a in answers)
        print(
            f"{label:44s} batch {batch:3d}: {seconds:6.2f} s  {args.n / seconds:6.2f} q/s  ({masks} masks)"
        )
        return answers

    set_attention(encoder, "sdpa")  # transformers' own attention: the old path
    if args.share_ab:
        share_ab(run, args, model, processor, device)
        return
    if args.quick:
        quick(run, args, model, processor, device)
        return
    before = run(
        "plain, hf-sdpa SAM (the old path)", args.batch, pipeline=False, compile_encoder=False
    )
    spent = stages(
        SegPredictor(model, processor, batch_size=args.batch, compile_encoder=False),
        questions,
        device,
    )
    print("  stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items()))
    set_attention(encoder, "flash")
    plain = run("plain, flash SAM", args.batch, pipeline=False, compile_encoder=False)
    spent = stages(
        SegPredictor(model, processor, batch_size=args.batch, compile_encoder=False),
        questions,
        device,
    )
    print("  stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items()))
    piped = run("pipeline, flash SAM", args.batch, pipeline=True, compile_encoder=False)
    print(f"  pipeline vs plain (flash): {agreement(plain, piped)}")
    print(f"  flash vs hf-sdpa (plain):  {agreement(before, plain)}")
    if args.big_batch:
        run("pipeline, flash SAM", args.big_batch, pipeline=True, compile_encoder=False)
    if not args.no_harness:
        predictor = SegPredictor(
            model, processor, batch_size=args.batch, pipeline=True, compile_encoder=False
        )
        predictor.predict(items(args.batch, seed=1))
        seconds, _, note = harness_run(predictor, args.n, args.batch, seed=3)
        print(
            f"{'run_eval (partonomy eval), PNGs on disk':44s} batch {args.batch:3d}: "
            f"{seconds:6.2f} s  {args.n / seconds:6.2f} q/s"
        )
        print(note)
    if args.compile:
        t = time.perf_counter()
        try:
            compiled = run(
                "pipeline, flash SAM, compile_encoder",
                args.batch,
                compile_encoder=True,
                pipeline=True,
            )
        except Exception as err:  # report and go on: the other numbers stand
            print(f"  compile_encoder failed: {type(err).__name__}: {err}"[:400])
        else:
            print(f"  (incl. warm-up/compile {time.perf_counter() - t:.1f} s in all)")
            print(f"  compiled vs plain: {agreement(plain, compiled)}")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def share_ab(run: Any, args: Any, model: Any, processor: Any, device: torch.device) -> None:
    """``--share-ab``: the pipelined path without the compiled encoder, with the part and object
    questions of one image sharing their image prefix (the default) and without."""
    questions = items(args.n, seed=2)
    for label, share in (("shared image prefix", True), ("unshared", False)):
        predictor = SegPredictor(model, processor, batch_size=args.batch, compile_encoder=False,
                                 share_image_prefix=share)  # fmt: skip
        predictor.predict(items(args.batch, seed=1))
        answers, seconds = timed_predict(predictor, questions, device)
        print(f"pipeline, no compile, {label:24s} batch {args.batch}: {seconds:6.2f} s  "
              f"{args.n / seconds:6.2f} q/s")  # fmt: skip
        spent = stages(predictor, questions, device)
        print("  stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items()))
        if share:
            shared = answers
        else:
            print(f"  shared vs unshared: {agreement(shared, answers)}")


QUICK_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "before": ("before: unshared prefix, plain kernels", {"share_image_prefix": False, "scoring_kernels": "off"}),
    "shared": ("shared image prefix, plain kernels", {"share_image_prefix": True, "scoring_kernels": "off"}),
    "compiled": ("unshared prefix, compiled kernels", {"share_image_prefix": False, "scoring_kernels": "compiled"}),
    "shared+compiled": ("shared image prefix, compiled kernels",
                        {"share_image_prefix": True, "scoring_kernels": "compiled"}),
    "default": ("default (SegPredictor's defaults)", {}),
}  # fmt: skip
"""``--quick``'s scoring variants, each on the default path otherwise (pipeline, flash SAM encoder
compiled): the first is the default before issue 12's last evaluation work."""


def quick(run: Any, args: Any, model: Any, processor: Any, device: torch.device) -> None:
    """``--quick``: the default path (what ``partonomy eval --model plum`` builds on a GPU) and its
    scoring variants (:data:`QUICK_VARIANTS`, each timed ``--repeats`` times), how far their
    answers are from the first's, the default's stages, ``run_eval`` over PNG files, and the
    default over ``--steady`` x ``--n`` questions in one call (the pipeline's start amortised),
    and ``run_eval`` over as many (unless ``--no-harness``)."""
    from partonomy.models.core.scoring_kernels import liger_kernels

    set_attention(model.mask_head.sam.vision_encoder, "flash")  # the builder's default
    questions = items(args.n, seed=2)
    answers: dict[str, list[ModelAnswer]] = {}
    t = time.perf_counter()
    print(f"liger-kernel installed: {liger_kernels() is not None}")
    for key in args.variants.split(","):
        label, options = QUICK_VARIANTS[key]
        predictor = SegPredictor(model, processor, batch_size=args.batch, **options)
        predictor.predict(items(args.batch, seed=1))  # warm-up: kernels, allocator, compile
        if not answers:
            print(f"  (first warm-up incl. SAM encoder compile {time.perf_counter() - t:.1f} s)")
        kernels = predictor.kernels.name if predictor.kernels else "none"
        for _ in range(args.repeats):
            got, seconds = timed_predict(predictor, questions, device)
            print(f"{label:40s} batch {args.batch}: {seconds:5.2f} s {args.n / seconds:6.2f} q/s  "
                  f"(share {predictor.share_image_prefix}, kernels {kernels})")  # fmt: skip
        answers[label] = got
    first, *rest = answers
    for label in rest:
        print(f"  {label} vs before: {agreement(answers[first], answers[label])}")
    predictor = SegPredictor(model, processor, batch_size=args.batch)
    spent = stages(predictor, questions, device)
    print("  stages (default): " + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items()))
    predictor.predict(items(args.batch, seed=1))
    for _ in range(args.repeats):
        seconds, predicting, note = harness_run(predictor, args.n, args.batch, seed=3)
        print(
            f"{'run_eval (partonomy eval), PNGs on disk':40s} batch {args.batch}: {seconds:5.2f} s "
            f"{args.n / seconds:6.2f} q/s  (prediction alone {predicting:.2f} s, "
            f"{args.n / predicting:.2f} q/s)"
        )
        print(note)
    if args.big_batch:
        big = SegPredictor(model, processor, batch_size=args.big_batch)
        big.predict(items(args.big_batch, seed=1))
        _, seconds = timed_predict(big, questions, device)
        print(
            f"{'default':40s} batch {args.big_batch}: {seconds:5.2f} s {args.n / seconds:6.2f} q/s"
        )
    many = items(args.n * args.steady, seed=4)
    _, seconds = timed_predict(predictor, many, device)
    print(f"{'default, steady state':40s} batch {args.batch}: {seconds:5.2f} s "
          f"{len(many) / seconds:6.2f} q/s  ({len(many)} questions in one predict call)")  # fmt: skip
    if not args.no_harness:
        seconds, predicting, note = harness_run(predictor, len(many), args.batch, seed=5)
        print(
            f"{'run_eval, steady state':40s} batch {args.batch}: {seconds:5.2f} s "
            f"{len(many) / seconds:6.2f} q/s  ({len(many)} questions; prediction alone "
            f"{predicting:.2f} s, {len(many) / predicting:.2f} q/s)"
        )
        print(note)
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
