"""The state every mode of :class:`~partonomy.models.core.predictor.SegPredictor` shares: the model
and processor, their options, and the SAM image embeddings (in memory, least recently used
dropped; optionally read from and added to an on-disk
:class:`~partonomy.models.core.embedding_cache.EmbeddingCache`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from partonomy.errors import ConfigError
from partonomy.models.backbones.sam_fast import compile_blocks
from partonomy.models.core.embedding_cache import EmbeddingCache, image_key
from partonomy.models.core.hf_lm import base_and_head
from partonomy.models.core.scoring import CHOICE_SCORES, LAYOUTS, Layout
from partonomy.models.core.scoring_kernels import SCORING_KERNELS, usable
from partonomy.models.core.scoring_kernels import scoring_kernels as select_kernels

if TYPE_CHECKING:
    from partonomy.models.core.model import SegLMM
    from partonomy.models.core.processing import SegProcessor


MASK_THRESHOLD = 0.0
"""Mask logits above this are foreground (the paper's ``logit > 0``)."""


class PredictorBase:
    """Model, processor, options and image embeddings of a predictor; the constructor's arguments
    are documented on :class:`~partonomy.models.core.predictor.SegPredictor`."""

    def __init__(
        self,
        model: SegLMM,
        processor: SegProcessor,
        *,
        batch_size: int = 8,
        choice_score: str = "conversation",
        max_new_tokens: int = 512,
        generation: str = "loop",
        layout: str = "packed",
        max_rows: int = 64,
        image_cache: int = 16,
        pipeline: bool | None = None,
        compile_encoder: bool | None = None,
        embedding_cache: str | None = None,
        share_image_prefix: bool = True,
        scoring_kernels: str | None = None,
    ) -> None:
        if choice_score not in CHOICE_SCORES:
            raise ConfigError(
                f"choice_score must be one of {', '.join(CHOICE_SCORES)}, got {choice_score!r}"
            )
        if generation not in ("loop", "static"):
            raise ConfigError(f"generation must be 'loop' or 'static', got {generation!r}")
        if scoring_kernels is not None and scoring_kernels not in SCORING_KERNELS:
            raise ConfigError(
                f"scoring_kernels must be one of {', '.join(SCORING_KERNELS)}, "
                f"got {scoring_kernels!r}"
            )
        if layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        for label, value in (
            ("batch_size", batch_size),
            ("max_new_tokens", max_new_tokens),
            ("max_rows", max_rows),
            ("image_cache", image_cache),
        ):
            if value < 1:
                raise ConfigError(f"{label} must be at least 1, got {value}")
        self.model = model.eval()
        self.name = model.family or "model"
        self.processor = processor
        self.batch_size = batch_size
        self.choice_score = choice_score
        self.max_new_tokens = max_new_tokens
        self.generation = generation
        self.layout: Layout = "packed" if layout == "packed" else "expand"
        self.max_rows = max_rows
        self.image_cache = image_cache
        self._embeddings: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.pipeline = self.device.type == "cuda" if pipeline is None else pipeline
        self.share_image_prefix = share_image_prefix
        encoder = getattr(getattr(self.model.mask_head, "sam", None), "vision_encoder", None)
        if compile_encoder is None:  # pays off from about a hundred images on (H200, ViT-H)
            compile_encoder = self.device.type == "cuda" and encoder is not None
        if compile_encoder:
            if encoder is None:
                raise ConfigError(
                    f"compile_encoder: {type(self.model.mask_head).__name__} has no SAM ViT "
                    "image encoder to compile"
                )
            compile_blocks(encoder)
        if scoring_kernels is None:  # fused kernels pay on a GPU; on a CPU there is no Triton
            scoring_kernels = "auto" if self.device.type == "cuda" else "off"
        # LLaMA-shaped LLaVA decoders only (an HF VLM's attention has its own rotary embedding)
        self.kernels = (
            None
            if self.model.vlm is not None
            else usable(select_kernels(scoring_kernels), base_and_head(self.model.llava)[0])
        )
        self.disk_cache = (
            None
            if embedding_cache is None
            else EmbeddingCache.for_mask_head(embedding_cache, self.model.mask_head)
        )

    # ------------------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def _pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def placeholder_token_ids(self) -> list[int]:
        """Ids of the image placeholder tokens (``<image>``, and ``<im_start>``/``<im_end>`` when
        the vocabulary has them): never generated."""
        vocab = self.tokenizer.get_vocab()
        names = ("<image>", "<im_start>", "<im_end>")
        return sorted(int(vocab[t]) for t in names if t in vocab)

    # ------------------------------------------------------------------ image embeddings
    @torch.no_grad()
    def image_embeddings(
        self, keys: Sequence[str], sam_pixel_values: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """SAM embeddings ``(D, h, w)`` for images by content key; the uncached ones in one batch."""
        given = dict(zip(keys, sam_pixel_values, strict=True))
        return self._embed(keys, given.__getitem__)

    def _embed(
        self, keys: Sequence[str], sam_input: Callable[[str], torch.Tensor]
    ) -> list[torch.Tensor]:
        """:meth:`image_embeddings` with each uncached image's ``(3, T, T)`` input from ``sam_input``."""
        missing = [key for key in dict.fromkeys(keys) if key not in self._embeddings]
        if missing and self.disk_cache is not None:
            for key in list(missing):
                stored = self.disk_cache.get(key, self.device)
                if stored is not None:
                    self._embeddings[key] = stored
                    missing.remove(key)
        if missing:
            batch = torch.stack([sam_input(key).to(self.device) for key in missing])
            for key, emb in zip(missing, self.model.image_embeddings(batch), strict=True):
                self._embeddings[key] = emb
                if self.disk_cache is not None:
                    self.disk_cache.put(key, emb)
        out = []
        for key in keys:
            self._embeddings.move_to_end(key)
            out.append(self._embeddings[key])
        while len(self._embeddings) > max(self.image_cache, len(set(keys))):
            self._embeddings.popitem(last=False)
        return out

    def set_image(self, image: np.ndarray) -> str:
        """Compute (or find) the SAM embedding of ``image`` (``(H, W, 3)`` uint8); returns its key."""
        key = image_key(image)
        _clip, sam, _size, _resized = self.processor.preprocess_image(image)
        self.image_embeddings([key], [sam])
        return key
