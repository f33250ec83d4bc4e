"""Wall time of ``partonomy quickstart`` as a new user runs it, with the machine's cores and load.

Runs the whole quickstart (Synth world, QA pairs, training, evaluation) into a fresh temporary
directory, exactly as ``make quickstart`` does, and prints one report: the core count, the load
average before and after, each stage's seconds, the training step time, and the learning floors.
A busy machine is reported as such (load above the core count), so a slow number can be read.

Usage::

    .venv/bin/python benchmarks/bench_quickstart.py                  # the default (PLUM) quickstart
    .venv/bin/python benchmarks/bench_quickstart.py --model lisa
    .venv/bin/python benchmarks/bench_quickstart.py --keep runs/bench_qs   # keep the outputs
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="plum", help="plum, lisa, glamm or all")
    parser.add_argument("--keep", type=Path, default=None, help="output directory to keep")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    import torch

    from partonomy.training.quickstart import QuickstartConfig, run_quickstart

    load_before = os.getloadavg()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"({usable} usable by this process), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load average before {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}"
    )
    cfg = QuickstartConfig(model=args.model, train_overrides=list(args.overrides))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "quickstart"
        start = time.perf_counter()
        result = run_quickstart(out, cfg, progress=False, echo=lambda _line: None)
        total = time.perf_counter() - start
    load_after = os.getloadavg()
    seconds = result.results["seconds"]
    print(f"load average after  {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}")
    if max(load_before[0], load_after[0]) > (usable or 1):
        print("note: the machine was busy (load above the core count); expect slower numbers")
    print(f"total {total:.0f} s ({total / 60:.1f} min)")
    for stage, value in seconds.items():
        print(f"  {stage:<14} {value:7.1f} s")
    for family, train in result.results["train"].items():
        steps = max(train["steps"], 1)
        print(
            f"  {family}: {train['steps']} steps, {train['seconds'] / steps:.3f} s/step (incl. setup)"
        )
    for floors in result.floors.values():
        for check in floors["checks"]:
            mark = "PASS" if check["passed"] else "FAIL"
            value = "n/a" if check["value"] is None else f"{check['value']:.3f}"
            print(f"  {mark} {check['name']}: {value} (threshold {check['threshold']:.3f})")


if __name__ == "__main__":
    main()
