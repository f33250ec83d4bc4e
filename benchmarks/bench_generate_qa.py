"""Time ``partonomy generate-qa`` on a synthetic descriptor the size of the full PARTONOMY.

The descriptor has PARTONOMY's Table-1 shape: 606 objects in 20 categories, 975 part names
(category pools that share generic parts such as "handle" or "wheel"), ~2,500 object-part
pairs, 74,500 images showing random subsets of their object's parts, and ~407K masks (one object
mask per image, 1-2 masks per visible part) stored as small compressed RLE strings.

Usage::

    .venv/bin/python benchmarks/bench_generate_qa.py                 # full size, all types
    .venv/bin/python benchmarks/bench_generate_qa.py --images 5000   # quick look

It writes the descriptor and the QA file under ``--work-dir`` (a temporary folder by default),
then prints the time of each phase and the peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from partonomy.io import masks as mask_io
from partonomy.io.descriptor import Descriptor, Instance, load_descriptor, save_descriptor
from partonomy.io.labels import object_label, part_label
from partonomy.io.qa_pairs import save_qa_pairs
from partonomy.qa import generate as generate_mod
from partonomy.qa.generate import generate_qa


def build_descriptor(
    n_images: int, n_objects: int, n_parts: int, n_categories: int, seed: int
) -> Descriptor:
    """A synthetic descriptor with PARTONOMY-like label structure (see the module docstring)."""
    rng = np.random.default_rng(seed)
    names = [f"part{i:04d}" for i in range(n_parts)]
    generic = names[:40]  # shared across categories ("handle", "wheel", "leg", ...)
    specific = np.array_split(np.array(names[40:]), n_categories)
    categories: dict[str, list[str]] = {}
    object_parts: dict[str, list[str]] = {}
    for k in range(n_objects):
        cat = k % n_categories
        obj = f"category{cat:02d}--object{k:04d}"
        categories.setdefault(f"category{cat:02d}", []).append(obj)
        pool = [*specific[cat].tolist(), *generic]
        weights = np.array([1.0] * len(specific[cat]) + [0.5] * len(generic))
        n = int(np.clip(rng.poisson(4.1), 2, 9))
        picks = rng.choice(len(pool), size=n, replace=False, p=weights / weights.sum())
        object_parts[obj] = sorted(pool[i] for i in picks)
    # a pool of small RLE masks at 480x640, shared by reference (like loaded JSON strings)
    rle_pool = []
    for _ in range(256):
        dense = np.zeros((480, 640), dtype=np.uint8)
        y, x = rng.integers(0, 400), rng.integers(0, 560)
        dense[y : y + rng.integers(10, 80), x : x + rng.integers(10, 80)] = 1
        rle_pool.append(mask_io.encode(dense))
    objects = sorted(object_parts)
    instances = []
    for i in range(n_images):
        obj = objects[int(rng.integers(len(objects)))]
        parts = object_parts[obj]
        visible = [p for p in parts if rng.random() < 0.85] or [parts[0]]
        segs = {object_label(obj): [rle_pool[int(rng.integers(256))]]}
        for p in visible:
            n_masks = 1 + int(rng.random() < 0.25)
            segs[part_label(obj, p)] = [rle_pool[int(rng.integers(256))] for _ in range(n_masks)]
        instances.append(Instance(f"images/{i:06d}.jpg", obj, segs, list(segs)))
    return Descriptor(
        dataset_name="synthetic-partonomy",
        instances=instances,
        part_graph={o: [part_label(o, p) for p in ps] for o, ps in object_parts.items()},
        instance_graph=categories,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=74_500)
    parser.add_argument("--objects", type=int, default=606)
    parser.add_argument("--parts", type=int, default=975)
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--types", nargs="*", default=None, help="default: all ten")
    parser.add_argument("--embedder", choices=["default", "none"], default="default")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_qa_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    desc = build_descriptor(args.images, args.objects, args.parts, args.categories, args.seed)
    desc_path = work / "descriptor.json"
    save_descriptor(desc, desc_path)
    n_masks = sum(len(v) for inst in desc.instances for v in inst.segmentations.values())
    n_obj_parts = sum(len(v) for v in desc.part_graph.values())
    print(
        f"descriptor: {len(desc.instances)} images, {len(desc.part_graph)} objects, "
        f"{len({p for v in desc.part_graph.values() for p in v}) and args.parts} part names, "
        f"{n_obj_parts} object-part pairs, {n_masks} masks, "
        f"{desc_path.stat().st_size / 1e6:.0f} MB (built in {time.perf_counter() - t0:.1f} s)"
    )
    del desc

    fit_seconds = []
    original_fit = generate_mod.fit_cooccurrence

    def timed_fit(*a, **kw):
        start = time.perf_counter()
        prior = original_fit(*a, **kw)
        fit_seconds.append(time.perf_counter() - start)
        return prior

    generate_mod.fit_cooccurrence = timed_fit  # type: ignore[assignment]

    t_start = time.perf_counter()
    desc = load_descriptor(desc_path)
    t_load = time.perf_counter()
    result = generate_qa(
        desc,
        seed=args.seed,
        types=args.types,
        embedder="default" if args.embedder == "default" else None,
        source=desc_path,
    )
    t_gen = time.perf_counter()
    out = work / "qa.json"
    save_qa_pairs(result.records, out)
    t_save = time.perf_counter()
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"cores: {os.cpu_count()}  embedder: {result.embedder}  notes: {result.notes}")
    print(f"load descriptor    {t_load - t_start:7.1f} s")
    print(f"  co-occurrence LR {fit_seconds[0]:7.1f} s  ({args.parts} parts, one fit each)")
    print(f"generate_qa total  {t_gen - t_load:7.1f} s  ({len(result.records)} questions)")
    print(f"save_qa_pairs      {t_save - t_gen:7.1f} s  ({out.stat().st_size / 1e9:.2f} GB)")
    print(f"end to end         {t_save - t_start:7.1f} s  (target: <= 600 s)")
    print(f"peak RSS           {peak_gib:7.2f} GiB")
    print(f"dropped: {result.n_dropped}")
    print(f"skipped: {result.n_skipped}")


if __name__ == "__main__":
    main()
