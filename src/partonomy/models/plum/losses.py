"""PLUM's loss terms: the shared ones plus ``bio``, with the launched runs' weights.

``total = 1 * lm + 2 * bio + 8 * seg + 2 * bce + 0 * kl`` (the KL term needs a teacher and was off).

* ``bio``: cross-entropy over (O, B, I) with class weights (0.1, 1, 1), on positions whose tag label
  is not -100 (text of the last answer), in conversations that hold at least one B or I (VQA
  conversations are skipped). Reduction: torch's weighted mean, ``sum_t w[y_t] * ce_t / sum_t w[y_t]``
  over all counted tokens of the batch; 0 when no conversation counts.

The other terms are defined in :mod:`partonomy.models.core.losses`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from partonomy.models.core.losses import (
    DICE_SCALE,
    SHARED_TERMS,
    LossBreakdown,
    LossInputs,
    LossTerm,
    SegLoss,
    compute_losses,
    resolve_weights,
)
from partonomy.models.plum.bio import BIO_IGNORE, B, I

if TYPE_CHECKING:
    from partonomy.models.core.model import SegOutput
    from partonomy.models.core.processing import SegBatch

BIO_CLASS_WEIGHTS = (0.1, 1.0, 1.0)
"""Cross-entropy class weights of (O, B, I)."""


def bio_loss(bio_logits: torch.Tensor, bio_labels: torch.Tensor) -> torch.Tensor:
    """Class-weighted BIO CE over conversations with at least one B/I (module docstring)."""
    counted = ((bio_labels == B) | (bio_labels == I)).any(dim=1)  # (B,)
    if not bool(counted.any()):
        return bio_logits.sum().float() * 0.0
    logits = bio_logits[counted].float()  # (b, L, 3)
    labels = bio_labels[counted]
    weight = torch.tensor(BIO_CLASS_WEIGHTS, device=logits.device)
    return F.cross_entropy(
        logits.reshape(-1, 3), labels.reshape(-1), weight=weight, ignore_index=BIO_IGNORE
    )


def bio_term(inputs: LossInputs) -> torch.Tensor:
    if inputs.output.tag_logits is None:
        raise ValueError("the bio loss needs the span extractor's tag logits")
    return bio_loss(inputs.output.tag_logits, inputs.batch.tag_labels)


LOSS_TERMS: dict[str, LossTerm] = {
    "lm": LossTerm(1.0, SHARED_TERMS["lm"]),
    "bio": LossTerm(2.0, bio_term),
    "seg": LossTerm(8.0, SHARED_TERMS["seg"]),
    "bce": LossTerm(2.0, SHARED_TERMS["bce"]),
    "kl": LossTerm(0.0, SHARED_TERMS["kl"], needs_teacher=True),
}
"""PLUM's terms and the launched runs' weights (reference §4.1)."""


def plum_loss(
    output: SegOutput,
    batch: SegBatch,
    weights: Mapping[str, float] | None = None,
    *,
    seg_loss: SegLoss = "dice",
    teacher_hidden: torch.Tensor | None = None,
    dice_scale: float = DICE_SCALE,
) -> LossBreakdown:
    """PLUM's terms and weighted total (``weights`` override :data:`LOSS_TERMS`' defaults)."""
    return compute_losses(
        LOSS_TERMS,
        resolve_weights(LOSS_TERMS, weights),
        output,
        batch,
        seg_loss=seg_loss,
        dice_scale=dice_scale,
        teacher_hidden=teacher_hidden,
    )
