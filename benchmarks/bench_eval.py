"""Speed of the evaluation harness's own work and of ``partonomy convert``, on synthetic data.

    .venv/bin/python benchmarks/bench_eval.py [--images 20] [--per-image 10] [--size 480 640]

Builds ``images x per_image`` questions over ``images`` PNGs of ``size`` (H, W), each record with
4 part masks (RLE), then times:

* loading and validating the QA file;
* ``run_eval`` with the reference models: ``null`` (image decode, checks, one fsynced line per
  question, scoring: the harness's floor), ``oracle`` (plus decoding ground truth and encoding
  predicted masks) and ``whole_object``;
* a rerun of a finished run (resume: read predictions back, re-score, no model calls);
* ``qa_to_hf`` and ``hf_to_qa`` (checked lossless).

Numbers are wall-clock on whatever machine runs it (the 2-core development box is shared).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from partonomy.eval.harness import EvalConfig, run_eval
from partonomy.io import masks as mask_io
from partonomy.io.hf_dataset import hf_to_qa, qa_to_hf
from partonomy.io.qa_pairs import load_qa_pairs

PARTS = ("body", "handle", "lid", "spout")


def _image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (h + w)], axis=-1)
    return (base + rng.integers(0, 16, (h, w, 3))).astype(np.uint8)


def _masks(rng: np.random.Generator, h: int, w: int) -> dict[str, list[dict]]:
    yy, xx = np.mgrid[0:h, 0:w]
    out = {}
    for part in PARTS:
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.05, 0.25) * h, rng.uniform(0.05, 0.25) * w
        ellipse = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        out[part] = [mask_io.encode(ellipse)]
    return out


def build(root: Path, n_images: int, per_image: int, h: int, w: int) -> Path:
    rng = np.random.default_rng(0)
    records = []
    for i in range(n_images):
        name = f"img_{i:03d}.png"
        Image.fromarray(_image(rng, h, w)).save(root / name)
        segs = _masks(rng, h, w)
        for q in range(per_image):
            correct = sorted(rng.choice(PARTS, size=int(rng.integers(1, 5)), replace=False))
            wrong = [sorted(set(correct) ^ {PARTS[k]}) or [PARTS[k]] for k in range(4)]
            parts = [list(correct), *wrong]
            records.append(
                {
                    "question_id": f"q{i}-{q}",
                    "image_path": name,
                    "image_label": "mug",
                    "question": "What visible parts does the mug in the image have?",
                    "question_type": "identification_with_label",
                    "answer_choices": [f"The mug has: {', '.join(p)}." for p in parts],
                    "answer_types": ["correct"] + ["incorrect"] * 4,
                    "answer_parts": parts,
                    "segmentations": segs,
                    "object_question": None,
                    "object_answer_choices": None,
                    "object_answer_types": None,
                    "object_answer_classes": None,
                }
            )
    path = root / "qa.json"
    path.write_text(json.dumps(records))
    return path


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--per-image", type=int, default=10)
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    args = parser.parse_args()
    h, w = args.size
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        qa = build(root, args.images, args.per_image, h, w)
        n = args.images * args.per_image
        print(
            f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
        )
        print(f"data: {n} questions, {args.images} PNG images of {h}x{w}, 4 part masks each")
        records, t = _timed(lambda: load_qa_pairs(qa))
        print(f"load + validate QA file      : {t:6.2f} s  ({t / n * 1e3:6.2f} ms/question)")
        for model in ("null", "oracle", "whole_object"):
            cfg = EvalConfig(model, str(qa), str(root / model), batch_size=8, progress=False)
            outcome, t = _timed(lambda cfg=cfg: run_eval(cfg))
            assert outcome.n_computed == n
            giou = outcome.results["overall"]["micro_giou"]
            print(
                f"eval {model:<12s}            : {t:6.2f} s  ({t / n * 1e3:6.2f} ms/question, "
                f"{n / t:6.1f} q/s)  micro gIoU {giou}"
            )
        cfg = EvalConfig("oracle", str(qa), str(root / "oracle"), progress=False)
        outcome, t = _timed(lambda: run_eval(cfg))
        assert outcome.n_resumed == n and outcome.n_computed == 0
        print(f"rerun finished oracle (resume): {t:6.2f} s  (re-score only)")
        summary, t = _timed(lambda: qa_to_hf(qa, root / "hf", shard_size=100, progress=False))
        size = sum(p.stat().st_size for p in (root / "hf").rglob("*.parquet"))
        print(
            f"convert --to-hf               : {t:6.2f} s  ({n / t:6.1f} q/s, "
            f"{len(summary.files)} shards, {size / 2**20:.1f} MiB)"
        )
        back = root / "back" / "qa.json"
        _, t = _timed(lambda: hf_to_qa(root / "hf", back, root / "back", progress=False))
        assert load_qa_pairs(back) == records
        same = all(
            (root / "back" / r.image_path).read_bytes() == (root / r.image_path).read_bytes()
            for r in records
        )
        assert same
        print(f"convert --to-json             : {t:6.2f} s  ({n / t:6.1f} q/s), lossless: {same}")


if __name__ == "__main__":
    main()
