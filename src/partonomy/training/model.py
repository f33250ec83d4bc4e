"""Building the model a training config describes (also used to rebuild it from a checkpoint)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from partonomy.models.plum.modeling import PlumModel
    from partonomy.models.plum.processing import PlumProcessor
    from partonomy.training.config import TrainConfig


def build_model(cfg: TrainConfig) -> tuple[PlumModel, PlumProcessor]:
    """``build_plum(cfg.model)``: PLUM with every parameter trainable, on CPU, and its processor.

    The random initialisation of every module not loaded from a checkpoint is seeded by
    ``cfg.model.seed`` (a forked RNG), so it is the same in every process and on every rebuild.
    """
    from partonomy.models.plum.builders import build_plum

    return build_plum(cfg.model)


def random_init_backbone(cfg: TrainConfig) -> bool:
    """Whether a backbone is randomly initialised (no pretrained file to rebuild it from)."""
    return cfg.model.llava.pretrained is None or cfg.model.sam.pretrained is None
