"""The train/val split of QA pairs: by image, stratified by object label (the original's 80/20).

All questions of an image go to the same side. Each object label sends its share of images to
val: the total is ``round(n_images * val_fraction)`` and is apportioned over the labels by
largest remainder (each label gets the floor or the ceiling of ``n_label * val_fraction``;
leftover images go to the labels with the largest fractional parts, ties in random order).
Which images of a label go to val is a seeded random choice. The label of an image is that of
its first record (an image whose records disagree is stratified by that one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from partonomy.io.qa_pairs import QAPair

DEFAULT_VAL_FRACTION = 0.2
DEFAULT_SPLIT_SEED = 42


def _val_quotas(sizes: Sequence[int], fraction: float, rng: np.random.Generator) -> list[int]:
    """Per-label val counts summing to ``round(sum(sizes) * fraction)`` (largest remainder)."""
    exact = [n * fraction for n in sizes]
    quotas = [math.floor(x) for x in exact]
    leftover = math.floor(sum(sizes) * fraction + 0.5) - sum(quotas)
    tie_order = rng.permutation(len(sizes))
    ranked = sorted(tie_order.tolist(), key=lambda i: -(exact[i] - quotas[i]))
    for i in ranked[: max(leftover, 0)]:
        quotas[i] += 1
    return quotas


def split_records(
    records: Sequence[QAPair],
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = DEFAULT_SPLIT_SEED,
) -> tuple[list[QAPair], list[QAPair]]:
    """Split records into ``(train, val)`` by image, stratified by object label.

    Args:
        records: the QA pairs; each list keeps their order.
        val_fraction: share of images in val, in ``[0, 1]``.
        seed: seed of the split.

    Returns:
        ``(train, val)``; every image's records are all in one of them.

    Raises:
        ValueError: ``val_fraction`` outside ``[0, 1]``.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    label_of: dict[str, str] = {}
    for qa in records:
        label_of.setdefault(qa.image_path, qa.image_label)
    by_label: dict[str, list[str]] = {}
    for path in sorted(label_of):  # sorted: the split does not depend on the record order
        by_label.setdefault(label_of[path], []).append(path)
    labels = sorted(by_label)
    rng = np.random.default_rng(seed)
    quotas = _val_quotas([len(by_label[lbl]) for lbl in labels], val_fraction, rng)
    val_images: set[str] = set()
    for label, quota in zip(labels, quotas):
        images = by_label[label]
        picks = rng.permutation(len(images))[:quota]
        val_images.update(images[int(i)] for i in picks)
    train = [qa for qa in records if qa.image_path not in val_images]
    val = [qa for qa in records if qa.image_path in val_images]
    return train, val
