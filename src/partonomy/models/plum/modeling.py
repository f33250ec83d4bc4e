"""PLUM: LLaVA + SAM, BIO span tagging instead of a ``[SEG]`` token, and a mask-feedback loop.

The module is assembled from parts built elsewhere (:mod:`partonomy.models.plum.builders`) and
returns a typed output; losses live in :mod:`partonomy.models.plum.losses`.

Forward, per batch (shapes: ``B`` conversations, ``N <= B`` distinct images, ``L`` tokens, LLM width
``d``, SAM prompt width ``D``, image-embedding grid ``h x w``):

1. SAM's image encoder once per distinct image -> ``(N, D, h, w)`` (no grad when it is frozen).
2. CLIP + projector once per distinct image, features expanded to each image's conversations and
   scattered over the ``<image>`` positions (found by id, count checked); the LLaMA decoder gives the
   last hidden states ``(B, L, d)`` (after the final norm) and ``lm_head`` the logits ``(B, L, V)``.
3. The span extractor tags every position -> ``(B, L, 3)`` B/I/O logits.
4. Per conversation, per span (ground-truth spans, or greedy-grouped predicted tags), in token
   order: span query -> sparse prompt; the feedback loop over this conversation's earlier masks ->
   dense prompt; SAM's mask decoder -> low-res logits ``(1, 4h, 4w)``; upsampled to the SAM input,
   cropped to the resized image, upsampled to the original ``(H, W)``. The k-th spans of all
   conversations share one decoder call (histories stay per conversation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from partonomy.models.plum.bio import BIO_IGNORE, O, group_spans
from partonomy.models.plum.config import PlumConfig
from partonomy.models.plum.feedback import MaskFeedbackPooler
from partonomy.models.plum.processing import PlumBatch
from partonomy.models.plum.span_extractor import SpanExtractor
from partonomy.models.plum.span_query import SpanQuery


@dataclass
class PlumOutput:
    """What :meth:`PlumModel.forward` returns.

    Attributes:
        logits: ``(B, L, V)`` next-token logits.
        hidden: ``(B, L, d)`` last hidden states (after LLaMA's final norm).
        bio_logits: ``(B, L, 3)`` logits over (O, B, I).
        text_positions: ``(B, L)`` bool: real (non-padding), non-image tokens.
        spans: per conversation, the spans that were segmented (token indices, token order).
        span_queries: per conversation, per span, the pooled query ``(D,)``.
        low_res_masks: per conversation, per span, low-res mask logits ``(1, 4h, 4w)``.
        masks: per conversation, per span, mask logits ``(H, W)`` at the original image size
            (threshold at 0).
        iou_predictions: per conversation, per span, SAM's predicted IoU (0-d tensor).
    """

    logits: torch.Tensor
    hidden: torch.Tensor
    bio_logits: torch.Tensor
    text_positions: torch.Tensor
    spans: list[list[list[int]]] = field(default_factory=list)
    span_queries: list[list[torch.Tensor]] = field(default_factory=list)
    low_res_masks: list[list[torch.Tensor]] = field(default_factory=list)
    masks: list[list[torch.Tensor]] = field(default_factory=list)
    iou_predictions: list[list[torch.Tensor]] = field(default_factory=list)


@dataclass
class SegmentResult:
    """One conversation's segmentation: aligned per-span lists (see :class:`PlumOutput`)."""

    queries: list[torch.Tensor]
    low_res_masks: list[torch.Tensor]
    masks: list[torch.Tensor]
    iou_predictions: list[torch.Tensor]


def unwrap_peft(module: Any) -> Any:
    """The HF model inside a PEFT wrapper (LoRA layers are injected in place, so they stay active)."""
    get_base = getattr(module, "get_base_model", None)
    return get_base() if callable(get_base) else module


class PlumModel(nn.Module):
    """LLaVA + SAM + span extractor + span query + mask-feedback pooler.

    Args:
        llava: HF ``LlavaForConditionalGeneration`` (may be wrapped by PEFT later).
        sam: HF ``SamModel``.
        span_extractor: the B/I/O tagger.
        span_query: the span -> prompt-token MLP.
        feedback_pooler: the feedback loop, or None to always use SAM's no-mask dense prompt.
        config: the config the parts were built from (kept for checkpoints and reporting).
    """

    llava: Any  # HF LlavaForConditionalGeneration (or its PEFT wrapper); HF types are loose
    sam: Any  # HF SamModel

    def __init__(
        self,
        *,
        llava: nn.Module,
        sam: nn.Module,
        span_extractor: SpanExtractor,
        span_query: SpanQuery,
        feedback_pooler: MaskFeedbackPooler | None,
        config: PlumConfig,
    ) -> None:
        super().__init__()
        self.llava = llava
        self.sam = sam
        self.span_extractor = span_extractor
        self.span_query = span_query
        self.feedback_pooler = feedback_pooler
        self.config = config

    # --------------------------------------------------------------------------- properties
    @property
    def image_token_id(self) -> int:
        return int(unwrap_peft(self.llava).config.image_token_index)

    @property
    def sam_input_size(self) -> int:
        return int(self.sam.config.prompt_encoder_config.image_size)

    # ------------------------------------------------------------------------------- parts
    def image_embeddings(self, sam_pixel_values: torch.Tensor) -> torch.Tensor:
        """SAM image embeddings ``(N, D, h, w)`` of ``(N, 3, T, T)`` inputs, batched.

        Runs under ``no_grad`` when no encoder parameter requires grad (the frozen default).
        """
        encoder = self.sam.vision_encoder
        dtype = next(encoder.parameters()).dtype
        pixels = sam_pixel_values.to(dtype)
        if any(p.requires_grad for p in encoder.parameters()):
            return encoder(pixels)[0]
        with torch.no_grad():
            return encoder(pixels)[0]

    def language_model(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        image_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP once per image, LLaMA once per conversation.

        Args:
            input_ids: ``(B, L)``, each row holding exactly ``image_seq_length`` ``<image>`` ids.
            attention_mask: ``(B, L)``.
            pixel_values: ``(N, 3, S, S)`` CLIP inputs.
            image_index: ``(B,)`` image of each row (default ``arange(B)``, i.e. ``N == B``).

        Returns:
            ``(hidden (B, L, d), logits (B, L, V))``.

        Raises:
            ValueError: a row's number of ``<image>`` tokens differs from the number of image features.
        """
        base = unwrap_peft(self.llava)
        inner = base.model
        embeds = inner.get_input_embeddings()(input_ids)  # (B, L, d)
        image_token = self.image_token_id
        vision_dtype = next(inner.vision_tower.parameters()).dtype
        feats = inner.get_image_features(pixel_values=pixel_values.to(vision_dtype)).pooler_output
        feats = torch.stack(list(feats))  # (N, P, d)
        if image_index is None:
            image_index = torch.arange(input_ids.shape[0], device=input_ids.device)
        per_row = feats[image_index.to(feats.device)].to(embeds.dtype)  # (B, P, d)
        is_image = input_ids == image_token  # (B, L)
        counts = is_image.sum(1)
        if bool((counts != per_row.shape[1]).any()):
            raise ValueError(
                f"each conversation must hold {per_row.shape[1]} <image> tokens (one per CLIP patch), "
                f"found {counts.tolist()}"
            )
        embeds = embeds.masked_scatter(is_image[..., None], per_row.reshape(-1, per_row.shape[-1]))
        # No KV cache: this is a full-sequence pass (training, teacher forcing); a cache only costs memory.
        out = inner.language_model(
            inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False
        )
        hidden = out.last_hidden_state
        return hidden, base.lm_head(hidden)

    def tag_spans(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """B/I/O logits ``(B, L, 3)`` from hidden states ``(B, L, d)``.

        ``attention_mask`` ``(B, L)`` marks the positions that may be attended (image tokens
        included, as in the released code); a text-position mask also works.
        """
        return self.span_extractor(hidden, attention_mask)

    def _dense_prompts(
        self,
        history_masks: list[list[torch.Tensor]],
        history_queries: list[list[torch.Tensor]],
        pe: torch.Tensor,
    ) -> torch.Tensor:
        """Dense prompts ``(R, D, h, w)`` for ``R`` answers with equally long histories."""
        prompt = self.sam.prompt_encoder
        r, (h, w) = len(history_masks), pe.shape[-2:]
        if self.feedback_pooler is None or not history_masks[0]:
            return prompt.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(r, -1, h, w)
        masks = torch.stack([torch.stack(m) for m in history_masks])  # (R, n_prev, 1, 4h, 4w)
        queries = torch.stack([torch.stack(q) for q in history_queries])  # (R, n_prev, D)
        return self.feedback_pooler(prompt.mask_embed, masks, queries, pe)

    def postprocess_masks(
        self, low_res: torch.Tensor, sam_input_size: Sequence[int], original_size: Sequence[int]
    ) -> torch.Tensor:
        """Low-res logits ``(n, 4h, 4w)`` -> logits ``(n, H, W)`` in the original image frame.

        Upsample (bilinear) to the SAM input side ``T``, crop the padding away (keep ``(h, w)``),
        upsample to ``(H, W)``.
        """
        side = self.sam_input_size
        x = F.interpolate(
            low_res[:, None].float(), (side, side), mode="bilinear", align_corners=False
        )
        x = x[..., : int(sam_input_size[0]), : int(sam_input_size[1])]
        x = F.interpolate(
            x, tuple(int(s) for s in original_size), mode="bilinear", align_corners=False
        )
        return x[:, 0]

    def segment_batch(
        self,
        hidden: torch.Tensor | Sequence[torch.Tensor],
        spans: Sequence[Sequence[Sequence[int]]],
        image_embeddings: torch.Tensor | Sequence[torch.Tensor],
        original_sizes: Sequence[Sequence[int]],
        sam_input_sizes: Sequence[Sequence[int]],
    ) -> list[SegmentResult]:
        """Masks of several conversations' spans, each with its own feedback history.

        Span ``k`` of every conversation that has one goes through one batched decoder call (the
        history of a conversation only holds its own earlier spans, so conversations never mix);
        the number of sequential decoder calls is the longest span list, not the total.

        Args:
            hidden: per conversation ``(L, d)`` last hidden states (or a ``(B, L, d)`` tensor).
            spans: per conversation, token indices per span, in token order.
            image_embeddings: per conversation ``(D, h, w)`` SAM embedding of its image.
            original_sizes: per conversation ``(H, W)``.
            sam_input_sizes: per conversation ``(h_in, w_in)`` before padding.

        Returns:
            One :class:`SegmentResult` per conversation (empty lists where there are no spans).
        """
        results = [SegmentResult([], [], [], []) for _ in spans]
        active = [b for b, s in enumerate(spans) if s]
        if not active:
            return results
        decoder = self.sam.mask_decoder
        dtype = decoder.iou_token.weight.dtype
        pe = self.sam.get_image_wide_positional_embeddings().to(dtype)  # (1, D, h, w)
        queries = {b: self.span_query(hidden[b], spans[b]) for b in active}  # (n_spans, D) each
        for k in range(max(len(spans[b]) for b in active)):
            rows = [b for b in active if len(spans[b]) > k]
            dense = self._dense_prompts(
                [results[b].low_res_masks for b in rows], [results[b].queries for b in rows], pe
            ).to(dtype)  # (R, D, h, w)
            low, iou = decoder(
                image_embeddings=torch.stack([image_embeddings[b] for b in rows]).to(dtype),
                image_positional_embeddings=pe.expand(len(rows), -1, -1, -1),
                # One sparse prompt token per conversation: (R, point_batch 1, tokens 1, D).
                sparse_prompt_embeddings=torch.stack([queries[b][k] for b in rows])
                .to(dtype)
                .reshape(len(rows), 1, 1, -1),
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )  # low: (R, 1, 1, 4h, 4w), iou: (R, 1, 1)
            for i, b in enumerate(rows):
                results[b].queries.append(queries[b][k])
                results[b].low_res_masks.append(low[i, 0])  # (1, 4h, 4w)
                results[b].iou_predictions.append(iou[i].reshape(()))
        for b in active:
            low_all = torch.cat(results[b].low_res_masks)  # (n_spans, 4h, 4w)
            masks = self.postprocess_masks(low_all, sam_input_sizes[b], original_sizes[b])
            results[b].masks = list(masks.unbind(0))
        return results

    def segment_spans(
        self,
        hidden: torch.Tensor,
        spans: Sequence[Sequence[int]],
        image_embedding: torch.Tensor,
        original_size: Sequence[int],
        sam_input_size: Sequence[int],
    ) -> SegmentResult:
        """Masks of one conversation's spans, in order, with the feedback loop (history starts empty).

        Args:
            hidden: ``(L, d)`` last hidden states of the conversation.
            spans: token indices per span, in token order.
            image_embedding: ``(D, h, w)`` SAM embedding of the conversation's image.
            original_size: ``(H, W)``; sam_input_size: ``(h_in, w_in)`` before padding.
        """
        return self.segment_batch(
            [hidden], [spans], [image_embedding], [original_size], [sam_input_size]
        )[0]

    def segment(
        self,
        hidden: torch.Tensor,
        spans: Sequence[Sequence[int]],
        image_embedding: torch.Tensor,
        original_size: Sequence[int],
        sam_input_size: Sequence[int],
    ) -> list[torch.Tensor]:
        """Mask logits ``(H, W)`` per span (see :meth:`segment_spans`)."""
        return self.segment_spans(
            hidden, spans, image_embedding, original_size, sam_input_size
        ).masks

    def predicted_spans(
        self, bio_logits: torch.Tensor, allowed: torch.Tensor
    ) -> list[list[list[int]]]:
        """Greedy-grouped argmax tags, restricted to ``allowed`` ``(B, L)`` positions (others count as O)."""
        tags = bio_logits.argmax(-1).masked_fill(~allowed.bool(), O)
        return [group_spans(row.tolist()) for row in tags]

    # ----------------------------------------------------------------------------- forward
    def forward(
        self, batch: PlumBatch, *, span_source: Literal["target", "predicted"] = "target"
    ) -> PlumOutput:
        """Run PLUM on a collated batch (module docstring).

        Args:
            batch: from :meth:`PlumProcessor.collate`, on the model's device.
            span_source: ``"target"`` segments the batch's ground-truth spans (training, and the
                benchmark's teacher-forced masks); ``"predicted"`` segments the tagger's own spans,
                taken from the last answer's tokens only (where the tagger is trained).
        """
        image_emb = self.image_embeddings(batch.sam_pixel_values)  # (N, D, h, w)
        hidden, logits = self.language_model(
            batch.input_ids, batch.attention_mask, batch.pixel_values, batch.image_index
        )
        text_positions = batch.attention_mask.bool() & (batch.input_ids != self.image_token_id)
        bio_logits = self.tag_spans(hidden, batch.attention_mask)
        if span_source == "target":
            spans = batch.spans
        elif span_source == "predicted":
            answer = text_positions & (batch.bio_labels != BIO_IGNORE)
            # Rows without an answer region (generation prompts) fall back to every text position.
            has_answer = answer.any(dim=1, keepdim=True)
            allowed = torch.where(has_answer, answer, text_positions)
            spans = self.predicted_spans(bio_logits, allowed)
        else:
            raise ValueError(f"span_source must be 'target' or 'predicted', got {span_source!r}")
        out = PlumOutput(
            logits=logits, hidden=hidden, bio_logits=bio_logits, text_positions=text_positions
        )
        out.spans = [list(map(list, s)) for s in spans]
        results = self.segment_batch(
            hidden,
            spans,
            [image_emb[int(i)] for i in batch.image_index],
            batch.original_sizes,
            batch.sam_input_sizes,
        )
        for res in results:
            out.span_queries.append(res.queries)
            out.low_res_masks.append(res.low_res_masks)
            out.masks.append(res.masks)
            out.iou_predictions.append(res.iou_predictions)
        return out


def describe(model: PlumModel) -> dict[str, Any]:
    """Parameter counts per part (for logs and reports)."""

    def count(m: nn.Module | None) -> int:
        return 0 if m is None else sum(p.numel() for p in m.parameters())

    return {
        "llava": count(model.llava),
        "sam": count(model.sam),
        "span_extractor": count(model.span_extractor),
        "span_query": count(model.span_query),
        "feedback_pooler": count(model.feedback_pooler),
    }
