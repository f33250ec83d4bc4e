"""LISA's loss terms and weights (``train_ds.py`` defaults): ``1 * lm + 2 * bce + 0.5 * seg``,
with ``seg`` the Dice loss (``loss.seg_loss: dice``). GLaMM kept the same recipe."""

from __future__ import annotations

from partonomy.models.core.losses import SHARED_TERMS, LossTerm

LOSS_TERMS: dict[str, LossTerm] = {
    "lm": LossTerm(1.0, SHARED_TERMS["lm"]),
    "bce": LossTerm(2.0, SHARED_TERMS["bce"]),
    "seg": LossTerm(0.5, SHARED_TERMS["seg"]),
}
