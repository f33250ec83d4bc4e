"""The optimiser and the learning-rate schedule of the PLUM recipe.

AdamW (lr 3e-4, betas 0.9/0.95, weight decay 0) with a linear warmup over ``warmup_steps`` and
then a linear decay that reaches 0 when the last optimiser step is done.

The schedule is stepped **once per optimiser step** (after ``optimizer.step()``). The original
training script stepped the same scheduler twice per step (once through DeepSpeed and once by hand),
so its learning rate reached 0 far too early (about half-way in stage 2); see docs/training.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from partonomy.errors import ConfigError


@dataclass
class OptimConfig:
    """AdamW and schedule settings.

    Attributes:
        lr: peak learning rate (after warmup).
        betas: AdamW ``(beta1, beta2)``.
        weight_decay: decoupled weight decay (0 in the paper's runs).
        eps: AdamW epsilon.
        warmup_steps: optimiser steps of linear warmup from ~0 to ``lr``.
        max_grad_norm: clip the global gradient norm to this value; ``0`` disables clipping.
    """

    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    eps: float = 1e-8
    warmup_steps: int = 100
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("optim.weight_decay and optim.max_grad_norm must be >= 0")


class WarmupLinearDecay:
    """LR multiplier for optimiser step ``s`` (0-based: the multiplier used by update ``s``).

    * warmup, ``s < W``: ``(s + 1) / W``, so the first update already moves (no wasted step)
      and update ``W - 1`` runs at the peak;
    * decay, ``W <= s``: ``(T - s) / (T - W)``, so update ``W`` runs at the peak, update
      ``T - 1`` (the last) at ``1 / (T - W)``, and the rate is exactly 0 once all ``T`` updates
      are done. No update is spent at lr 0.

    If ``W >= T`` the run is all warmup (the rate never decays).

    A plain picklable class (not a lambda), so ``LambdaLR.state_dict()`` stays self-contained.
    """

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        if total_steps <= 0:
            raise ConfigError(f"total optimiser steps must be positive, got {total_steps}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step: int) -> float:
        w, t = self.warmup_steps, self.total_steps
        if step < w:
            return (step + 1) / w
        if w >= t:
            return 1.0
        return max(0.0, (t - step) / (t - w))


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: OptimConfig, *, fused: bool = False
) -> torch.optim.AdamW:
    """AdamW over ``params`` (pass only the trainable ones).

    ``foreach=False`` keeps the update bit-identical between a run and its resumed copy regardless
    of how parameters are grouped on load. ``fused`` uses torch's fused (one-kernel, CUDA) AdamW
    instead: faster, equal within float rounding (``speed.fused_adam``).
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError(
            "no trainable parameters: check the 'trainable' section of the config "
            "(everything is frozen)"
        )
    return torch.optim.AdamW(
        params,
        lr=cfg.lr,
        betas=tuple(cfg.betas),  # type: ignore[arg-type]
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        foreach=False,
        fused=fused or None,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The warmup + linear-decay schedule; call ``.step()`` once after each ``optimizer.step()``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupLinearDecay(cfg.warmup_steps, total_steps)
    )
