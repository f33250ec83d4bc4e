"""Building the model a training config describes (also used to rebuild it from a checkpoint)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from partonomy.models.core.model import SegLMM
    from partonomy.models.core.processing import SegProcessor
    from partonomy.training.config import TrainConfig


def build_model(cfg: TrainConfig) -> tuple[SegLMM, SegProcessor]:
    """The family's builder on ``cfg.model``: every parameter trainable, on CPU, and the processor.

    The random initialisation of every module not loaded from a checkpoint is seeded by
    ``cfg.model.seed`` (a forked RNG), so it is the same in every process and on every rebuild.
    """
    from partonomy.models.core.family import get_family

    return get_family(cfg.family).build(cfg.model)


def random_init_backbone(cfg: TrainConfig) -> bool:
    """Whether a backbone is randomly initialised (no pretrained file to rebuild it from)."""
    # PLUM may sit on an HF VLM (``model.backbone``); other families always have ``llava``.
    on_vlm = getattr(cfg.model, "backbone", "llava") != "llava"
    lm = cfg.model.vlm if on_vlm else cfg.model.llava
    sam = getattr(cfg.model, "sam", None)  # families without SAM (PixelLM) have no section
    return lm.pretrained is None or (sam is not None and sam.pretrained is None)
