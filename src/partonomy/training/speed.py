"""Opt-in speed paths of the training recipe (the ``speed`` config section).

* ``embedding_cache``: SAM's image encoder is frozen, so its embeddings are read from an on-disk
  :class:`~partonomy.models.core.embedding_cache.EmbeddingCache` (``partonomy cache-embeddings``,
  or filled here on first sight) instead of being recomputed every step. Batches name their
  images by content (:func:`~partonomy.models.core.embedding_cache.image_key`), which also runs a
  batch's repeated images through CLIP and SAM once.
* ``fused_kernels: liger``: the LM's RMSNorms, SwiGLU MLPs and rotary embedding run
  ``liger-kernel``'s fused kernels during the step (forward and backward;
  :func:`~partonomy.models.core.fused_kernels.swapped_kernels`, undone after each step, so
  checkpoints, validation and generation see the plain model).
* ``fused_adam``: torch's fused AdamW (one kernel per step instead of one loop per tensor).
* ``prefetch``: the next micro-batch is read, tokenised and collated in a background thread while
  the device trains on the current one (:class:`PrefetchedBatches`; the same batches). Measured
  slower at 13B, so off by default.
* ``prepare_ahead`` (on by default): the next micro-batch is read, tokenised and collated on the
  training thread right after the current one's backward and optimiser step are queued, before
  the step's losses are read back (the host's one wait for the device per micro-batch), so that
  work overlaps the device's instead of leaving it idle. Same batches, same order, same losses;
  on a CPU it only moves the same work earlier.
* ``bf16_weights``: the whole model in bf16, the trained parameters too (LoRA, heads, new
  embedding rows): no fp32 master weights, AdamW's moments in bf16, and no autocast (every
  parameter already is bf16). What it costs in precision: ``docs/training.md``.

Each gives the plain step's losses within bf16 rounding (tests). Measured at 13B in
``docs/benchmarks.md`` (``bench_train_step.py --shape 13b --through-recipe``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import nn

from partonomy.errors import ConfigError
from partonomy.models.core.embedding_cache import EmbeddingCache
from partonomy.models.core.fused_kernels import (
    DecoderKernels,
    liger_kernels,
    supports,
    swapped_kernels,
)

if TYPE_CHECKING:
    from partonomy.models.core.model import SegLMM
    from partonomy.models.core.processing import SegBatch
    from partonomy.training.batches import Batches


@dataclass
class SpeedConfig:
    """Speed paths (module docstring); all off by default but ``prepare_ahead``.

    Attributes:
        embedding_cache: directory of image embeddings (``partonomy cache-embeddings DATA --out
            DIR``); missing ones are computed once and added. None: the encoder runs every step.
        fused_kernels: ``liger`` (needs ``liger-kernel``, the ``gpu`` extra, and a CUDA device)
            or ``off``.
        fused_adam: torch's fused AdamW (CUDA).
        prefetch: prepare the next micro-batch in a background thread. Off by default: at 13B on
            an H200 it made the step slower (3,524 vs 4,468 tok/s; the worker holds the GIL
            while the main thread launches the step's kernels).
        prepare_ahead: prepare the next micro-batch while the device runs the current one
            (module docstring); on by default (it changes no result).
        bf16_weights: train bf16 parameters without fp32 master weights or autocast (module
            docstring; ``docs/deviations.md``). Needs ``precision`` ``auto`` or ``bf16`` and an
            engine other than ``deepspeed_zero2``.
    """

    embedding_cache: str | None = None
    fused_kernels: Literal["off", "liger"] = "off"
    fused_adam: bool = False
    prefetch: bool = False
    prepare_ahead: bool = True
    bf16_weights: bool = False


def text_model(model: nn.Module) -> nn.Module | None:
    """The LLaMA-style decoder inside ``model`` (through LLaVA and PEFT wrappers): the first
    submodule that :func:`~partonomy.models.core.fused_kernels.supports` fused kernels."""
    for module in model.modules():
        if isinstance(getattr(module, "layers", None), nn.ModuleList) and supports(module):
            return module
    return None


class TrainingSpeed:
    """The recipe's hooks for :class:`SpeedConfig`: :meth:`attach` (cached embeddings into a
    batch on the device) and :meth:`kernels` (the fused-kernel block around a step).

    Args:
        cfg: the options.
        model: the unwrapped model (its mask head encodes cache misses; its decoder gets the
            kernels).
        device: where the steps run.

    Raises:
        ConfigError: ``fused_kernels: liger`` without a CUDA device, without ``liger-kernel``,
            or for a decoder that is not LLaMA-shaped.
    """

    def __init__(self, cfg: SpeedConfig, model: SegLMM, device: torch.device) -> None:
        self.cfg = cfg
        self.model = model
        self.cache = None
        if cfg.embedding_cache is not None:
            head: Any = model.mask_head
            encoder = getattr(getattr(head, "sam", head), "vision_encoder", head)
            if any(p.requires_grad for p in encoder.parameters()):
                raise ConfigError(
                    "speed.embedding_cache needs a frozen image encoder, but this config trains "
                    "it (trainable section); drop the cache or freeze the encoder"
                )
            self.cache = EmbeddingCache.for_mask_head(cfg.embedding_cache, head)
        self.fused: tuple[nn.Module, DecoderKernels] | None = None
        if cfg.fused_kernels == "liger":
            kernels = liger_kernels() if device.type == "cuda" else None
            if kernels is None:
                raise ConfigError(
                    "speed.fused_kernels: liger needs a CUDA device and the liger-kernel package "
                    "(pip install 'partonomy[gpu]'); set it to 'off'"
                )
            text = text_model(model)
            if text is None:
                raise ConfigError(
                    f"speed.fused_kernels: {type(model).__name__}'s language model is not "
                    "LLaMA-shaped (RMSNorm, SwiGLU, rotary); set it to 'off'"
                )
            self.fused = (text, kernels)

        self.prefetch = cfg.prefetch

    def batches(self, batches: Batches) -> Batches | PrefetchedBatches:
        """``batches``, prefetching when :attr:`SpeedConfig.prefetch` is on."""
        return PrefetchedBatches(batches) if self.prefetch else batches

    @property
    def content_keys(self) -> bool:
        """Whether batches must name their images by content (for the cache)."""
        return self.cache is not None

    @torch.no_grad()
    def attach(self, batch: SegBatch) -> SegBatch:
        """Set ``batch.image_embeddings`` (``(N, D, h, w)``, on the batch's device) from the
        cache, encoding and storing the images it lacks; the batch unchanged without a cache.

        Raises:
            ValueError: an image of the batch has no content key (``Batches(content_keys=True)``).
        """
        if self.cache is None:
            return batch
        keys = batch.image_keys
        if len(keys) != batch.sam_pixel_values.shape[0] or not all(
            isinstance(k, str) for k in keys
        ):
            raise ValueError("the batch's images have no content keys (Batches content_keys)")
        device = batch.sam_pixel_values.device
        found = [self.cache.get(cast(str, key), device) for key in keys]
        missing = [i for i, e in enumerate(found) if e is None]
        if missing:
            index = torch.tensor(missing, device=device)
            computed = self.model.image_embeddings(batch.sam_pixel_values[index])
            for i, embedding in zip(missing, computed, strict=True):
                self.cache.put(cast(str, keys[i]), embedding)
                found[i] = embedding
        batch.image_embeddings = torch.stack(cast("list[torch.Tensor]", found))
        return batch

    @contextlib.contextmanager
    def kernels(self) -> Iterator[None]:
        """Within the block (a step's forward and backward) the decoder runs the fused kernels."""
        if self.fused is None:
            yield
            return
        with swapped_kernels(*self.fused):
            yield


class PrefetchedBatches:
    """:class:`~partonomy.training.batches.Batches` whose next position is prepared ahead.

    :meth:`batch` returns ``batches.batch(position)`` and starts preparing ``position + 1`` in a
    worker thread (encoding has no randomness, so the batches are the same as without). A call
    for another position (e.g. after a resume) prepares it on the calling thread.
    """

    def __init__(self, batches: Batches) -> None:
        self.batches = batches
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="partonomy-batches")
        self._ahead: tuple[int, Future[Any]] | None = None

    def batch(self, position: int) -> Any:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == position:
            batch = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].cancel()
            batch = self.batches.batch(position)
        self._ahead = (position + 1, self._worker.submit(self.batches.batch, position + 1))
        return batch

    def prepare(self, position: int) -> None:
        """Nothing to do: :meth:`batch` already prepares the next position in the worker."""

    def clear(self) -> None:
        """Drop cached encodings (and the prepared batch) and stop the worker."""
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None
        self._worker.shutdown(wait=True)
        self.batches.clear()
