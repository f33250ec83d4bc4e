"""The training sample every data source yields, and PLUM's training collation consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Turn = tuple[str, str]
"""One (user question, assistant answer) exchange."""

IGNORE_INDEX = 255
"""Mask value for 'ignore' pixels (e.g. ReasonSeg ``ignore`` regions, COCO-Stuff unlabeled):
excluded from mask losses and metrics. Masks are uint8 with 0 = background, 1 = foreground."""


@dataclass
class TrainingSample:
    """One training conversation about one image.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, or a path loaded lazily by the collator.
        conversation: the turns; the last answer is the one whose spans are segmented. Earlier turns
            are context (loss on every assistant turn).
        masks: span text -> ``(H, W)`` uint8 mask (0/1, or :data:`IGNORE_INDEX` for ignored pixels),
            in the order the spans appear in the last answer. Every key must occur verbatim in
            that answer (PLUM's BIO targets are built by matching it). Empty for VQA samples.
        source: the data source name (e.g. ``"ade20k"``), for logging and mixture statistics.
        meta: free-form provenance (file, annotation id, ...).
    """

    image: np.ndarray | Path
    conversation: list[Turn]
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    meta: dict[str, str] = field(default_factory=dict)
