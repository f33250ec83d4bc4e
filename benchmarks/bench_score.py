"""Speed of ``partonomy score``: RLE scoring vs a plain dense-numpy scorer, on the same data.

Target (issue 2): 5,000 questions with 5 masks each at about 1 megapixel are scored in at most
2 s on 2 cores, at least 10x faster than decoding every mask and using numpy logical ops. The
two scorers must agree.

The data: each ground-truth part is a random blob (vertically convex, with a random-walk
boundary: realistic RLE of ~2 runs per column), 20% of parts having a second instance; each
prediction is the blob redrawn with jittered centre, size and boundary noise; 2% of predicted
masks are missing. Masks are built directly as RLE, so building the data takes seconds.

Run::

    .venv/bin/python benchmarks/bench_score.py                 # the target configuration
    .venv/bin/python benchmarks/bench_score.py --questions 500 # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from partonomy.eval.metrics.conventions import EMPTY_UNION_IOU, MATCHINGS
from partonomy.eval.scoring import score, score_files
from partonomy.io import masks as mask_io
from partonomy.io.predictions import Prediction
from partonomy.io.qa_pairs import QAPair, save_qa_pairs

QUESTION_TYPES = ("identification", "positive", "negative", "part_to_whole", "whole_to_part")


def blob_rle(params: np.ndarray, rng: np.random.Generator, height: int, width: int) -> dict:
    """A blob as compressed RLE, built from per-column [top, bottom) row intervals.

    ``params`` = (centre x, centre y, half width, half height) in pixels. COCO RLE runs go down
    the columns (Fortran order), so a vertically convex blob has one foreground run per column.
    """
    cx, cy, hw, hh = params
    c0, c1 = int(max(0, cx - hw)), int(min(width, cx + hw))
    cols = np.arange(c0, c1)
    profile = np.sqrt(np.clip(1 - ((cols - cx) / hw) ** 2, 0, 1))  # ellipse
    wobble = np.cumsum(rng.normal(0, 0.6, len(cols)))  # random-walk boundary
    top = np.clip(cy - hh * profile + wobble, 1, height - 1).astype(np.int64)
    bottom = np.clip(cy + hh * profile + 0.7 * wobble, 1, height - 1).astype(np.int64)
    keep = bottom > top  # rows are >= 1, so runs of consecutive columns never touch
    cols, top, bottom = cols[keep], top[keep], bottom[keep]
    bounds = np.empty(2 * len(cols), dtype=np.int64)
    bounds[0::2] = cols * height + top
    bounds[1::2] = cols * height + bottom
    counts = np.diff(np.concatenate([[0], bounds, [height * width]]))
    rle = mask_utils.frPyObjects(
        {"size": [height, width], "counts": counts.tolist()}, height, width
    )
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def build_data(
    n_questions: int, n_parts: int, height: int, width: int, seed: int
) -> tuple[list[QAPair], dict[str, Prediction]]:
    """Random questions (5 choices, text scores) with ``n_parts`` masks each."""
    rng = np.random.default_rng(seed)
    records, predictions = [], {}
    scale = np.array([width, height, width, height], dtype=float)
    for q in range(n_questions):
        qid = f"q{q:05d}"
        parts = [f"part{k}" for k in range(n_parts)]
        segs, masks = {}, {}
        for part in parts:
            params = rng.uniform([0.2, 0.2, 0.03, 0.03], [0.8, 0.8, 0.25, 0.25]) * scale
            n_instances = 2 if rng.random() < 0.2 else 1
            segs[part] = [blob_rle(params, rng, height, width)]
            if n_instances == 2:
                other = params + rng.normal(0, 0.1, 4) * scale * [1, 1, 0.2, 0.2]
                other[2:] = np.maximum(other[2:], 5)
                segs[part].append(blob_rle(other, rng, height, width))
            if rng.random() >= 0.02:  # 2% missing predictions
                jitter = params * rng.normal(1, [0.03, 0.03, 0.15, 0.15])
                jitter[2:] = np.maximum(jitter[2:], 5)
                masks[part] = blob_rle(jitter, rng, height, width)
        correct = int(rng.integers(5))
        answer_parts = [parts if k == correct else parts[: 1 + k % n_parts] for k in range(5)]
        records.append(
            QAPair(
                question_id=qid,
                image_path=f"{qid}.jpg",
                image_label="thing",
                question="What visible parts does the object in the image have?",
                question_type=QUESTION_TYPES[q % 3],  # no object questions needed here
                answer_choices=[", ".join(p) for p in answer_parts],
                answer_types=["correct" if k == correct else "incorrect" for k in range(5)],
                answer_parts=answer_parts,
                segmentations=segs,
                explicit_id=True,
            )
        )
        predictions[qid] = Prediction(qid, rng.normal(2.0, 0.5, 5).tolist(), None, masks)
    return records, predictions


def dense_score(records: list[QAPair], predictions: dict[str, Prediction]) -> dict[str, float]:
    """The plain way: decode every mask, then numpy logical ops (paired matching, strict)."""
    ious, per_question, inter_sum, union_sum = [], [], 0, 0
    for qa in records:
        pred_masks = predictions[qa.question_id].masks or {}
        q_ious = []
        for part in qa.correct_parts:
            truth = np.zeros(qa.segmentations[part][0]["size"], dtype=bool)
            for rle in qa.segmentations[part]:
                truth |= mask_io.decode(rle)
            pred = mask_io.decode(pred_masks[part]) if part in pred_masks else np.zeros_like(truth)
            inter = int(np.logical_and(pred, truth).sum())
            union = int(np.logical_or(pred, truth).sum())
            q_ious.append(inter / union if union else EMPTY_UNION_IOU)
            inter_sum += inter
            union_sum += union
        ious.extend(q_ious)
        per_question.append(float(np.mean(q_ious)))
    return {
        "micro_giou": float(np.mean(ious)),
        "macro_giou": float(np.mean(per_question)),
        "ciou": inter_sum / union_sum,
    }


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=5000)
    parser.add_argument("--parts", type=int, default=5)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="RLE timing: best of N runs")
    parser.add_argument("--skip-files", action="store_true", help="skip the end-to-end run")
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible")
    (records, preds), t_build = timed(
        build_data, args.questions, args.parts, args.height, args.width, args.seed
    )
    n_masks = sum(len(qa.correct_parts) for qa in records)
    runs = np.mean([len(r["counts"]) for qa in records for r in qa.segmentations["part0"]])
    print(
        f"data: {args.questions} questions x {args.parts} parts at {args.height}x{args.width} "
        f"({args.height * args.width / 1e6:.2f} MP), {n_masks} scored masks, "
        f"mean RLE string {runs:.0f} chars; built in {t_build:.1f} s"
    )

    best = {}
    for matching in MATCHINGS:
        times = []
        for _ in range(args.repeats):
            results, t = timed(score, records, preds, matching=matching)
            times.append(t)
        best[matching] = (min(times), results)
        print(f"rle scorer, {matching:9s}: {min(times):6.3f} s (best of {args.repeats})")

    dense, t_dense = timed(dense_score, records, preds)
    t_rle, rle_results = best["paired"]
    print(f"dense numpy scorer, paired: {t_dense:6.3f} s")
    print(f"speed-up (paired): {t_dense / t_rle:.1f}x")

    overall = rle_results["overall"]
    diffs = {k: abs(overall[k] - dense[k]) for k in dense}
    agree = all(d < 1e-12 for d in diffs.values())
    for key, value in dense.items():
        print(f"  {key:10s} rle {overall[key]:.12f}  dense {value:.12f}")
    print(f"scorers agree: {agree} (max abs diff {max(diffs.values()):.1e})")

    if not args.skip_files:
        with tempfile.TemporaryDirectory() as tmp:
            qa_path, pred_path = Path(tmp) / "qa.json", Path(tmp) / "preds.jsonl"
            save_qa_pairs(records, qa_path)
            with open(pred_path, "w", encoding="utf-8") as handle:
                for pred in preds.values():
                    handle.write(json.dumps(pred.to_dict()) + "\n")
            size_mb = (qa_path.stat().st_size + pred_path.stat().st_size) / 1e6
            _, t_files = timed(score_files, qa_path, pred_path, Path(tmp) / "results.json")
        print(f"end-to-end score_files (reading {size_mb:.0f} MB of JSON): {t_files:6.3f} s")

    ok_time, ok_ratio = t_rle <= 2.0, t_dense / t_rle >= 10.0
    print(
        f"targets: paired <= 2 s: {'PASS' if ok_time else 'FAIL'}; >= 10x dense: "
        f"{'PASS' if ok_ratio else 'FAIL'}; agreement: {'PASS' if agree else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
