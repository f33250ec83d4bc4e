"""Speed of Partonomy-Synth: time to write a whole world, and where the time goes.

Target (issue 3): 1,000 images at 256 px in at most 30 s on 2 cores.

    .venv/bin/python benchmarks/bench_synth.py                 # 1000 images, 256 px, workers 1 and 2
    .venv/bin/python benchmarks/bench_synth.py --n-images 200 --size 128 --workers 1

The load average is printed because other processes on a shared machine slow every number down.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from partonomy.data.synth import SynthConfig, generate_world
from partonomy.data.synth.world import PNG_LEVEL, draw_image
from partonomy.io import masks as mask_io

TARGET_S = 30.0


def _disk_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def _stages(size: int, n: int) -> dict[str, float]:
    """Milliseconds per image for drawing, PNG encoding and RLE encoding (in-process)."""
    cfg = SynthConfig(size=size)
    draw = png = rle = 0.0
    for index in range(n):
        t0 = time.perf_counter()
        image, rec = draw_image(index, 0, cfg)
        t1 = time.perf_counter()
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG", compress_level=PNG_LEVEL)
        t2 = time.perf_counter()
        mask_io.encode(rec["object_mask"])
        for mask in rec["parts"].values():
            mask_io.encode(mask)
        t3 = time.perf_counter()
        draw, png, rle = draw + t1 - t0, png + t2 - t1, rle + t3 - t2
    return {"draw": 1e3 * draw / n, "png": 1e3 * png / n, "rle": 1e3 * rle / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"machine: {platform.machine()} {platform.processor() or ''}, cpus={os.cpu_count()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    stages = _stages(args.size, 100)
    print(
        f"per image at {args.size} px (100 images, 1 process): draw {stages['draw']:.1f} ms, "
        f"PNG {stages['png']:.1f} ms, RLE {stages['rle']:.1f} ms"
    )
    for workers in args.workers:
        cfg = SynthConfig(workers=workers)
        with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
            t0 = time.perf_counter()
            generate_world(
                tmp, n_images=args.n_images, seed=args.seed, size=args.size, config=cfg,
                progress=False,
            )  # fmt: skip
            elapsed = time.perf_counter() - t0
            verdict = "OK" if elapsed <= TARGET_S * args.n_images / 1000 else "SLOW"
            print(
                f"generate_world n_images={args.n_images} size={args.size} workers={workers}: "
                f"{elapsed:.1f} s ({args.n_images / elapsed:.0f} img/s, "
                f"{_disk_mb(Path(tmp)):.0f} MB on disk) [{verdict}: target <= "
                f"{TARGET_S * args.n_images / 1000:.0f} s]"
            )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
