"""PLUM training speed on CPU: seconds per optimiser step of the tiny quickstart config, and
where a step's time goes (LM with its 32k-vocabulary head vs SAM's per-span decoding).

A small Partonomy-Synth world is generated in a temporary directory, then the recipe's own setup
builds the model and data from ``configs/tiny_synth.yaml``; each timed step is the recipe's
forward -> plum_loss -> backward -> AdamW step, measured after warm-up (median of ``--steps``).

Usage::

    .venv/bin/python benchmarks/bench_train_step.py                 # torch's default threads
    .venv/bin/python benchmarks/bench_train_step.py --threads 1 --set model.use_feedback=false
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny_synth.yaml")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    from partonomy.config import from_dict, to_dict
    from partonomy.data.synth import SynthConfig, generate_world, preset
    from partonomy.io.descriptor import load_descriptor
    from partonomy.io.graph import load_graph
    from partonomy.io.qa_pairs import save_qa_pairs
    from partonomy.models.plum.losses import lm_loss, plum_loss
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

        def full(b):  # type: ignore[no-untyped-def]
            out = model(b, span_source="target")
            loss = plum_loss(out, b, recipe.weights, seg_loss=cfg.loss.seg_loss,
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


if __name__ == "__main__":
    main()
