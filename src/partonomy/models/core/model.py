"""The segmentation LMM every family shares: a LLaVA backbone, a prompt source, a mask head and
optional feedback, all built elsewhere and injected (:mod:`partonomy.models.core.family`).

Forward, per batch (shapes: ``B`` conversations, ``N <= B`` distinct images, ``L`` tokens, LLM width
``d``, prompt width ``D``, image-embedding grid ``h x w``):

1. The mask head's image encoder once per distinct image -> ``(N, D, h, w)`` (no grad when frozen),
   unless the batch carries these embeddings already (``SegBatch.image_embeddings``).
2. CLIP + projector once per distinct image, features expanded to each image's conversations and
   scattered over the ``<image>`` positions (found by id, count checked); input encoders (GLaMM's
   region encoder) replace the embeddings of their own tokens; the LLaMA decoder gives the last
   hidden states ``(B, L, d)`` (after the final norm) and ``lm_head`` the logits ``(B, L, V)``.
3. The prompt source's tagger, if it has one, gives per-token logits (PLUM: B/I/O ``(B, L, 3)``).
4. Per conversation, per target (ground-truth spans, or the ones the prompt source finds), in
   token order: prompt tokens -> sparse prompt; the feedback loop over this conversation's earlier
   masks (or the mask head's no-mask embedding) -> dense prompt; the mask head -> low-res logits
   ``(4h, 4w)``; post-processed to the original ``(H, W)``. The k-th targets of all conversations
   share one decoder call (histories stay per conversation).

Losses live in :mod:`partonomy.models.core.losses`, outside the module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import nn

from partonomy.models.backbones.hf_vlm import VlmAdapter
from partonomy.models.core.feedback import MaskFeedbackPooler
from partonomy.models.core.mask_heads import MaskHead, SamMaskHead
from partonomy.models.core.processing import SegBatch
from partonomy.models.core.prompt_sources import PromptSource


@dataclass
class SegOutput:
    """What :meth:`SegLMM.forward` returns.

    Attributes:
        logits: ``(B, L, V)`` next-token logits; with ``forward(..., lm_rows="labelled")`` only the
            ``(N, V)`` rows of the positions in ``logit_positions``.
        hidden: ``(B, L, d)`` last hidden states (after LLaMA's final norm).
        tag_logits: ``(B, L, C)`` the prompt source's per-token logits (PLUM: O/B/I), or None.
        text_positions: ``(B, L)`` bool: real (non-padding), non-image tokens.
        spans: per conversation, the targets that were segmented (token indices, token order).
        span_queries: per conversation, per target, its first prompt token ``(D,)``.
        low_res_masks: per conversation, per target, low-res mask logits ``(1, 4h, 4w)``.
        masks: per conversation, per target, float32 mask logits ``(H, W)`` at the original image
            size (threshold at 0).
        iou_predictions: per conversation, per target, the head's predicted IoU (0-d tensor).
        logit_positions: ``(B, L)`` bool, the positions whose rows ``logits`` holds (row-major
            order), or None when ``logits`` covers every position.
        head_outputs: per conversation, per target, what else the mask head computed for its own
            loss terms (a query decoder's per-query masks and class logits); empty lists for SAM.
    """

    logits: torch.Tensor
    hidden: torch.Tensor
    tag_logits: torch.Tensor | None
    text_positions: torch.Tensor
    spans: list[list[list[int]]] = field(default_factory=list)
    span_queries: list[list[torch.Tensor]] = field(default_factory=list)
    low_res_masks: list[list[torch.Tensor]] = field(default_factory=list)
    masks: list[list[torch.Tensor]] = field(default_factory=list)
    iou_predictions: list[list[torch.Tensor]] = field(default_factory=list)
    logit_positions: torch.Tensor | None = None
    head_outputs: list[list[Any]] = field(default_factory=list)


@dataclass
class SegmentResult:
    """One conversation's segmentation: aligned per-target lists (see :class:`SegOutput`)."""

    queries: list[torch.Tensor]
    low_res_masks: list[torch.Tensor]
    masks: list[torch.Tensor]
    iou_predictions: list[torch.Tensor]
    head_outputs: list[Any] = field(default_factory=list)


def unwrap_peft(module: Any) -> Any:
    """The HF model inside a PEFT wrapper (LoRA layers are injected in place, so they stay active)."""
    get_base = getattr(module, "get_base_model", None)
    return get_base() if callable(get_base) else module


class InputEncoder(nn.Module, ABC):
    """Replaces the input embeddings of one special token (GLaMM's ``<bbox>``; later SegLLM's
    ``<seg_input>``) before the LLM runs.

    Subclasses implement :meth:`forward`; ``token_id`` is the token whose embeddings they replace.
    """

    token_id: int

    @abstractmethod
    def forward(
        self, batch: SegBatch, image_features: Mapping[str, torch.Tensor]
    ) -> list[torch.Tensor]:
        """Per conversation, ``(n_tokens, d)`` embeddings for its ``token_id`` positions, in order."""


class SegLMM(nn.Module):
    """LLaVA + prompt source + mask head (+ feedback, + input encoders).

    Args:
        llava: HF ``LlavaForConditionalGeneration`` (may be wrapped by PEFT later).
        prompt_source: which positions become mask prompts (:mod:`~partonomy.models.core.prompt_sources`).
        mask_head: prompts -> masks (:mod:`~partonomy.models.core.mask_heads`).
        feedback: PLUM's mask-feedback loop, or None to always use the no-mask dense prompt.
        input_encoders: token name -> encoder that replaces that token's embeddings (GLaMM).
        config: the config the parts were built from (kept for checkpoints and reporting).
        family: the registered family name (``plum``, ``lisa``, ``glamm``...).
        vlm: when ``llava`` is another HF VLM (Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision), its
            :class:`~partonomy.models.backbones.hf_vlm.VlmAdapter`: the model's own forward then
            scatters the image features and computes the positions (no input encoders).
    """

    llava: Any  # HF LlavaForConditionalGeneration (or its PEFT wrapper); HF types are loose

    def __init__(
        self,
        *,
        llava: nn.Module,
        prompt_source: PromptSource,
        mask_head: MaskHead,
        feedback: MaskFeedbackPooler | None = None,
        input_encoders: Mapping[str, InputEncoder] | None = None,
        config: Any = None,
        family: str = "",
        vlm: VlmAdapter | None = None,
    ) -> None:
        super().__init__()
        if vlm is not None and input_encoders:
            raise ValueError("input encoders need the LLaVA backbone; an HF VLM backbone has none")
        self.llava = llava
        self.prompt_source = prompt_source
        self.mask_head = mask_head
        self.feedback = feedback
        self.input_encoders = nn.ModuleDict(dict(input_encoders or {}))
        self.config = config
        self.family = family
        self.vlm = vlm

    # --------------------------------------------------------------------------- properties
    @property
    def image_token_id(self) -> int:
        if self.vlm is not None:
            return self.vlm.image_token_id
        return int(unwrap_peft(self.llava).config.image_token_index)

    # ------------------------------------------------------------------------------- parts
    def image_embeddings(self, sam_pixel_values: torch.Tensor) -> torch.Tensor:
        """The mask head's image embeddings ``(N, D, h, w)`` of ``(N, 3, T, T)`` inputs."""
        return self.mask_head.image_embeddings(sam_pixel_values)

    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected CLIP features ``(N, P, d)`` of ``(N, 3, S, S)`` inputs (one row per image)."""
        inner = unwrap_peft(self.llava).model
        vision_dtype = next(inner.vision_tower.parameters()).dtype
        feats = inner.get_image_features(pixel_values=pixel_values.to(vision_dtype)).pooler_output
        return torch.stack(list(feats))

    def input_embeddings(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        image_index: torch.Tensor | None = None,
        batch: SegBatch | None = None,
    ) -> torch.Tensor:
        """``(B, L, d)`` LLM input embeddings with image features (and input encoders) scattered in.

        Raises:
            ValueError: a row's number of ``<image>`` tokens differs from the number of image
                features, or an input encoder's token count differs from its embeddings.
        """
        if self.vlm is not None:
            raise NotImplementedError(
                f"{type(unwrap_peft(self.llava)).__name__}: an HF VLM backbone scatters its own "
                "image features (no LLaVA-style input embeddings, so no input encoders); its "
                "free-form generation is partonomy.models.core.generation_vlm"
            )
        base = unwrap_peft(self.llava)
        embeds = base.model.get_input_embeddings()(input_ids)  # (B, L, d)
        feats = self.vision_features(pixel_values)  # (N, P, d)
        if image_index is None:
            image_index = torch.arange(input_ids.shape[0], device=input_ids.device)
        per_row = feats[image_index.to(feats.device)].to(embeds.dtype)  # (B, P, d)
        is_image = input_ids == self.image_token_id  # (B, L)
        counts = is_image.sum(1)
        if bool((counts != per_row.shape[1]).any()):
            raise ValueError(
                f"each conversation must hold {per_row.shape[1]} <image> tokens (one per CLIP patch), "
                f"found {counts.tolist()}"
            )
        embeds = embeds.masked_scatter(is_image[..., None], per_row.reshape(-1, per_row.shape[-1]))
        encoders = self.input_encoders.items() if batch is not None else ()
        for name, module in encoders:
            encoder = cast(InputEncoder, module)
            where = input_ids == int(encoder.token_id)
            if not bool(where.any()):
                continue
            rows = encoder(batch, {"pixel_values": pixel_values})
            found = where.sum(1).tolist()
            given = [int(r.shape[0]) for r in rows]
            if found != given:
                raise ValueError(
                    f"input encoder {name!r}: {found} token(s) per conversation but {given} "
                    "embedding(s); give one input (e.g. one box) per token"
                )
            values = torch.cat([r.to(embeds.dtype) for r in rows if r.shape[0]])
            embeds = embeds.masked_scatter(where[..., None], values)
        return embeds

    def language_model(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        image_index: torch.Tensor | None = None,
        batch: SegBatch | None = None,
        logit_positions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP once per image, LLaMA once per conversation.

        Args:
            input_ids: ``(B, L)``, each row holding exactly ``image_seq_length`` ``<image>`` ids.
            attention_mask: ``(B, L)``.
            pixel_values: ``(N, 3, S, S)`` CLIP inputs.
            image_index: ``(B,)`` image of each row (default ``arange(B)``, i.e. ``N == B``).
            batch: the batch (input encoders read their boxes from it).
            logit_positions: ``(B, L)`` bool: compute the ``lm_head`` rows of these positions only
                (``(N, V)``, row-major); the vocabulary-wide rows of the others are never built.

        Returns:
            ``(hidden (B, L, d), logits (B, L, V) or (N, V))``.
        """
        base = unwrap_peft(self.llava)
        if self.vlm is not None:
            if image_index is None:
                image_index = torch.arange(input_ids.shape[0], device=input_ids.device)
            extras = batch.vision if batch is not None else {}
            rows = self.vlm.rows(pixel_values, extras, image_index)
            hidden = self.vlm.forward(base.model, input_ids, attention_mask, rows)[
                0
            ].last_hidden_state
        else:
            embeds = self.input_embeddings(input_ids, pixel_values, image_index, batch)
            # No KV cache: a full-sequence pass (training, teacher forcing); a cache only costs memory.
            out = base.model.language_model(
                inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False
            )
            hidden = out.last_hidden_state
        if logit_positions is not None:
            return hidden, base.lm_head(hidden[logit_positions])
        return hidden, base.lm_head(hidden)

    def tag_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """The prompt source's per-token logits ``(B, L, C)``, or None (``[SEG]`` sources).

        ``attention_mask`` ``(B, L)`` marks the positions that may be attended (image tokens
        included, as in PLUM's released code); a text-position mask also works.
        """
        return self.prompt_source.tag_logits(hidden, attention_mask)

    def _dense_prompts(
        self, history_masks: list[list[torch.Tensor]], history_queries: list[list[torch.Tensor]]
    ) -> torch.Tensor:
        """Dense prompts ``(R, D, h, w)`` for ``R`` answers with equally long histories."""
        r = len(history_masks)
        if self.feedback is None or not history_masks[0]:
            return self.mask_head.no_mask_dense(r)
        masks = torch.stack([torch.stack(m) for m in history_masks])  # (R, n_prev, 1, 4h, 4w)
        queries = torch.stack([torch.stack(q) for q in history_queries])  # (R, n_prev, D)
        pe = self.mask_head.positional_embedding()
        head = cast(SamMaskHead, self.mask_head)  # the feedback loop reuses SAM's mask convs
        return self.feedback(head.mask_embed, masks, queries, pe)

    def segment_batch(
        self,
        hidden: torch.Tensor | Sequence[torch.Tensor],
        spans: Sequence[Sequence[Sequence[int]]],
        image_embeddings: torch.Tensor | Sequence[torch.Tensor],
        original_sizes: Sequence[Sequence[int]],
        sam_input_sizes: Sequence[Sequence[int]],
    ) -> list[SegmentResult]:
        """Masks of several conversations' targets, each with its own feedback history.

        Target ``k`` of every conversation that has one goes through one batched decoder call (the
        history of a conversation only holds its own earlier targets, so conversations never mix);
        the number of sequential decoder calls is the longest target list, not the total.

        Args:
            hidden: per conversation ``(L, d)`` last hidden states (or a ``(B, L, d)`` tensor).
            spans: per conversation, token indices per target, in token order.
            image_embeddings: per conversation ``(D, h, w)`` embedding of its image.
            original_sizes: per conversation ``(H, W)``.
            sam_input_sizes: per conversation ``(h_in, w_in)`` before padding.

        Returns:
            One :class:`SegmentResult` per conversation (empty lists where there are no targets).
        """
        results = [SegmentResult([], [], [], []) for _ in spans]
        active = [b for b, s in enumerate(spans) if s]
        if not active:
            return results
        prompts = {b: self.prompt_source.prompts(hidden[b], spans[b]) for b in active}  # (n, t, D)
        for k in range(max(len(spans[b]) for b in active)):
            rows = [b for b in active if len(spans[b]) > k]
            dense = self._dense_prompts(
                [results[b].low_res_masks for b in rows], [results[b].queries for b in rows]
            )  # (R, D, h, w)
            low, iou = self.mask_head.decode(
                torch.stack([image_embeddings[b] for b in rows]),
                torch.stack([prompts[b][k] for b in rows]),  # (R, t, D)
                dense,
            )  # low: (R, 4h, 4w), iou: (R,)
            for i, b in enumerate(rows):
                results[b].queries.append(prompts[b][k][0])
                results[b].low_res_masks.append(low[i][None])  # (1, 4h, 4w)
                results[b].iou_predictions.append(iou[i])
        for b in active:
            low_all = torch.cat(results[b].low_res_masks)  # (n, 4h, 4w)
            masks = self.mask_head.postprocess(low_all, sam_input_sizes[b], original_sizes[b])
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
        """Masks of one conversation's targets, in order, with the feedback loop.

        Args:
            hidden: ``(L, d)`` last hidden states of the conversation.
            spans: token indices per target, in token order.
            image_embedding: ``(D, h, w)`` embedding of the conversation's image.
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
        """Mask logits ``(H, W)`` per target (see :meth:`segment_spans`)."""
        return self.segment_spans(
            hidden, spans, image_embedding, original_size, sam_input_size
        ).masks

    def find_spans(
        self, input_ids: torch.Tensor, tag_logits: torch.Tensor | None, allowed: torch.Tensor
    ) -> list[list[list[int]]]:
        """The targets the model marks itself (tagged spans, or ``[SEG]`` positions) in ``allowed``."""
        return self.prompt_source.find_spans(input_ids, tag_logits, allowed)

    # ----------------------------------------------------------------------------- forward
    def forward(
        self,
        batch: SegBatch,
        *,
        span_source: Literal["target", "predicted"] = "target",
        lm_rows: Literal["all", "labelled"] = "all",
    ) -> SegOutput:
        """Run the model on a collated batch (module docstring).

        Args:
            batch: from :meth:`SegProcessor.collate`, on the model's device.
            span_source: ``"target"`` segments the batch's ground-truth targets (training, and the
                benchmark's teacher-forced masks); ``"predicted"`` segments the targets the model
                marks itself, taken from the last answer's tokens only.
            lm_rows: ``"all"`` gives ``(B, L, V)`` logits; ``"labelled"`` only the rows that predict
                a labelled token (``batch.labels[:, t + 1] != -100``): training needs no others,
                and with a 32k vocabulary the full tensor and its gradient dominate a small model's
                step.
        """
        image_emb = batch.image_embeddings  # (N, D, h, w), precomputed (an embedding cache)
        if image_emb is None:
            image_emb = self.image_embeddings(batch.sam_pixel_values)
        positions = None
        if lm_rows == "labelled":
            positions = torch.zeros_like(batch.labels, dtype=torch.bool)
            positions[:, :-1] = batch.labels[:, 1:] != -100
        elif lm_rows != "all":
            raise ValueError(f"lm_rows must be 'all' or 'labelled', got {lm_rows!r}")
        hidden, logits = self.language_model(
            batch.input_ids,
            batch.attention_mask,
            batch.pixel_values,
            batch.image_index,
            batch,
            logit_positions=positions,
        )
        text_positions = batch.attention_mask.bool() & (batch.input_ids != self.image_token_id)
        tag_logits = self.tag_logits(hidden, batch.attention_mask)
        if span_source == "target":
            spans = batch.spans
        elif span_source == "predicted":
            answer = torch.zeros_like(text_positions)
            for row, (lo, hi) in enumerate(zip(batch.answer_starts, batch.answer_ends)):
                answer[row, lo:hi] = True
            answer &= text_positions
            # Rows without an answer region (generation prompts) fall back to every text position.
            has_answer = answer.any(dim=1, keepdim=True)
            allowed = torch.where(has_answer, answer, text_positions)
            spans = self.find_spans(batch.input_ids, tag_logits, allowed)
        else:
            raise ValueError(f"span_source must be 'target' or 'predicted', got {span_source!r}")
        out = SegOutput(
            logits=logits,
            hidden=hidden,
            tag_logits=tag_logits,
            text_positions=text_positions,
            logit_positions=positions,
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
            out.head_outputs.append(res.head_outputs)
        return out


def describe(model: SegLMM) -> dict[str, Any]:
    """Parameter counts per part (for logs and reports)."""

    def count(m: nn.Module | None) -> int:
        return 0 if m is None else sum(p.numel() for p in m.parameters())

    return {
        "llava": count(model.llava),
        "mask_head": count(model.mask_head),
        "prompt_source": count(model.prompt_source),
        "feedback": count(model.feedback),
        "input_encoders": count(model.input_encoders),
    }
