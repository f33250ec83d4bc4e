"""Turning (image, conversation, part masks) into a segmentation LMM's tensors, and batching them.

Prompt template (LLaVA v1, ``conversation="llava_v1"``)::

    {SYSTEM} USER: {image_prompt}{q1} ASSISTANT: {a1}</s>USER: {q2} ASSISTANT: {a2}</s>

``{image_prompt}`` is ``{image}\\n`` (LLaVA, LISA, PLUM) or GLaMM's "The {image} provides an
overview of the picture.\\n"; ``{image}`` is ``<image>`` (``<im_start><image><im_end>`` for the
``llava_v1`` layout) and is expanded to one ``<image>`` token per CLIP patch (the count is read from
the vision config). Token sequences start with BOS. The LM loss covers every assistant answer and
its ``</s>`` (``labels`` = the token id there, -100 elsewhere).

The family's *target scheme* (:mod:`partonomy.models.core.targets`) decides how the last answer's
part names become targets: it rewrites the answer (LISA writes ``[SEG]`` after each part) and
locates each target's token span. Tag labels (PLUM's O/B/I) cover the **last** answer only (-100
on image, prompt, earlier turns and padding), because only the last answer's parts carry masks.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from partonomy.models.backbones.llava import IM_END_TOKEN, IM_START_TOKEN, IMAGE_TOKEN
from partonomy.models.backbones.preprocess import VisionInput, clip_preprocess, sam_preprocess
from partonomy.models.core.targets import IGNORE_LABEL, TargetScheme

LABEL_IGNORE = -100
"""``labels`` value of tokens without LM loss."""
LLAVA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
USER, ASSISTANT = "USER", "ASSISTANT"
TURN_END = "</s>"


@dataclass
class SegExample:
    """One encoded conversation.

    Attributes:
        input_ids: ``(L,)`` int64, BOS first, one ``<image>`` id per CLIP patch.
        attention_mask: ``(L,)`` int64 ones.
        labels: ``(L,)`` int64: token id on assistant-answer tokens (and their ``</s>``), -100 elsewhere.
        tag_labels: ``(L,)`` int64 tagger labels of the target scheme (PLUM: O/B/I = 0/1/2 on the
            last answer's tokens), -100 elsewhere (everywhere for ``[SEG]`` schemes).
        spans: token indices per target, in token order.
        span_parts: the part name of each span (the ``span_masks`` key it was built from).
        unmatched_parts: parts that could not be placed in the answer (lenient encoding only).
        span_targets: ``(H, W)`` uint8 target mask per span (0/1, 255 = ignore), aligned with ``spans``.
        pixel_values: ``(3, S, S)`` float32 CLIP input.
        sam_pixel_values: ``(3, T, T)`` float32 SAM input (longest-side resize + pad).
        original_size: ``(H, W)`` of the image.
        sam_input_size: ``(h, w)`` of the resized image inside the padded SAM input.
        answer_start: index of the last answer's first token (``L`` when there is no answer).
        answer_end: one past its last token (its ``</s>``).
        image_key: examples with equal non-None keys share one image in a batch (CLIP and SAM run once).
        vision: the LM's other per-image vision tensors (an HF VLM's ``image_grid_thw`` /
            ``image_sizes``, leading axis 1); empty for LLaVA.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    tag_labels: torch.Tensor
    spans: list[list[int]]
    span_parts: list[str]
    span_targets: list[np.ndarray]
    pixel_values: torch.Tensor
    sam_pixel_values: torch.Tensor
    original_size: tuple[int, int]
    sam_input_size: tuple[int, int]
    answer_start: int
    answer_end: int
    image_key: Hashable | None = None
    unmatched_parts: list[str] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    vision: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class SegBatch:
    """Right-padded conversations plus their (deduplicated) images.

    Attributes:
        input_ids, attention_mask, labels, tag_labels: ``(B, L)`` int64 (pad id / 0 / -100 / -100).
        pixel_values: ``(N, 3, S, S)`` CLIP inputs of the ``N <= B`` distinct images.
        sam_pixel_values: ``(N, 3, T, T)`` SAM inputs.
        image_index: ``(B,)`` int64, the image of each conversation.
        original_sizes, sam_input_sizes: per conversation ``(H, W)`` and ``(h, w)``.
        spans, span_parts: per conversation, as in :class:`SegExample`.
        span_targets: per conversation, ``(H, W)`` uint8 tensors aligned with ``spans``.
        answer_starts, answer_ends: per conversation.
        boxes: per conversation, region boxes ``(x0, y0, x1, y1)`` in original-image pixels, one
            per ``<bbox>`` token in its order (GLaMM's region inputs; empty for other families).
        image_embeddings: ``(N, D, h, w)`` precomputed mask-head image embeddings of the ``N``
            images (e.g. read from an embedding cache), or None; when set, the model uses them
            instead of running its frozen image encoder on ``sam_pixel_values``.
        vision: the ``N`` images' other vision tensors, leading axis ``N`` (an HF VLM's
            ``image_grid_thw`` / ``image_sizes``); empty for LLaVA. ``pixel_values`` is then in
            the HF model's own batched layout.
        image_keys: the ``N`` images' :attr:`SegExample.image_key` (None where an example had
            none), e.g. to look their embeddings up in a cache.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    tag_labels: torch.Tensor
    pixel_values: torch.Tensor
    sam_pixel_values: torch.Tensor
    image_index: torch.Tensor
    original_sizes: list[tuple[int, int]]
    sam_input_sizes: list[tuple[int, int]]
    spans: list[list[list[int]]]
    span_parts: list[list[str]]
    span_targets: list[list[torch.Tensor]] = field(default_factory=list)
    answer_starts: list[int] = field(default_factory=list)
    answer_ends: list[int] = field(default_factory=list)
    boxes: list[list[tuple[float, float, float, float]]] = field(default_factory=list)
    image_embeddings: torch.Tensor | None = None
    vision: dict[str, torch.Tensor] = field(default_factory=dict)
    image_keys: list[Hashable | None] = field(default_factory=list)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> SegBatch:
        """A copy on ``device``; float pixel tensors also cast to ``dtype`` when given."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                cast = dtype if dtype is not None and value.is_floating_point() else None
                out[f.name] = value.to(device=device, dtype=cast)
            elif f.name == "span_targets":
                out[f.name] = [[t.to(device) for t in conv] for conv in value]
            elif f.name == "vision":
                out[f.name] = {k: v.to(device) for k, v in value.items()}
            else:
                out[f.name] = value
        return SegBatch(**out)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


class SegProcessor:
    """Prompt building, tokenisation, targets, image preprocessing and collation.

    Args:
        tokenizer: from :func:`partonomy.models.backbones.llava.load_tokenizer`.
        targets: the family's target scheme (PLUM: B/I/O spans; LISA / GLaMM: ``[SEG]`` tokens).
        image_seq_length: LM positions per image (from the vision config).
        clip_image_size: CLIP input side ``S``.
        sam_image_size: SAM input side ``T``.
        use_im_start_end: wrap the image in ``<im_start>``/``<im_end>`` (LLaVA v1 layout).
        max_length: longest sequence (image tokens included); longer ones are cut on the right.
        image_prompt: the first user turn's image part, ``{image}`` standing for the placeholder
            (``"{image}\\n"``: LLaVA; GLaMM: ``"The {image} provides an overview of the picture.\\n"``).
        image_token: the image placeholder token (``<image>``; an HF VLM's own, e.g. ``<|image_pad|>``).
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        targets: TargetScheme,
        image_seq_length: int,
        clip_image_size: int,
        sam_image_size: int,
        use_im_start_end: bool = False,
        max_length: int = 512,
        image_prompt: str = "{image}\n",
        image_token: str = IMAGE_TOKEN,
    ) -> None:
        if "{image}" not in image_prompt:
            raise ValueError(f"image_prompt must contain '{{image}}', got {image_prompt!r}")
        self.tokenizer = tokenizer
        self.targets = targets
        self.image_token = image_token
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(image_token))
        self.image_seq_length = image_seq_length
        self.clip_image_size = clip_image_size
        self.sam_image_size = sam_image_size
        self.use_im_start_end = use_im_start_end
        self.max_length = max_length
        placeholder = image_token
        if use_im_start_end:
            placeholder = IM_START_TOKEN + IMAGE_TOKEN + IM_END_TOKEN
        self.image_placeholder = placeholder
        self.image_prompt = image_prompt

    # ----------------------------------------------------------------------------------- text
    def _conversation(
        self, history: Sequence[tuple[str, str]], question: str, answer: str | None
    ) -> tuple[str, list[tuple[int, int]]]:
        """Full text and the character range of every answer (from its leading space to ``</s>``)."""
        text = LLAVA_V1_SYSTEM + " "
        ranges: list[tuple[int, int]] = []
        turns: list[tuple[str, str | None]] = [*history, (question, answer)]
        image = self.image_prompt.replace("{image}", self.image_placeholder)
        for i, (q, a) in enumerate(turns):
            user = f"{image}{q}" if i == 0 else q
            text += f"{USER}: {user} {ASSISTANT}:"
            if a is None:
                break
            # The space before the answer belongs to it: SentencePiece glues it onto the first word.
            start = len(text)
            text += f" {a}{TURN_END}"
            ranges.append((start, len(text)))
        return text, ranges

    def prompt(self, history: Sequence[tuple[str, str]], question: str) -> str:
        """LLaVA v1 text up to and including the last ``"ASSISTANT:"`` (no trailing space).

        The image placeholder appears once, in the first user turn, unexpanded.
        """
        return self._conversation(history, question, None)[0]

    def tokenize(
        self, text: str, n_image_tokens: int | None = None
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """BOS + token ids of ``text`` with the single image placeholder expanded to
        ``n_image_tokens`` copies (default ``image_seq_length``).

        Returns:
            ids and per-token character offsets into ``text`` (``(0, 0)`` for BOS; every expanded
            image token carries the placeholder's offsets).

        Raises:
            ValueError: ``text`` does not hold exactly one ``<image>``.
        """
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = [int(t) for t in enc["input_ids"]]
        offsets = [tuple(o) for o in enc["offset_mapping"]]
        where = [k for k, t in enumerate(ids) if t == self.image_token_id]
        if len(where) != 1:
            raise ValueError(
                f"a conversation must hold exactly one {IMAGE_TOKEN} token, found {len(where)} "
                "(do not write the image token in questions or answers)"
            )
        k = where[0]
        n_img = self.image_seq_length if n_image_tokens is None else n_image_tokens
        ids = ids[:k] + [self.image_token_id] * n_img + ids[k + 1 :]
        offsets = offsets[:k] + [offsets[k]] * n_img + offsets[k + 1 :]
        return [int(self.tokenizer.bos_token_id), *ids], [(0, 0), *offsets]  # type: ignore[list-item]

    # --------------------------------------------------------------------------------- images
    def preprocess_image(
        self, image: np.ndarray
    ) -> tuple[Any, torch.Tensor, tuple[int, int], tuple[int, int]]:
        """``(H, W, 3)`` uint8 -> (LM vision input: the CLIP tensor here, SAM input, ``(H, W)``,
        SAM ``(h, w)``)."""
        clip = torch.from_numpy(clip_preprocess(image, self.clip_image_size))
        sam, resized = sam_preprocess(image, self.sam_image_size)
        return clip, torch.from_numpy(sam), (int(image.shape[0]), int(image.shape[1])), resized

    def vision_input(self, pixels: Any) -> VisionInput:
        """The LM's view of an image from :meth:`preprocess_image`'s first element (LLaVA: the
        CLIP input, ``image_seq_length`` tokens; an HF VLM processor returns its own)."""
        return VisionInput(pixels, {}, self.image_seq_length)

    def collate_images(
        self, images: Sequence[VisionInput]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(pixel_values, vision)`` of a batch's ``N`` distinct images (LLaVA: stacked CLIP inputs)."""
        return torch.stack([i.pixel_values for i in images]), {}

    # ------------------------------------------------------------------------------- encoding
    def encode(
        self,
        image: np.ndarray,
        history: Sequence[tuple[str, str]],
        question: str,
        answer: str | None,
        span_masks: Mapping[str, np.ndarray] | None = None,
        *,
        parts: Sequence[str] | None = None,
        all_occurrences: bool = False,
        strict: bool = True,
        image_key: Hashable | None = None,
        boxes: Sequence[Sequence[float]] = (),
        truncate: bool = True,
        _pixels: tuple[Any, torch.Tensor, tuple[int, int], tuple[int, int]] | None = None,
    ) -> SegExample:
        """Encode one conversation.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            history: earlier (question, answer) turns; the image goes in the first user turn.
            question: the last question.
            answer: the last answer, or None for a generation prompt (no labels, no spans).
            span_masks: part name -> ``(H, W)`` mask (0/1, 255 = ignore) for the parts named in the
                last answer; each becomes a target (see the family's target scheme).
            parts: the parts named in the answer when no masks are given (scoring answer choices:
                ``[SEG]`` schemes write a token after each); default: the keys of ``span_masks``.
            all_occurrences: tag every occurrence of each part (evaluation) instead of the first
                (training); every occurrence gets that part's mask.
            strict: a part that cannot be found is an error; else it is listed in
                :attr:`SegExample.unmatched_parts` and gets no target.
            image_key: see :attr:`SegExample.image_key`.
            boxes: region boxes ``(x0, y0, x1, y1)`` in pixels, one per ``<bbox>`` in the question.
            truncate: cut sequences longer than ``max_length`` on the right (training); False keeps
                the full sequence (scoring: the original scores full sequences).

        Raises:
            ValueError: a part cannot be found in the answer (``strict``), a mask has the wrong
                size, or masks are given without an answer.
        """
        span_masks = dict(span_masks or {})
        if span_masks and answer is None:
            raise ValueError("span_masks were given but there is no answer to find the parts in")
        named = list(parts) if parts is not None else list(span_masks)
        marked: list[str] = []
        if answer is not None:
            answer, marked = self.targets.rewrite(answer, named)
        dropped = [p for p in dict.fromkeys(named) if p not in marked]
        if dropped and strict:
            raise ValueError(
                f"part(s) {', '.join(map(repr, dropped))} cannot be found in the answer {answer!r} "
                "(a part must appear verbatim as whole words)"
            )
        text, ranges = self._conversation(history, question, answer)
        clip, sam, original_size, sam_size = _pixels or self.preprocess_image(image)
        vision = self.vision_input(clip)
        ids, offsets = self.tokenize(text, vision.n_tokens)
        n = len(ids)
        labels = [LABEL_IGNORE] * n
        answer_start = answer_end = n
        for r, (lo, hi) in enumerate(ranges):
            inside = [k for k, (s, e) in enumerate(offsets) if k > 0 and e > lo and s < hi]
            for k in inside:
                labels[k] = ids[k]
            if r == len(ranges) - 1 and inside:
                answer_start, answer_end = inside[0], inside[-1] + 1
        located = self.targets.locate(
            ids,
            answer_start,
            answer_end,
            marked,
            self.tokenizer,
            all_occurrences=all_occurrences,
            strict=strict,
        )
        found = located.spans
        targets = []
        for span in found:
            if span.part not in span_masks:
                continue
            mask = np.asarray(span_masks[span.part])
            if mask.shape != original_size:
                raise ValueError(
                    f"mask of part {span.part!r} has shape {mask.shape}, the image is {original_size}"
                )
            targets.append(mask.astype(np.uint8, copy=False))
        if span_masks and len(targets) != len(found):
            raise ValueError("every located part needs a mask when masks are given")
        if truncate and n > self.max_length:  # cut on the right; cut spans and masks go too
            keep = [k for k, s in enumerate(found) if s.tokens[-1] < self.max_length]
            found = [found[k] for k in keep]
            targets = [targets[k] for k in keep] if targets else targets
            ids, labels, n = ids[: self.max_length], labels[: self.max_length], self.max_length
            answer_start, answer_end = min(answer_start, n), min(answer_end, n)
        spans = [list(s.tokens) for s in found]
        tags = self.targets.labels(n, answer_start, answer_end, spans)
        return SegExample(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.ones(n, dtype=torch.long),
            labels=torch.tensor(labels, dtype=torch.long),
            tag_labels=torch.tensor(tags, dtype=torch.long),
            spans=spans,
            span_parts=[s.part for s in found],
            span_targets=targets,
            pixel_values=vision.pixel_values,
            sam_pixel_values=sam,
            original_size=original_size,
            sam_input_size=sam_size,
            answer_start=answer_start,
            answer_end=answer_end,
            image_key=image_key,
            unmatched_parts=[*dropped, *located.unmatched],
            boxes=[tuple(float(v) for v in b) for b in boxes],  # type: ignore[misc]
            vision=vision.extras,
        )

    def encode_choices(
        self,
        image: np.ndarray,
        history: Sequence[tuple[str, str]],
        question: str,
        answers: Sequence[str],
        span_masks: Sequence[Mapping[str, np.ndarray] | None] | None = None,
        *,
        parts: Sequence[Sequence[str]] | None = None,
        all_occurrences: bool = True,
        strict: bool = True,
        image_key: Hashable | None = None,
        pixels: tuple[torch.Tensor, torch.Tensor, tuple[int, int], tuple[int, int]] | None = None,
    ) -> list[SegExample]:
        """Encode several answers to one question about one image (preprocessed once, one shared key).

        ``parts`` gives each answer's part names (see :meth:`encode`). Never truncated: every
        choice is scored on its full sequence, as in the original (a cut at ``max_length`` would
        make choices that differ only after it tie). ``pixels``: the image already preprocessed
        (:meth:`preprocess_image`'s tuple), e.g. by a caller that computes the SAM input itself.
        """
        pixels = pixels or self.preprocess_image(image)
        key = image_key if image_key is not None else object()
        masks = list(span_masks) if span_masks is not None else [None] * len(answers)
        named = list(parts) if parts is not None else [None] * len(answers)
        return [
            self.encode(
                image,
                history,
                question,
                a,
                m,
                parts=p,
                all_occurrences=all_occurrences,
                strict=strict,
                image_key=key,
                truncate=False,
                _pixels=pixels,
            )
            for a, m, p in zip(answers, masks, named, strict=True)
        ]

    # ------------------------------------------------------------------------------ collation
    def collate(self, examples: Sequence[SegExample]) -> SegBatch:
        """Right-pad sequences and deduplicate images by ``image_key`` (first appearance order)."""
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        length = max(int(e.input_ids.shape[0]) for e in examples)
        b = len(examples)
        pad = int(self.tokenizer.pad_token_id)
        input_ids = torch.full((b, length), pad, dtype=torch.long)
        attention = torch.zeros((b, length), dtype=torch.long)
        labels = torch.full((b, length), LABEL_IGNORE, dtype=torch.long)
        tags = torch.full((b, length), IGNORE_LABEL, dtype=torch.long)
        slots: dict[Any, int] = {}
        clip: list[VisionInput] = []
        sam: list[torch.Tensor] = []
        image_index: list[int] = []
        image_keys: list[Hashable | None] = []
        for row, ex in enumerate(examples):
            n = int(ex.input_ids.shape[0])
            input_ids[row, :n] = ex.input_ids
            attention[row, :n] = ex.attention_mask
            labels[row, :n] = ex.labels
            tags[row, :n] = ex.tag_labels
            key = ("row", row) if ex.image_key is None else ("key", ex.image_key)
            if key not in slots:
                slots[key] = len(clip)
                clip.append(VisionInput(ex.pixel_values, ex.vision))
                sam.append(ex.sam_pixel_values)
                image_keys.append(ex.image_key)
            image_index.append(slots[key])
        pixel_values, vision = self.collate_images(clip)
        return SegBatch(
            input_ids=input_ids,
            attention_mask=attention,
            labels=labels,
            tag_labels=tags,
            pixel_values=pixel_values,
            sam_pixel_values=torch.stack(sam),
            image_index=torch.tensor(image_index, dtype=torch.long),
            original_sizes=[e.original_size for e in examples],
            sam_input_sizes=[e.sam_input_size for e in examples],
            spans=[[list(s) for s in e.spans] for e in examples],
            span_parts=[list(e.span_parts) for e in examples],
            span_targets=[
                [torch.from_numpy(np.ascontiguousarray(t)) for t in e.span_targets]
                for e in examples
            ],
            answer_starts=[e.answer_start for e in examples],
            answer_ends=[e.answer_end for e in examples],
            boxes=[list(e.boxes) for e in examples],
            vision=vision,
            image_keys=image_keys,
        )
