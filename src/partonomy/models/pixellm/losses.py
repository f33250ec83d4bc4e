"""PixelLM's loss terms (``train_ds.py`` defaults, LISA's): ``1 * lm + 2 * bce + 0.5 * seg`` with
``seg`` the Dice loss, plus the paper's target-refinement term ``overlap`` at weight 0.

``overlap``: per conversation, the pixels where at least two of its predicted masks are positive
(logit > 0); per mask, BCE against its target averaged over the image, counting only those pixels
(the original's ``overlap_loss``); mean over the targets of the batch. The released code never
calls it (the call is commented out; the author: "cancel overlap_loss during training first",
PixelLM issue #12), hence weight 0; ``loss.weights.overlap: 2.0`` turns it on (the weight the
commented call would have used, ``bce_loss_weight``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from partonomy.data.sample import IGNORE_INDEX
from partonomy.models.core.losses import SHARED_TERMS, LossInputs, LossTerm


def overlap_loss(masks: list[torch.Tensor], targets: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-mask overlap terms of one conversation.

    Args:
        masks: ``(H, W)`` logits per target.
        targets: ``(H, W)`` uint8 per target (0/1, :data:`IGNORE_INDEX` ignored).

    Returns:
        One 0-d float32 term per mask: ``mean(BCE * overlap * valid)`` over the image.
    """
    if not masks:
        return []
    logits = torch.stack([m.float() for m in masks])  # (n, H, W)
    target = torch.stack([t.to(logits.device) for t in targets])
    valid = (target != IGNORE_INDEX).float()
    overlap = ((logits > 0).sum(0) >= 2).float()[None]  # (1, H, W)
    bce = F.binary_cross_entropy_with_logits(logits, (target == 1).float(), reduction="none")
    return list((bce * overlap * valid).flatten(1).mean(1).unbind(0))


def overlap_term(inputs: LossInputs) -> torch.Tensor:
    terms: list[torch.Tensor] = []
    for masks, targets in zip(inputs.output.masks, inputs.batch.span_targets, strict=True):
        terms.extend(overlap_loss(list(masks), list(targets)))
    return torch.stack(terms).mean() if terms else inputs.anchor()


LOSS_TERMS: dict[str, LossTerm] = {
    "lm": LossTerm(1.0, SHARED_TERMS["lm"]),
    "bce": LossTerm(2.0, SHARED_TERMS["bce"]),
    "seg": LossTerm(0.5, SHARED_TERMS["seg"]),
    "overlap": LossTerm(0.0, overlap_term),
}
