"""A contact sheet of a model's masks beside the ground truth, for a first look at an eval run.

Each row is one question: the image with its ground-truth part masks, then with the model's
masks for the same parts (same colour per part), captioned with the question id, the per-part IoU
and whether the model picked the correct answer. Images are enlarged (nearest neighbour) so that
64-pixel Synth images and their labels stay readable.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from partonomy.io import masks as mask_io
from partonomy.io.atomic import atomic_write_bytes
from partonomy.io.images import (
    ground_truth_mask,
    load_image,
    record_label,
    resolve_image_path,
)
from partonomy.io.predictions import Prediction
from partonomy.io.qa_pairs import QAPair
from partonomy.viz.overlay import enlarge, overlay_masks

CAPTION_HEIGHT = 14


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def example_rows(
    records: Sequence[QAPair],
    predictions: dict[str, Prediction],
    *,
    qa_file: Path,
    image_root: Path | None = None,
    n: int = 8,
    scale: int = 4,
) -> list[tuple[np.ndarray, str]]:
    """``(row image (H, 2W + gap, 3) uint8, caption)`` for the first ``n`` predicted questions.

    Questions without a prediction, or whose correct answer names no part, are skipped. A part
    the model gave no mask for is drawn empty (and listed as "(empty)" in the legend).
    """
    rows: list[tuple[np.ndarray, str]] = []
    for index, qa in enumerate(records):
        pred = predictions.get(qa.question_id)
        parts = list(qa.correct_parts)
        if pred is None or not parts:
            continue
        path = resolve_image_path(qa.image_path, qa_file.parent, image_root)
        image = load_image(path, file=qa_file, record=record_label(index, qa))
        size = image.shape[:2]
        truth = [ground_truth_mask(qa, part, size).astype(bool) for part in parts]
        predicted = []
        for part in parts:
            rle = (pred.masks or {}).get(part)
            mask = np.zeros(size, bool) if rle is None else mask_io.decode(rle).astype(bool)
            if mask.shape != size:  # drawn as empty; the scorer reports the size mismatch
                mask = np.zeros(size, bool)
            predicted.append(mask)
        big = enlarge(image, scale)
        left = overlay_masks(big, [enlarge(m, scale) for m in truth], parts)
        right = overlay_masks(big, [enlarge(m, scale) for m in predicted], parts)
        gap = np.full((big.shape[0], 6, 3), 255, np.uint8)
        ious = ", ".join(f"{_iou(t, p):.2f}" for t, p in zip(truth, predicted, strict=True))
        chosen = ""
        if pred.choice_scores is not None:
            picked = int(np.argmin(pred.choice_scores))
            chosen = " | answer " + ("correct" if picked == qa.correct_index else "wrong")
        rows.append(
            (np.concatenate([left, gap, right], axis=1), f"{qa.question_id}: IoU {ious}{chosen}")
        )
        if len(rows) == n:
            break
    return rows


def write_examples(
    out_path: str | Path,
    records: Sequence[QAPair],
    predictions: dict[str, Prediction],
    *,
    qa_file: str | Path,
    image_root: str | Path | None = None,
    n: int = 8,
    scale: int = 4,
    title: str = "ground truth | model",
) -> Path | None:
    """Write the contact sheet of :func:`example_rows` as a PNG (atomically).

    Returns:
        ``out_path``, or None when no question had a prediction with parts (nothing written).
    """
    from PIL import Image, ImageDraw, ImageFont

    rows = example_rows(
        records,
        predictions,
        qa_file=Path(qa_file),
        image_root=None if image_root is None else Path(image_root),
        n=n,
        scale=scale,
    )
    if not rows:
        return None
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    texts = [title, *(caption for _, caption in rows)]
    text_width = max(int(measure.textbbox((0, 0), t, font=font)[2]) for t in texts) + 4
    width = max(text_width, *(row.shape[1] for row, _ in rows))
    height = CAPTION_HEIGHT + sum(row.shape[0] + CAPTION_HEIGHT + 4 for row, _ in rows)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((2, 1), title, fill=(0, 0, 0), font=font)
    y = CAPTION_HEIGHT
    for row, caption in rows:
        draw.text((2, y), caption, fill=(0, 0, 0), font=font)
        y += CAPTION_HEIGHT
        sheet.paste(Image.fromarray(row), (0, y))
        y += row.shape[0] + 4
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic_write_bytes(out_path, buffer.getvalue())
    return Path(out_path)
