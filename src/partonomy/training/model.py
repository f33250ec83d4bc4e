"""Building the model a training config describes (also used to rebuild it from a checkpoint)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from partonomy.models.core.trainable import EMBEDDING_PATH

if TYPE_CHECKING:
    from partonomy.models.core.model import SegLMM
    from partonomy.models.core.processing import SegProcessor
    from partonomy.training.config import TrainConfig

log = logging.getLogger(__name__)


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


def master_weights_fp32(
    model: nn.Module, trainable: Sequence[str], *, fsdp_wrap: tuple[str, ...] | None = None
) -> None:
    """Cast the trained parameters to fp32, in place (bf16 compute comes from autocast or the
    engine's mixed precision); the frozen ones keep the config's dtype.

    Args:
        fsdp_wrap: under FSDP, its wrap classes: marks the other units
            (:func:`~partonomy.training.distributed.mark_fsdp_units`); each FSDP unit flattens
            its parameters into one buffer of a single dtype, so a unit that mixes dtypes (the
            root: frozen embeddings beside the trained heads) is cast to fp32 as a whole.
    """
    names = set(trainable)
    for name, param in model.named_parameters():
        if name in names and param.dtype != torch.float32:
            param.data = param.data.float()
    if fsdp_wrap is None:
        return
    from partonomy.training.distributed import fsdp_units, mark_fsdp_units

    mark_fsdp_units(model, fsdp_wrap)
    for unit in fsdp_units(model, fsdp_wrap):
        if len({p.dtype for p in unit}) > 1:
            for param in unit:
                param.data = param.data.float()


def embedding_row_subsets(
    cfg: TrainConfig, trainable: Sequence[str], new_token_ids: list[int]
) -> dict[str, list[int]]:
    """``{embedding weight name: new token ids}`` when only those rows train (checkpoints then
    hold only those rows), else ``{}``."""
    name = EMBEDDING_PATH + ".weight"
    rows_only = cfg.trainable.embeddings == "new_rows" and cfg.trainable.language_model != "full"
    return {name: new_token_ids} if rows_only and name in trainable else {}


def init_from_checkpoint(model: nn.Module, source: str | Path) -> None:
    """Load a checkpoint's weights into ``model`` to start a new run (``init_from``); saved
    tensors this model lacks are skipped with a warning."""
    from partonomy.training import checkpoint as ckpt

    path = ckpt.resolve_checkpoint(source)
    skipped = ckpt.load_weights(model, path, strict=False)
    log.info("initialised from %s", path)
    if skipped:
        log.warning(
            "init_from %s: %d saved tensor(s) are not in this model and were skipped (e.g. %s)",
            path,
            len(skipped),
            skipped[0],
        )
