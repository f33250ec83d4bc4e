"""Index a COCO-style JSON of 100K images and 1M polygon annotations with CocoIndex.

Target (issue 5): indexed in under a minute on 2 CPU cores, masks decoded lazily (none held).

Usage::

    .venv/bin/python benchmarks/bench_coco_index.py [--images 100000] [--annotations 1000000]
        [--workdir /tmp/bench_coco] [--keep]

Prints the file size, the time to write it (not part of the target), the time of
``CocoIndex.load`` (parse + validate every annotation + group by image), the peak resident memory,
and the time to decode 1,000 random masks on demand.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from partonomy.data.coco_index import CocoIndex, Problems

HEIGHT, WIDTH = 480, 640
N_CATEGORIES = 531  # PACO-LVIS-like: 75 objects + 456 object-part categories
N_POLYGON_TEMPLATES = 1000
POINTS = 12  # vertices per polygon (PACO polygons have tens; 12 keeps the file ~0.3 GB)


def polygon_templates(rng: np.random.Generator) -> list[str]:
    """Random star-shaped polygons inside the image, as JSON text (2-decimal coordinates)."""
    out = []
    for _ in range(N_POLYGON_TEMPLATES):
        cx, cy = rng.uniform(60, WIDTH - 60), rng.uniform(60, HEIGHT - 60)
        angles = np.sort(rng.uniform(0, 2 * np.pi, POINTS))
        radii = rng.uniform(10, 55, POINTS)
        xs, ys = cx + radii * np.cos(angles), cy + radii * np.sin(angles)
        coords = ",".join(f"{x:.2f},{y:.2f}" for x, y in zip(xs, ys))
        box = f"{xs.min():.2f},{ys.min():.2f},{np.ptp(xs):.2f},{np.ptp(ys):.2f}"
        out.append(f'"segmentation":[[{coords}]],"bbox":[{box}]')
    return out


def write_coco(path: Path, n_images: int, n_annotations: int, seed: int = 0) -> None:
    """Stream a COCO JSON to ``path`` (chunks, so writing needs little memory)."""
    rng = np.random.default_rng(seed)
    polys = polygon_templates(rng)
    image_of = rng.integers(1, n_images + 1, n_annotations)
    cat_of = rng.integers(1, N_CATEGORIES + 1, n_annotations)
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"info":{"description":"bench"},"images":[')
        f.write(
            ",".join(
                f'{{"id":{i},"file_name":"train2017/{i:012d}.jpg","height":{HEIGHT},"width":{WIDTH}}}'
                for i in range(1, n_images + 1)
            )
        )
        f.write('],"categories":[')
        f.write(
            ",".join(
                f'{{"id":{c},"name":"obj{c // 7}:part{c % 7}","supercategory":"PART"}}'
                for c in range(1, N_CATEGORIES + 1)
            )
        )
        f.write('],"annotations":[')
        chunk = 100_000
        for start in range(0, n_annotations, chunk):
            stop = min(start + chunk, n_annotations)
            if start:
                f.write(",")
            f.write(
                ",".join(
                    f'{{"id":{k + 1},"image_id":{image_of[k]},"category_id":{cat_of[k]},'
                    f'"iscrowd":0,"area":1000.0,{polys[k % N_POLYGON_TEMPLATES]}}}'
                    for k in range(start, stop)
                )
            )
        f.write("]}")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated JSON")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_coco_"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "bench_coco.json"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible")
    t0 = time.perf_counter()
    write_coco(path, args.images, args.annotations)
    print(
        f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB; {args.images:,} images, "
        f"{args.annotations:,} polygon annotations) in {time.perf_counter() - t0:.1f} s"
    )
    rss_before = peak_rss_gib()
    t0 = time.perf_counter()
    index = CocoIndex.load(path, problems=Problems(skip_bad=False))
    t_index = time.perf_counter() - t0
    print(
        f"CocoIndex.load: {t_index:.1f} s  ({len(index):,} annotations validated and grouped over "
        f"{len(index.image_ids()):,} images; target < 60 s)"
    )
    print(f"peak RSS: {peak_rss_gib():.2f} GiB (before loading: {rss_before:.2f} GiB)")
    rng = np.random.default_rng(1)
    ids = rng.choice(np.arange(1, args.annotations + 1), 1000, replace=False)
    t0 = time.perf_counter()
    pixels = sum(int(index.mask(index.annotation(int(i))).sum()) for i in ids)  # type: ignore[union-attr]
    t_dec = time.perf_counter() - t0
    print(
        f"lazy decode: 1,000 random masks in {t_dec * 1000:.0f} ms (mean {pixels / 1000:.0f} px "
        "each); the index holds no decoded mask"
    )
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
