"""PLUM training speed: one optimiser step, on CPU with the tiny quickstart config, or at the 7B /
13B shape on a GPU with each speed choice measured.

``--shape tiny`` (CPU): a small Partonomy-Synth world is generated in a temporary directory, then
the recipe's own setup builds the model and data from ``configs/tiny_synth.yaml``; each timed step
is the recipe's forward -> plum_loss -> backward -> AdamW step, measured after warm-up (median of
``--steps``), and where a step's time goes (LM with its 32k-vocabulary head vs SAM's decoding).

``--shape 7b|13b`` (GPU): a random-weight PLUM of that shape (bf16 weights), real peft LoRA and the
trainable set of the family's recipe (``set_trainable``), and synthetic multi-turn conversations
of ~1k tokens (256 image tokens, 4 part masks each, ``--batch`` per step) with precomputed SAM
image embeddings (an embedding cache) in the batch. A step is the recipe's: ``model(batch,
lm_rows=...)`` -> the family's loss terms -> backward -> AdamW -> zero_grad. Each line changes one
choice against the ``recipe`` line and prints real (unpadded) tokens/s, ms/step and peak memory:
the SAM encoder run in the step (the issue-12 baseline also computes every logit row), logits of
every row, gradient checkpointing, eager attention instead of SDPA, length-grouped batches, the
fused AdamW, Liger's RMSNorm/SwiGLU/RoPE kernels (``liger-kernel``, optional), and Liger's fused
linear cross-entropy against ``lm_head`` + cross-entropy on the labelled rows.

Usage::

    .venv/bin/python benchmarks/bench_train_step.py                 # tiny, torch's default threads
    .venv/bin/python benchmarks/bench_train_step.py --threads 1 --set model.use_feedback=false
    python benchmarks/bench_train_step.py --shape 13b               # one GPU, every choice
    python benchmarks/bench_train_step.py --shape 13b --choices recipe,best --steps 2

``liger-kernel`` is optional: its lines are skipped (with a note) when it is not installed.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny_synth.yaml")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--shape", choices=["tiny", "7b", "13b"], default="tiny")
    parser.add_argument("--batch", type=int, default=8, help="conversations per step (7b/13b)")
    parser.add_argument("--device", default="cuda", help="device of the 7b/13b shapes")
    parser.add_argument("--choices", default=",".join(CHOICES), help="7b/13b: which lines to run")
    parser.add_argument(
        "--through-recipe",
        action="store_true",
        help="7b/13b: time TrainRecipe.train itself (speed options off / cache / all)",
    )
    parser.add_argument(
        "--recipe-lines",
        default="off,cache,fused,all",
        help=f"--through-recipe: comma-separated, or 'ladder'; of {', '.join(RECIPE_LINES)}",
    )
    args = parser.parse_args()
    if args.through_recipe:
        names = LADDER if args.recipe_lines == "ladder" else args.recipe_lines.split(",")
        unknown = sorted(set(names) - set(RECIPE_LINES))
        if unknown:
            parser.error(f"unknown --recipe-lines {unknown}; known: {', '.join(RECIPE_LINES)}")
        through_recipe(args.shape, args.batch, args.steps, names)
        return
    if args.shape != "tiny":
        choices = args.choices.split(",")
        unknown = sorted(set(choices) - set(CHOICES))
        if unknown:
            parser.error(f"unknown --choices {unknown}; known: {', '.join(CHOICES)}")
        full_size(args.shape, args.batch, args.steps, torch.device(args.device), choices)
        return

    from partonomy.config import from_dict, to_dict
    from partonomy.data.synth import SynthConfig, generate_world, preset
    from partonomy.io.descriptor import load_descriptor
    from partonomy.io.graph import load_graph
    from partonomy.io.qa_pairs import save_qa_pairs
    from partonomy.models.core.losses import compute_losses, lm_loss
    from partonomy.qa.generate import generate_qa
    from partonomy.training.config import load_train_config
    from partonomy.training.quickstart import QUICKSTART_WORLD
    from partonomy.training.recipe import TrainRecipe

    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        synth = from_dict(SynthConfig, {**to_dict(preset("easy")), **QUICKSTART_WORLD})
        desc, graph = generate_world(world, n_images=60, seed=0, size=64, config=synth,
                                     progress=False)  # fmt: skip
        records = generate_qa(load_descriptor(desc), load_graph(graph), seed=0,
                              types=["identification_with_label"], embedder=None,
                              progress=False).records  # fmt: skip
        save_qa_pairs(records, world / "qa.json")
        overrides = [f"run_dir={Path(tmp) / 'run'}", f"data.qa.files=[{world / 'qa.json'}]",
                     "log.progress=false", *args.overrides]  # fmt: skip
        if args.threads is not None:
            overrides.append(f"num_threads={args.threads}")
        cfg = load_train_config(args.config, overrides)
        recipe = TrainRecipe(cfg)
        recipe.setup()
        model, opt = recipe.model, recipe.optimizer
        batches = [recipe.next_batch() for _ in range(args.steps + 2)]

        def full(b):  # type: ignore[no-untyped-def]  # the recipe's step
            out = model(b, span_source="target", lm_rows="labelled")
            loss = compute_losses(recipe.loss_terms, recipe.weights, out, b,
                                  seg_loss=cfg.loss.seg_loss,
                                  dice_scale=cfg.loss.dice_scale)  # fmt: skip
            loss.total.backward()
            opt.step()
            opt.zero_grad()

        def lm_only(b):  # type: ignore[no-untyped-def]
            _, logits = model.language_model(b.input_ids, b.attention_mask, b.pixel_values,
                                             b.image_index)  # fmt: skip
            lm_loss(logits, b.labels).backward()
            model.zero_grad()

        results = {}
        for name, fn in (("step", full), ("lm fwd+bwd", lm_only)):
            fn(batches[0])
            times = []
            for b in batches[1:]:
                start = time.perf_counter()
                fn(b)
                times.append(time.perf_counter() - start)
            results[name] = statistics.median(times)
        recipe.cleanup()

    spans = sum(len(s) for s in batches[0].spans)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"config: {args.config} {' '.join(args.overrides)}")
    print(f"batch: {batches[0].input_ids.shape[0]} conversations x {batches[0].input_ids.shape[1]} "
          f"tokens, {spans} spans")  # fmt: skip
    print(f"train step (fwd+loss+bwd+AdamW): {results['step']:.3f} s median of {args.steps}")
    print(f"  of which LM fwd+bwd (lm_head over the 32k vocab): {results['lm fwd+bwd']:.3f} s")
    print(f"steps per minute: {60 / results['step']:.0f}")


# ------------------------------------------------------------------------------ 7b / 13b on a GPU
PARTS = ["cockpit", "front wheel", "propeller", "tail", "wing", "spraying rig", "fuel tank",
         "rudder", "engine", "landing gear", "antenna", "door"]  # fmt: skip
WORDS = ["the", "a", "of", "airplane", "image", "visible", "part", "left", "right", "near", "small",
         "large", "and", "with", "which", "is", "there", "show", "describe", "where", "color",
         *PARTS]  # fmt: skip


def _sentence(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, size=n).tolist()).capitalize() + "."


def _conversation(processor: Any, rng: np.random.Generator, tokens: int, n_parts: int) -> Any:
    """A conversation of about ``tokens`` tokens: filler turns, then an Identification answer
    naming ``n_parts`` parts, each with a random mask of a random 480 x 640 image."""
    image, history, question, answer, masks = _turns(processor, rng, tokens, n_parts)
    return processor.encode(image, history, question, answer, masks)


def _turns(processor: Any, rng: np.random.Generator, tokens: int, n_parts: int) -> Any:
    """The raw parts of :func:`_conversation`: (image, history, question, answer, masks)."""
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    parts = sorted(rng.choice(PARTS, size=n_parts, replace=False).tolist())
    question = "What visible parts does the agricultural airplane in the image have?"
    answer = "The agricultural airplane in the image has the following visible parts: "
    answer += ", ".join(parts[:-1]) + f", and {parts[-1]}."
    masks = {p: (rng.random((480, 640)) > 0.5).astype(np.uint8) for p in parts}
    count = len(processor.tokenizer(question + answer).input_ids) + 300  # + image, template
    history: list[tuple[str, str]] = []
    while count < tokens:
        turn = (_sentence(rng, int(rng.integers(8, 20))), _sentence(rng, int(rng.integers(30, 80))))
        count += len(processor.tokenizer(" ".join(turn)).input_ids) + 8
        history.append(turn)
    return image, history, question, answer, masks


RECIPE_LINES: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (label, config overrides on top of the run's base config); "{cache}" is the cache dir
    "off": ("speed off (SAM encoder in the step)", {"speed.prepare_ahead": False}),
    "cache": ("speed.embedding_cache", {"speed.embedding_cache": "{cache}",
                                        "speed.prepare_ahead": False}),
    "fused": ("cache + fused_kernels: liger + fused_adam", {
        "speed.embedding_cache": "{cache}", "speed.fused_kernels": "liger",
        "speed.fused_adam": True, "speed.prepare_ahead": False}),
    "all": ("cache + liger + fused_adam + prefetch thread", {
        "speed.embedding_cache": "{cache}", "speed.fused_kernels": "liger",
        "speed.fused_adam": True, "speed.prepare_ahead": False, "speed.prefetch": True}),
    "ahead": ("fused + prepare_ahead (default)", {
        "speed.embedding_cache": "{cache}", "speed.fused_kernels": "liger",
        "speed.fused_adam": True}),
    "grouped": ("fused + ahead + data.group_by_length", {
        "speed.embedding_cache": "{cache}", "speed.fused_kernels": "liger",
        "speed.fused_adam": True, "data.group_by_length": True}),
    "bf16": ("fused + ahead + grouped + bf16_weights", {
        "speed.embedding_cache": "{cache}", "speed.fused_kernels": "liger",
        "speed.fused_adam": True, "data.group_by_length": True, "speed.bf16_weights": True}),
    "bf16_random": ("fused + ahead + bf16_weights (random batches)", {
        "speed.embedding_cache": "{cache}", "speed.fused_kernels": "liger",
        "speed.fused_adam": True, "speed.bf16_weights": True}),
    "noclip": ("bf16 line without gradient clipping", {
        "speed.embedding_cache": "{cache}", "speed.fused_kernels": "liger",
        "speed.fused_adam": True, "data.group_by_length": True, "speed.bf16_weights": True,
        "optim.max_grad_norm": 0.0}),
    "strict": ("ahead line with deterministic: strict", {
        "speed.embedding_cache": "{cache}", "speed.fused_kernels": "liger",
        "speed.fused_adam": True, "deterministic": "strict"}),
    "timing": ("bf16 line with log.timing (syncs per phase)", {
        "speed.embedding_cache": "{cache}", "speed.fused_kernels": "liger",
        "speed.fused_adam": True, "data.group_by_length": True, "speed.bf16_weights": True,
        "log.timing": True}),
}  # fmt: skip


LADDER = ("fused", "ahead", "grouped", "bf16", "bf16_random", "noclip", "timing")
"""``--recipe-lines ladder``: the issue-12 item-4 choices one at a time on top of each other."""


def through_recipe(
    shape: str, batch: int, steps: int, names: Sequence[str] = ("off", "cache", "fused", "all")
) -> None:
    """``--through-recipe``: ``TrainRecipe.setup`` + ``train`` at the 7B / 13B shape (random bf16
    weights, the recipe's peft LoRA, AdamW, gradient clipping, logging), its data swapped for
    the synthetic ~1k-token conversations above, visited in a seeded random order (``tiny``: the
    default tiny model on the CPU, a smoke test of this code). Each of ``--recipe-lines``
    (:data:`RECIPE_LINES`) sets config keys on top of the base run: the speed options one by one
    (``off``, ``cache``, ``fused``, ``all`` = prefetch thread, ``ahead`` = ``speed.prepare_ahead``,
    ``grouped`` = ``data.group_by_length``, ``bf16`` = ``speed.bf16_weights``), then without
    gradient clipping and with ``log.timing``. Tokens/s = real tokens of steps 2.. over their
    wall time, from the recipe's own step records; allocator retries are counted per line."""
    import transformers
    from bench_plum_e2e import PLUM_HEADS, SHAPES

    from partonomy.config import from_dict
    from partonomy.data.sample import TrainingSample
    from partonomy.data.synth import generate_world, preset
    from partonomy.io.descriptor import load_descriptor
    from partonomy.io.qa_pairs import parse_qa_pair, save_qa_pairs
    from partonomy.training.batches import Batches
    from partonomy.training.config import TrainConfig
    from partonomy.training.data import sample_lengths
    from partonomy.training.recipe import TrainRecipe
    from partonomy.training.sampler import BatchPlan

    on_gpu = torch.cuda.is_available()
    name = torch.cuda.get_device_name() if on_gpu else "CPU"
    print(f"device: {name} ({os.cpu_count()} CPU cores, load "
          f"{os.getloadavg()[0]:.2f})  torch {torch.__version__}  transformers "
          f"{transformers.__version__}")  # fmt: skip
    print(f"PYTORCH_CUDA_ALLOC_CONF={os.environ.get('PYTORCH_CUDA_ALLOC_CONF', '')!r}")
    shape_cfg = {k: dict(v) for k, v in SHAPES[shape].items()}
    for section in ("llava", "sam"):
        shape_cfg.setdefault(section, {})["dtype"] = "bfloat16" if on_gpu else "float32"
    with tempfile.TemporaryDirectory() as tmp:
        desc, _ = generate_world(Path(tmp) / "w", n_images=2, seed=0, size=64,
                                 config=preset("easy"), progress=False)  # fmt: skip
        inst = load_descriptor(desc).instances[0]
        part = sorted(inst.part_names())[0]
        record = {"question_id": "q0", "image_path": str(load_descriptor(desc).image_path(inst)),
                  "image_label": inst.image_label, "question": "What parts?",
                  "question_type": "identification_with_label",
                  "answer_choices": [f"It has a {part}."] * 5,
                  "answer_types": ["correct"] + ["incorrect"] * 4,
                  "answer_parts": [[part]] * 5, "segmentations": {part: inst.part_masks()[part]},
                  "object_question": None, "object_answer_choices": None,
                  "object_answer_types": None, "object_answer_classes": None}  # fmt: skip
        qa_file = Path(tmp) / "qa.json"
        save_qa_pairs(  # one global micro-batch, for the setup's check
            [parse_qa_pair({**record, "question_id": f"q{i}"}, i, qa_file) for i in range(batch)],
            qa_file,
        )
        cache_dir = str(Path(tmp) / "cache")
        rng = np.random.default_rng(0)
        samples: list[Any] = []
        for k, line in enumerate(names):
            label, overrides = RECIPE_LINES[line]
            overrides = {key: cache_dir if value == "{cache}" else value
                         for key, value in overrides.items()}  # fmt: skip
            base = {
                "family": "plum", "run_dir": str(Path(tmp) / f"run{k}"),
                "max_steps": steps + 1, "model": {**shape_cfg, **PLUM_HEADS, "max_length": 2048},
                "trainable": {"language_model": "lora"},
                "data": {"qa": {"files": [str(qa_file)]}, "micro_batch_size": batch},
                "checkpoint": {"every": 0, "save_base": "never"},
                "log": {"progress": False}, "cpu": not on_gpu,
            }  # fmt: skip
            for key, value in overrides.items():
                section, dot, field = key.partition(".")
                if dot:
                    base.setdefault(section, {})[field] = value
                else:  # a top-level key
                    base[key] = value
            cfg = from_dict(TrainConfig, base)
            t0 = time.perf_counter()
            recipe = TrainRecipe(cfg)
            try:
                recipe.setup()
            except Exception as err:  # e.g. liger-kernel missing: report, go on
                print(f"{label:<46} setup failed: {type(err).__name__}: {err}"[:300])
                recipe.cleanup()
                continue
            if not samples:  # ~1k-token conversations, 4 masks each (the --shape lines' data)
                for _ in range(batch * (steps + 1)):
                    image, history, question, answer, masks = _turns(
                        recipe.processor, rng, int(rng.integers(700, 1300)), 4
                    )
                    samples.append(TrainingSample(image, [*history, (question, answer)], masks))
            recipe.samples = samples
            recipe.plan = BatchPlan(
                n_samples=len(samples), micro_batch_size=batch, world_size=1, seed=0,
                lengths=tuple(sample_lengths(samples)) if cfg.data.group_by_length else None,
                group_window=cfg.data.group_window,
            )  # fmt: skip
            batches = Batches(samples, recipe.processor, recipe.plan,
                              content_keys=recipe.speed.content_keys,
                              image_token_id=recipe.model.image_token_id)  # fmt: skip
            if k == 0 or cfg.data.group_by_length:
                tokens = [len(batches.encode(i).input_ids) for i in range(len(samples))]
                pad = [
                    1 - sum(tokens[i] for i in idx) / (len(idx) * max(tokens[i] for i in idx))
                    for idx in (recipe.plan.indices(g) for g in range(steps + 1))
                ]
                print(f"  ({'grouped' if cfg.data.group_by_length else 'random'} batches: "
                      f"{100 * statistics.mean(pad):.1f}% padding)")  # fmt: skip
            recipe.batches = recipe.speed.batches(batches)
            if recipe.speed.cache is not None:  # filled beforehand (partonomy cache-embeddings)
                for position in range(recipe.plan.batches_per_epoch):
                    recipe.speed.attach(
                        recipe.batches.batch(position).to(recipe.accelerator.device)
                    )
            setup_s = time.perf_counter() - t0
            retries = torch.cuda.memory_stats().get("num_alloc_retries", 0) if on_gpu else 0
            try:
                result = recipe.train()
            except torch.cuda.OutOfMemoryError:
                print(f"{label:<46} out of memory")
                recipe.cleanup()
                del recipe
                gc.collect()
                torch.cuda.empty_cache()
                continue
            finally:
                retries = (torch.cuda.memory_stats().get("num_alloc_retries", 0) - retries
                           if on_gpu else 0)  # fmt: skip
            records = result.records
            wall = records[-1]["time"] - records[0]["time"]
            tokens_run = sum(r["tokens"] for r in records[1:])
            peak = max(max(r.get("peak_mem_gib", [0.0])) for r in records)
            print(f"{label:<46} {wall / (len(records) - 1) * 1e3:7.0f} ms/step  "
                  f"{tokens_run / wall:6.0f} tok/s  peak {peak:5.1f} GiB  "
                  f"{retries} alloc retries  (setup {setup_s:.0f} s, {len(records)} steps, "
                  f"{tokens_run / (len(records) - 1):.0f} tokens/step)")  # fmt: skip
            if cfg.log.timing:
                phases = [key for key in records[-1] if key.startswith("t_")]
                print("  median phase times (s): " + ", ".join(
                    f"{key[2:]} {statistics.median(r[key] for r in records[1:]):.3f}"
                    for key in phases))  # fmt: skip
            recipe.cleanup()
            del recipe, result
            gc.collect()
            if on_gpu:
                torch.cuda.empty_cache()


def _gpu_time(fn: Callable[[], Any]) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


CHOICES = ("recipe", "sam", "all_rows", "checkpointing", "eager_attention", "grouped",
           "fused_adam", "liger", "best", "cross_entropy")  # fmt: skip


def full_size(
    shape: str, batch: int, steps: int, device: torch.device, choices: Sequence[str] = CHOICES
) -> None:
    """Every speed choice of the training step at the 7B / 13B shape (module docstring)."""
    import transformers
    from bench_plum_e2e import PLUM_HEADS, SHAPES

    from partonomy.config import from_dict
    from partonomy.models.core.family import get_family
    from partonomy.models.core.losses import compute_losses, resolve_weights
    from partonomy.models.core.trainable import set_trainable
    from partonomy.training.batches import touch_outputs
    from partonomy.training.checkpoint import processor_new_token_ids

    family = get_family("plum")
    cfg = from_dict(family.config_type, {**SHAPES[shape], **PLUM_HEADS, "max_length": 2048})
    start = time.perf_counter()
    with device:  # random weights built where they run
        model, processor = family.build(cfg)
    model = model.to(device=device, dtype=torch.bfloat16)
    names = set_trainable(model, family.trainable_type(),
                          new_token_ids=processor_new_token_ids(processor))  # fmt: skip
    model.train()
    build_s = time.perf_counter() - start
    params = [p for p in model.parameters() if p.requires_grad]
    weights = resolve_weights(family.loss_terms, {})
    print(f"device: {torch.cuda.get_device_name(device)} ({os.cpu_count()} CPU cores, load "
          f"{os.getloadavg()[0]:.2f})  torch {torch.__version__}  transformers "
          f"{transformers.__version__}")  # fmt: skip
    print(f"PYTORCH_CUDA_ALLOC_CONF={os.environ.get('PYTORCH_CUDA_ALLOC_CONF', '')!r}")
    print(f"plum {shape} bf16: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B params, "
          f"{sum(p.numel() for p in params) / 1e6:.1f}M trainable in {len(names)} tensors "
          f"(peft LoRA r8 on q/v, lm_head, new embedding rows, SAM decoder, span modules); "
          f"built in {build_s:.1f} s")  # fmt: skip

    rng = np.random.default_rng(0)
    n = batch * (steps + 1)
    pool = [_conversation(processor, rng, int(rng.integers(700, 1300)), 4) for _ in range(n)]
    by_length = sorted(pool, key=lambda e: int(e.input_ids.shape[0]))
    grouped = [by_length[i : i + batch] for i in range(0, n, batch)]
    rng.shuffle(grouped)  # type: ignore[arg-type]
    orders = {"random": [pool[i : i + batch] for i in range(0, n, batch)], "grouped": grouped}

    def collate(examples: Sequence[Any], cached: bool) -> Any:
        b = processor.collate(examples).to(device, dtype=torch.bfloat16)
        if cached:  # what an embedding cache returns for these images
            with torch.no_grad():
                b.image_embeddings = model.image_embeddings(b.sam_pixel_values)
        return b

    data = {(o, c): [collate(ex, c) for ex in bs] for o, bs in orders.items() for c in (1, 0)}
    lengths = [int(e.input_ids.shape[0]) for e in pool]
    print(f"batches: {batch} conversations x {min(lengths)}-{max(lengths)} tokens (mean "
          f"{sum(lengths) / n:.0f}), 4 masks each, {steps} timed steps after 1 warm-up")  # fmt: skip
    for order, batches in orders.items():
        real = sum(len(e.input_ids) for bs in batches for e in bs)
        padded = sum(len(bs) * max(len(e.input_ids) for e in bs) for bs in batches)
        print(f"  {order} batches: {100 * (1 - real / padded):.1f}% padding")

    def measure(label: str, *, order: str = "random", cached: bool = True,
                lm_rows: str = "labelled", fused_adam: bool = False) -> None:  # fmt: skip
        batches = data[(order, int(cached))]
        opt = torch.optim.AdamW(params, lr=1e-6, foreach=False, fused=fused_adam or None)

        def step(b: Any) -> None:
            out = model(b, span_source="target", lm_rows=lm_rows)
            losses = compute_losses(family.loss_terms, weights, out, b)
            (losses.total + touch_outputs(out)).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        try:
            step(batches[0])
            torch.cuda.reset_peak_memory_stats(device)
            times = [_gpu_time(lambda b=b: step(b)) for b in batches[1:]]
            tokens = statistics.mean(float(b.attention_mask.sum()) for b in batches[1:])
            sec = statistics.median(times)
            peak = torch.cuda.max_memory_allocated(device) / 2**30
            retries = torch.cuda.memory_stats(device).get("num_alloc_retries", 0)
            print(f"{label:<58} {sec * 1e3:7.0f} ms  {tokens / sec:6.0f} tok/s  peak {peak:5.1f} "
                  f"GiB, {retries} allocator retries so far")  # fmt: skip
        except torch.cuda.OutOfMemoryError:
            print(f"{label:<58} out of memory")
        except Exception as err:  # one failing choice must not cost the other measurements
            print(f"{label:<58} failed: {type(err).__name__}: {err}")
        opt.state.clear()  # free the moments before the next choice allocates its own
        model.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()

    if "recipe" in choices:
        measure("recipe: cached SAM embeddings, labelled logit rows, SDPA")
    if "sam" in choices:
        measure(
            "  SAM encoder in the step, every logit row (issue 12)", cached=False, lm_rows="all"
        )
    if "all_rows" in choices:
        measure("  every logit row", lm_rows="all")
    llava = model.llava
    switches = {
        "checkpointing": ("  gradient checkpointing",
                          lambda: llava.gradient_checkpointing_enable(
                              gradient_checkpointing_kwargs={"use_reentrant": False}),
                          llava.gradient_checkpointing_disable),
        "eager_attention": ("  eager attention instead of SDPA",
                            lambda: llava.set_attn_implementation("eager"),
                            lambda: llava.set_attn_implementation("sdpa")),
    }  # fmt: skip
    for choice, (label, on, off) in switches.items():
        if choice in choices:
            try:
                on()
                measure(label)
            except Exception as err:
                print(f"{label:<58} failed: {type(err).__name__}: {err}")
            off()
    if "grouped" in choices:
        measure("  length-grouped batches (less padding)", order="grouped")
    if "fused_adam" in choices:
        measure("  fused AdamW (recipe: foreach=False)", fused_adam=True)
    if "liger" in choices or "best" in choices:
        try:
            from liger_kernel.transformers import apply_liger_kernel_to_llama

            apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True,
                                        cross_entropy=False, fused_linear_cross_entropy=False,
                                        model=llava.model.language_model)  # fmt: skip
        except Exception as err:  # optional package
            print(f"liger-kernel unavailable: {type(err).__name__}: {err}")
        else:
            if "liger" in choices:
                measure("  Liger RMSNorm + SwiGLU + RoPE kernels")
            if "best" in choices:
                measure("  Liger kernels + length-grouped + fused AdamW", order="grouped",
                        fused_adam=True)  # fmt: skip
    if "cross_entropy" in choices:
        _cross_entropy_choices(model, data[("random", 1)][0], device)


def _cross_entropy_choices(model: Any, batch: Any, device: torch.device) -> None:
    """``lm_head`` + cross-entropy fwd+bwd over the labelled rows and over every row: torch
    (logits materialised) against Liger's fused linear cross-entropy (chunked, no logits)."""
    head = model.llava.lm_head
    d = head.weight.shape[1]
    labelled = int((batch.labels != -100).sum())
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        fused: Any = LigerFusedLinearCrossEntropyLoss()
    except Exception as err:
        fused = None
        print(f"liger fused linear cross-entropy unavailable: {type(err).__name__}: {err}")
    for rows in (labelled, int(batch.attention_mask.sum())):
        hidden = torch.randn(rows, d, device=device, dtype=torch.bfloat16, requires_grad=True)
        target = torch.randint(0, head.weight.shape[0], (rows,), device=device)
        ways: dict[str, Callable[[], torch.Tensor]] = {
            "torch lm_head + cross_entropy": lambda h=hidden, t=target: F.cross_entropy(
                head(h).float(), t
            )
        }
        if fused is not None:
            ways["liger fused linear cross-entropy"] = lambda h=hidden, t=target: fused(
                head.weight, h, t
            )
        for name, loss in ways.items():
            try:
                loss().backward()
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
                sec = statistics.median(_gpu_time(lambda f=loss: f().backward()) for _ in range(3))
                extra = (torch.cuda.max_memory_allocated(device) - base) / 2**30
                print(f"cross-entropy over {rows:5d} rows, {name:<34} {sec * 1e3:6.1f} ms  "
                      f"+{extra:.2f} GiB")  # fmt: skip
            except Exception as err:
                print(f"cross-entropy over {rows} rows, {name}: failed: {err}")
            head.weight.grad = None


if __name__ == "__main__":
    main()
