"""SegLLM's segmentation LMM: the shared :class:`~partonomy.models.core.model.SegLMM` with the
query decoder as its mask head and the mask re-encoder as its ``<seg_input>`` input encoder.

Only :meth:`SegLLMModel.segment_batch` differs: SegLLM has no mask feedback inside the decoder
(earlier rounds reach later ones through the LLM's input, :mod:`partonomy.models.segllm.reencode`),
so every target of every conversation is decoded in one batched call, and the decoder's per-query
outputs are kept for the set loss (:mod:`partonomy.models.segllm.losses`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from partonomy.models.core.model import SegLMM, SegmentResult
from partonomy.models.segllm.decoder import QueryDecoding


class SegLLMModel(SegLMM):
    """:class:`SegLMM` with one decoder call for all targets (module docstring).

    ``head_outputs`` of each target: its :class:`~partonomy.models.segllm.decoder.QueryDecoding`
    row (``masks (Q, T/4, T/4)``, ``class_logits (Q, 2)``) and ``prompt`` (its ``(t, D)`` tokens).
    """

    mask_head: Any  # QueryMaskHead

    def segment_batch(
        self,
        hidden: torch.Tensor | Sequence[torch.Tensor],
        spans: Sequence[Sequence[Sequence[int]]],
        image_embeddings: torch.Tensor | Sequence[torch.Tensor],
        original_sizes: Sequence[Sequence[int]],
        sam_input_sizes: Sequence[Sequence[int]],
    ) -> list[SegmentResult]:
        results = [SegmentResult([], [], [], []) for _ in spans]
        active = [b for b, s in enumerate(spans) if s]
        if not active:
            return results
        prompts = [self.prompt_source.prompts(hidden[b], spans[b]) for b in active]  # (n_b, t, D)
        owners = [b for b, p in zip(active, prompts, strict=True) for _ in range(p.shape[0])]
        images = torch.stack([image_embeddings[b] for b in owners])
        decoded: QueryDecoding = self.mask_head.decode_queries(images, torch.cat(prompts))
        low, scores = decoded.selected()
        row = 0
        for b, p in zip(active, prompts, strict=True):
            n = p.shape[0]
            res = results[b]
            res.queries = list(p.unbind(0))
            res.low_res_masks = [low[row + k][None] for k in range(n)]
            res.iou_predictions = list(scores[row : row + n].unbind(0))
            res.head_outputs = [
                {
                    "masks": decoded.masks[row + k],
                    "class_logits": decoded.class_logits[row + k],
                    "prompt": p[k],
                }
                for k in range(n)
            ]
            masks = self.mask_head.postprocess(
                low[row : row + n], sam_input_sizes[b], original_sizes[b]
            )
            res.masks = list(masks.unbind(0))
            row += n
        return results
