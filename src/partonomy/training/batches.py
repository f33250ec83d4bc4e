"""A process's micro-batches: the batch plan, encoding with the PLUM processor, collation.

Also the two small tensor helpers of the training loop (conversation-wide LM labels, and the
zero-weight tie of every model output into the loss that DDP needs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from partonomy.data.sample import TrainingSample
from partonomy.errors import FormatError
from partonomy.models.core.embedding_cache import image_key
from partonomy.training.sampler import BatchPlan

log = logging.getLogger(__name__)


def load_rgb(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file.

    Raises:
        FormatError: the file is missing or not a readable image.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise FormatError(f"cannot read training image {path}: {err}", file=path) from None


def conversation_labels(batch: Any, image_token_id: int) -> torch.Tensor:
    """``(B, L)`` LM labels on every real text token (system prompt, questions, answers), -100
    on image tokens and padding."""
    keep = batch.attention_mask.bool() & (batch.input_ids != image_token_id)
    return torch.where(keep, batch.input_ids, torch.full_like(batch.input_ids, -100))


def touch_outputs(output: Any) -> torch.Tensor:
    """``0 *`` the sum of every grad-requiring tensor of a model output (a 0-d float tensor).

    Added to the loss so that every output reaches it: DDP (``find_unused_parameters``) expects a
    gradient for every parameter that produced an output tensor, and SAM's IoU head produces
    ``iou_predictions``, which no loss term uses. Values and gradients are unchanged.
    """
    from torch.nn.parallel.distributed import _find_tensors

    touched = [t.float().sum() for t in _find_tensors(output) if t.requires_grad]
    if not touched:
        return torch.zeros(())
    return torch.stack(touched).sum() * 0.0


class Batches:
    """This process's micro-batch at any data position (see :class:`BatchPlan`).

    Args:
        samples: the training set (map-style).
        processor: the :class:`~partonomy.models.core.processing.SegProcessor`.
        plan: which samples each process takes at each global micro-batch.
        rank: this process.
        cache: keep encoded examples in memory after their first use.
        all_occurrences: tag every occurrence of a part name (training default: the first).
        lm_tokens: ``answer`` keeps the processor's labels; ``conversation`` labels every text
            token (:func:`conversation_labels`).
        image_token_id: the ``<image>`` id (for ``conversation`` labels).
        content_keys: give every example its image's content key
            (:func:`~partonomy.models.core.embedding_cache.image_key`): a batch then holds each
            distinct image once and names it in ``SegBatch.image_keys`` (an embedding cache's key).
    """

    def __init__(
        self,
        samples: Sequence[TrainingSample],
        processor: Any,
        plan: BatchPlan,
        *,
        rank: int = 0,
        cache: bool = False,
        all_occurrences: bool = False,
        lm_tokens: Literal["answer", "conversation"] = "answer",
        image_token_id: int = -1,
        content_keys: bool = False,
    ) -> None:
        self.samples = samples
        self.processor = processor
        self.plan = plan
        self.rank = rank
        self.cache = cache
        self.all_occurrences = all_occurrences
        self.lm_tokens = lm_tokens
        self.image_token_id = image_token_id
        self.content_keys = content_keys
        self._cache: dict[int, Any] = {}
        self._warned: set[int] = set()
        self._ready: tuple[int, Any] | None = None  # (position, batch) from prepare()

    def encode(self, index: int) -> Any:
        """The :class:`~partonomy.models.core.processing.SegExample` of sample ``index``.

        A sample whose part names cannot be tagged in its answer keeps its text and loses its
        masks (logged once per sample), so one bad record never stops a run.
        """
        if index in self._cache:
            return self._cache[index]
        sample = self.samples[index]
        image = sample.image if isinstance(sample.image, np.ndarray) else load_rgb(sample.image)
        history, (question, answer) = sample.conversation[:-1], sample.conversation[-1]
        key = image_key(image) if self.content_keys else None
        try:
            example = self.processor.encode(
                image,
                history,
                question,
                answer,
                sample.masks or None,
                all_occurrences=self.all_occurrences,
                image_key=key,
            )
        except ValueError as err:
            if index not in self._warned:
                self._warned.add(index)
                log.warning(
                    "sample %d (%s): %s; training it without masks", index, sample.meta, err
                )
            example = self.processor.encode(image, history, question, answer, None, image_key=key)
        if self.cache:
            self._cache[index] = example
        return example

    def prepare(self, position: int) -> None:
        """Build the batch of ``position`` now, for the next :meth:`batch` call to return (the
        recipe calls this while the device still runs the current micro-batch)."""
        self._ready = (position, self._build(position))

    def batch(self, position: int) -> Any:
        """The collated :class:`~partonomy.models.core.processing.SegBatch` (on CPU) that this
        process trains on at global micro-batch ``position`` (the prepared one if it is that
        position's)."""
        ready, self._ready = self._ready, None
        if ready is not None and ready[0] == position:
            return ready[1]
        return self._build(position)

    def _build(self, position: int) -> Any:
        indices = self.plan.indices(position, self.rank)
        batch = self.processor.collate([self.encode(i) for i in indices])
        if self.lm_tokens == "conversation":
            batch.labels = conversation_labels(batch, self.image_token_id)
        return batch

    def clear(self) -> None:
        """Drop cached encodings and the prepared batch."""
        self._cache.clear()
        self._ready = None
