"""SegLLM's loss terms: the LM loss, HIPIE's set loss on both decoder classes, and the L2 penalty
on the ``<seg>`` prompts (``llava_llama.py``: ``loss + loss_weight_det * det_loss +
sparse_embed_L2_loss_weight * mean(prompt^2)``).

The set loss (MaskDINO-style, as HIPIE's criterion with ``CLASS_WEIGHT 2``, ``MASK_WEIGHT 5``,
``DICE_WEIGHT 5``), per target and per class (reference, target), on the decoder's low-res frame:

* the ground truth: the target's mask; the reference's is the previous round's mask (round 0 has
  none, so no query is a reference there);
* matching: with one ground truth per class, Hungarian matching is the argmin over queries of
  ``2 * (-sigmoid(class logit)) + 5 * BCE(mask) + 5 * Dice(mask)`` (no gradient);
* ``det_class``: sigmoid focal loss (alpha 0.25, gamma 2) over every query and both classes, 1 at
  the matched (query, class) pairs, summed and divided by the number of ground truths;
* ``det_mask`` / ``det_dice``: BCE with logits (mean over valid pixels) and Dice (smoothing 1) of
  the matched queries' masks.

Ground truth in the low-res frame: :func:`~partonomy.models.segllm.decoder.target_in_frame` (the
mask resized into the padded input square, then area-averaged; ignored pixels excluded). HIPIE
samples points (``train_num_points``) instead of using every low-res pixel; Box L1/GIoU terms of
its detection branch are not used (the decoder here has no box head: docs/deviations.md).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from partonomy.models.core.losses import SHARED_TERMS, LossInputs, LossTerm
from partonomy.models.segllm.decoder import REFERENCE, TARGET, target_in_frame

MATCH_CLASS, MATCH_MASK, MATCH_DICE = 2.0, 5.0, 5.0
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0
_CACHE = "_segllm_set_terms"


def _bce(masks: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``(Q,)`` mean BCE over valid pixels of ``(Q, h, w)`` logits against ``(h, w)``."""
    per = F.binary_cross_entropy_with_logits(masks, gt.expand_as(masks), reduction="none")
    return (per * valid).flatten(1).sum(1) / valid.sum().clamp_min(1.0)


def _dice(masks: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``(Q,)`` Dice loss (smoothing 1) of ``(Q, h, w)`` logits against ``(h, w)``."""
    p = (torch.sigmoid(masks) * valid).flatten(1)
    t = (gt * valid).flatten()[None]
    return 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)


def _focal(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss summed over ``logits`` (any shape)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    p_t = p * labels + (1 - p) * (1 - labels)
    alpha = FOCAL_ALPHA * labels + (1 - FOCAL_ALPHA) * (1 - labels)
    return (alpha * ce * (1 - p_t) ** FOCAL_GAMMA).sum()


def set_terms(inputs: LossInputs) -> dict[str, torch.Tensor]:
    """``det_class``, ``det_mask``, ``det_dice`` (means over targets), computed once per inputs."""
    cached = inputs.__dict__.get(_CACHE)  # one matching for the three terms
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    cls_terms, mask_terms, dice_terms = [], [], []
    batch = inputs.batch
    for b, outputs in enumerate(inputs.output.head_outputs):
        targets = batch.span_targets[b] if b < len(batch.span_targets) else []
        if len(outputs) != len(targets):
            raise ValueError(
                f"conversation {b}: {len(outputs)} decoded targets but {len(targets)} target masks "
                "(compute the loss on span_source='target' outputs)"
            )
        frames = []
        for out, target in zip(outputs, targets, strict=True):
            masks: torch.Tensor = out["masks"].float()  # (Q, h, w)
            side = masks.shape[-1] * 4
            frames.append(
                target_in_frame(
                    target.to(masks.device), batch.sam_input_sizes[b], side, masks.shape[-2:]
                )
            )
        for k, out in enumerate(outputs):
            masks = out["masks"].float()
            logits: torch.Tensor = out["class_logits"].float()  # (Q, 2)
            labels = torch.zeros_like(logits)
            gts = [(TARGET, frames[k])] + ([(REFERENCE, frames[k - 1])] if k else [])
            for cls, (gt, valid) in gts:
                bce, dice = _bce(masks, gt, valid), _dice(masks, gt, valid)
                with torch.no_grad():
                    cost = (
                        -MATCH_CLASS * torch.sigmoid(logits[:, cls])
                        + MATCH_MASK * bce
                        + MATCH_DICE * dice
                    )
                    q = int(cost.argmin())
                labels[q, cls] = 1.0
                mask_terms.append(bce[q])
                dice_terms.append(dice[q])
            cls_terms.append(_focal(logits, labels) / len(gts))
    anchor = inputs.anchor()

    def mean(xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(xs).mean() if xs else anchor

    cached = {
        "det_class": mean(cls_terms),
        "det_mask": mean(mask_terms),
        "det_dice": mean(dice_terms),
    }
    inputs.__dict__[_CACHE] = cached
    return cached


def det_class_term(inputs: LossInputs) -> torch.Tensor:
    return set_terms(inputs)["det_class"]


def det_mask_term(inputs: LossInputs) -> torch.Tensor:
    return set_terms(inputs)["det_mask"]


def det_dice_term(inputs: LossInputs) -> torch.Tensor:
    return set_terms(inputs)["det_dice"]


def prompt_l2_term(inputs: LossInputs) -> torch.Tensor:
    """``mean(prompt^2)`` over every ``<seg>`` prompt of the batch (``sparse_embed_L2_loss``)."""
    prompts: list[Any] = [out["prompt"] for conv in inputs.output.head_outputs for out in conv]
    if not prompts:
        return inputs.anchor()
    return torch.stack(prompts).float().pow(2).mean()


LOSS_TERMS: dict[str, LossTerm] = {
    "lm": LossTerm(1.0, SHARED_TERMS["lm"]),
    "det_class": LossTerm(2.0, det_class_term),
    "det_mask": LossTerm(5.0, det_mask_term),
    "det_dice": LossTerm(5.0, det_dice_term),
    "prompt_l2": LossTerm(1e-3, prompt_l2_term),
}
"""SegLLM's terms and default weights (``loss_weight_det`` 1 times HIPIE's 2 / 5 / 5; L2 1e-3)."""
