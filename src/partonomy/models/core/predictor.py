"""A segmentation LMM as a benchmark model and as a free-form assistant (``partonomy eval
--model plum|lisa|glamm``, ``partonomy predict --model ...``). Nothing here is family-specific: the
family's target scheme marks the parts (PLUM: plain names tagged B/I/O; LISA / GLaMM: a ``[SEG]``
after each part name, written into every answer choice as the original PARTONOMY code did), and
its prompt source finds the targets in generated text (tagged spans, or ``[SEG]`` tokens).

Benchmark mode (:meth:`SegPredictor.predict`, the :class:`~partonomy.eval.protocol.GroundingModel`
protocol), per batch of questions:

1. Each distinct image's mask-head embedding is computed once (batched) and cached per image content.
2. Every question's 5 answer choices are scored by mean token cross-entropy with a shared prefix
   (:mod:`partonomy.models.core.scoring`) over the family's answer text, so a ``[SEG]`` family's
   ``[SEG]`` tokens are scored like every other answer token (as in the original); part_to_whole /
   whole_to_part also score the object question's choices, conditioned on the ground-truth first
   answer (``EvalItem.part_history`` / ``object_history``). ``choice_score``: ``conversation`` (the
   paper's) or ``answer``; the other mode's scores are written to the prediction line as an extra
   (``choice_scores_<mode>`` / ``object_choice_scores_<mode>``).
3. Masks are teacher-forced on the correct answer: its parts are located in its tokens (PLUM: every
   occurrence tagged, :func:`~partonomy.models.plum.bio.find_part_spans`; ``[SEG]`` families: the
   ``[SEG]`` after each name), the mask head runs per target in token order (with the feedback
   loop where the family has one), at the original resolution, thresholded at logit > 0. The
   hidden states come from the scoring pass (the correct choice's row), so no extra LM forward.
   **One mask per part name: a part with several spans takes its first span's mask** (all spans
   still feed the feedback loop). A part whose name is not found in the answer text (e.g. a
   synonym in the answer) gets no mask; it is listed in the extra ``unmatched_parts`` and scored
   as missing.

Free-form mode (:meth:`SegPredictor.answer`): greedy generation with a KV cache
(:mod:`partonomy.models.core.generation`), then the prompt source over the hidden states gathered
while generating (PLUM: greedy B/I grouping restricted to the answer tokens; ``[SEG]`` families:
every generated ``[SEG]``), one mask per target. With ``highlight`` (span-prompt families only), the
named phrases are matched in the answer text instead and become the spans (highlight-to-segment,
the original PLUM's ``prompt_user_input``).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from partonomy.errors import ConfigError
from partonomy.eval.protocol import (
    EvalItem,
    FreeFormAnswer,
    ModelAnswer,
    ReferQuery,
    Span,
    Turn,
    VqaQuery,
)
from partonomy.io.qa_pairs import OBJECT_QUESTION_TYPES
from partonomy.models.backbones.preprocess import clip_preprocess, sam_normalize, sam_resize
from partonomy.models.backbones.sam_fast import compile_blocks
from partonomy.models.core.embedding_cache import EmbeddingCache, image_key
from partonomy.models.core.generation import (
    Generation,
    TextSpan,
    char_span,
    decode_with_offsets,
    find_phrases,
    generate,
)
from partonomy.models.core.generation_vlm import lm_vision_input
from partonomy.models.core.regions import Box, with_box_tokens
from partonomy.models.core.scoring import (
    CHOICE_SCORES,
    LAYOUTS,
    ChoiceGroup,
    Layout,
    conversation_mask,
    score_groups,
)

if TYPE_CHECKING:
    from partonomy.models.core.model import SegLMM
    from partonomy.models.core.processing import SegExample, SegProcessor

logger = logging.getLogger(__name__)

MASK_THRESHOLD = 0.0
"""Mask logits above this are foreground (the paper's ``logit > 0``)."""


@dataclass(eq=False)
class GeneratedAnswer:
    """A generated answer before span tagging.

    Attributes:
        prompt: the encoded prompt (image inputs, sizes, ``input_ids`` up to ``ASSISTANT:``).
        generation: tokens and hidden states of prompt + answer.
        text: the answer text (special tokens skipped).
        offsets: per answer token, its ``(start, end)`` characters in ``text``.
    """

    prompt: SegExample
    generation: Generation
    text: str
    offsets: list[tuple[int, int]]


@dataclass(eq=False)
class PreparedBatch:
    """A batch of benchmark questions after the CPU side (:meth:`SegPredictor._prepare`).

    Attributes:
        items: the questions.
        keys: per question, its image's content key.
        sam_inputs: per distinct key, SAM's ``(3, T, T)`` float32 input, or with ``on_device`` its
            ``(h, w, 3)`` uint8 resize (normalised and padded on the device).
        on_device: see ``sam_inputs``.
        groups: the choice groups to score: per question its part group, then its object group.
        part_group, object_group: per question, the index of its groups (None: no object group).
        correct: per question, the encoded correct answer (its spans prompt the masks).
    """

    items: list[EvalItem]
    keys: list[str]
    sam_inputs: dict[str, torch.Tensor]
    on_device: bool
    groups: list[ChoiceGroup] = field(default_factory=list)
    part_group: list[int] = field(default_factory=list)
    object_group: list[int | None] = field(default_factory=list)
    correct: list[SegExample] = field(default_factory=list)


def _size(image: np.ndarray) -> tuple[int, int]:
    return int(image.shape[0]), int(image.shape[1])


def _hw(resized: torch.Tensor) -> tuple[int, int]:
    return int(resized.shape[0]), int(resized.shape[1])


class SegPredictor:
    """A segmentation LMM at inference: holds the model and processor, caches image embeddings.

    Args:
        model: a :class:`~partonomy.models.core.model.SegLMM` (put in eval mode here).
        processor: its :class:`~partonomy.models.core.processing.SegProcessor`.
        batch_size: questions scored together in one :meth:`predict` step.
        choice_score: ``"conversation"`` (the paper's) or ``"answer"`` (module docstring).
        max_new_tokens: generation length limit of :meth:`answer` (the sequence limit of the
            processor, ``max_length``, applies too).
        generation: ``"loop"`` (own KV-cached greedy loop, no warm-up) or ``"static"`` (HF
            ``generate`` over a static cache, compiled with CUDA graphs on a GPU: ~30 s once, then
            ~3x the tokens/s; for many free-form answers).
        layout: how the answer continuations run over the shared prefix: ``"packed"`` (one row
            per question, a 4-D mask; the default, fastest) or ``"expand"`` (one row per choice
            over a copied prefix cache); see :func:`~partonomy.models.core.scoring.score_groups`.
        max_rows: answer-choice rows per continuation forward (``expand`` layout).
        image_cache: how many SAM image embeddings to keep (least recently used are dropped).
        pipeline: benchmark mode overlaps the CPU side of the next batch (image preprocessing in
            threads, tokenising) with the device work of the current one and normalises SAM's
            input on the device; False runs every step in turn on the calling thread (same
            outputs: tested); None (default): on when the model is on a GPU (on a CPU the
            threads would compete with the model for the same cores).
        compile_encoder: ``torch.compile`` the mask head's ViT blocks (regional: a few seconds
            to tens of seconds once per process, on a GPU; no effect on the conv encoder).
        embedding_cache: a directory of :mod:`~partonomy.models.core.embedding_cache` (``partonomy
            cache-embeddings``): image embeddings are read from it instead of running the encoder,
            and the ones computed here are added to it.
    """

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
        compile_encoder: bool = False,
        embedding_cache: str | None = None,
    ) -> None:
        if choice_score not in CHOICE_SCORES:
            raise ConfigError(
                f"choice_score must be one of {', '.join(CHOICE_SCORES)}, got {choice_score!r}"
            )
        if generation not in ("loop", "static"):
            raise ConfigError(f"generation must be 'loop' or 'static', got {generation!r}")
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
        if compile_encoder:
            compile_blocks(cast(Any, self.model.mask_head).sam.vision_encoder)
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

    # -------------------------------------------------------------------- benchmark mode
    def _group(self, examples: list[SegExample], keep: int | None) -> ChoiceGroup:
        image_id = self.processor.image_token_id
        answer_masks = []
        for ex in examples:
            mask = torch.zeros_like(ex.input_ids, dtype=torch.bool)
            mask[ex.answer_start : ex.answer_end] = True
            answer_masks.append(mask)
        return ChoiceGroup(
            input_ids=[ex.input_ids for ex in examples],
            scored=[
                conversation_mask(ex.input_ids, ex.attention_mask, image_id) for ex in examples
            ],
            answer=answer_masks,
            pixel_values=examples[0].pixel_values,
            keep_hidden=keep,
            vision=examples[0].vision,
        )

    @torch.no_grad()
    def predict(self, items: Sequence[EvalItem]) -> list[ModelAnswer]:
        """Answer benchmark questions (module docstring), ``batch_size`` at a time, in order."""
        return [a for answers in self.predict_batches([items]) for a in answers]

    @torch.no_grad()
    def predict_batches(self, batches: Iterable[Sequence[EvalItem]]) -> Iterator[list[ModelAnswer]]:
        """Answer a stream of batches, one answer list per batch, in order.

        With ``pipeline`` the CPU side of the next ``batch_size`` questions (pulling them from
        ``batches``, which may decode images as it goes; preprocessing; tokenising) runs in a
        background thread while the device answers the current ones.
        """

        def chunks() -> Iterator[tuple[list[EvalItem], bool]]:
            for batch in batches:
                items = list(batch)
                if not items:
                    yield [], True
                for start in range(0, len(items), self.batch_size):
                    end = start + self.batch_size
                    yield items[start:end], end >= len(items)

        done: list[ModelAnswer] = []
        for prepared, last in self._prepared(chunks()):
            done.extend(self._run(prepared) if prepared.items else [])
            if last:
                yield done
                done = []

    def _prepared(
        self, chunks: Iterator[tuple[list[EvalItem], bool]]
    ) -> Iterator[tuple[PreparedBatch, bool]]:
        """``chunks`` prepared on the CPU; one chunk ahead in a worker thread with ``pipeline``."""
        if not self.pipeline:
            for items, last in chunks:
                yield self._prepare(items, None), last
            return
        workers = max(1, min(8, (os.cpu_count() or 1)))
        with (
            ThreadPoolExecutor(1, thread_name_prefix="partonomy-prepare") as worker,
            ThreadPoolExecutor(workers, thread_name_prefix="partonomy-image") as images,
        ):

            def step() -> tuple[PreparedBatch, bool] | None:
                got = next(chunks, None)
                return None if got is None else (self._prepare(got[0], images), got[1])

            ahead = worker.submit(step)
            while (got := ahead.result()) is not None:
                ahead = worker.submit(step)  # the next chunk's CPU work overlaps this one's
                yield got

    def _prepare(self, items: Sequence[EvalItem], pool: ThreadPoolExecutor | None) -> PreparedBatch:
        """The CPU side of a batch: image preprocessing and every answer choice encoded.

        Without a ``pool`` (the plain path) each image is preprocessed completely on the CPU.
        With one, images are preprocessed in its threads and SAM's input stops at the uint8
        resize (pinned): normalising and padding run on the device in :meth:`_run`, with
        bit-identical results (:func:`~partonomy.models.backbones.preprocess.sam_normalize`).
        """
        keys = [image_key(item.image) for item in items]
        if pool is None:
            pixels = [self.processor.preprocess_image(item.image) for item in items]
            sam_inputs: dict[str, torch.Tensor] = {}
            for key, p in zip(keys, pixels, strict=True):
                sam_inputs.setdefault(key, p[1])
        else:
            pin = self.device.type == "cuda"
            firsts: dict[str, int] = {}  # each distinct image once
            for i, key in enumerate(keys):
                firsts.setdefault(key, i)
            resized = dict(
                zip(
                    firsts,
                    pool.map(lambda i: self._sam_resized(items[i].image, pin), firsts.values()),
                    strict=True,
                )
            )
            clips = list(
                pool.map(
                    lambda item: torch.from_numpy(
                        clip_preprocess(item.image, self.processor.clip_image_size)
                    ),
                    items,
                )
            )
            empty = torch.empty(0)  # SAM's input is built on the device from `resized`
            pixels = [
                (clip, empty, _size(item.image), _hw(resized[key]))
                for item, key, clip in zip(items, keys, clips, strict=True)
            ]
            sam_inputs = resized
        prepared = PreparedBatch(list(items), keys, sam_inputs, bool(pool is not None))
        for item, key, pix in zip(items, keys, pixels, strict=True):
            qa = item.qa
            part = self.processor.encode_choices(
                item.image,
                item.part_history(),
                qa.question,
                qa.answer_choices,
                parts=qa.answer_parts,
                strict=False,
                image_key=key,
                pixels=pix,
            )
            prepared.part_group.append(len(prepared.groups))
            prepared.groups.append(self._group(part, qa.correct_index))
            prepared.correct.append(part[qa.correct_index])
            if qa.question_type in OBJECT_QUESTION_TYPES and qa.object_question is not None:
                assert qa.object_answer_choices is not None
                obj = self.processor.encode_choices(
                    item.image,
                    item.object_history(),
                    qa.object_question,
                    qa.object_answer_choices,
                    image_key=key,
                    pixels=pix,
                )
                prepared.object_group.append(len(prepared.groups))
                prepared.groups.append(self._group(obj, None))
            else:
                prepared.object_group.append(None)
        return prepared

    def _sam_resized(self, image: np.ndarray, pin: bool) -> torch.Tensor:
        resized = torch.from_numpy(sam_resize(image, self.processor.sam_image_size))
        return resized.pin_memory() if pin else resized

    def _run(self, prepared: PreparedBatch) -> list[ModelAnswer]:
        """The device side of a batch: SAM embeddings (queued first), choice scoring, then the
        masks of every question in one :meth:`SegLMM.segment_batch` call (the k-th targets of all
        questions share a decoder call) and one device-to-host copy of all of them."""
        side = self.processor.sam_image_size

        def sam_input(key: str) -> torch.Tensor:
            value = prepared.sam_inputs[key]
            if not prepared.on_device:
                return value
            return sam_normalize(value.to(self.device, non_blocking=True), side)

        embeddings = self._embed(prepared.keys, sam_input)
        scores = score_groups(
            self.model.llava,
            prepared.groups,
            image_token_id=self.processor.image_token_id,
            pad_token_id=self._pad_id(),
            max_rows=self.max_rows,
            layout=self.layout,
            vlm=self.model.vlm,
        )
        correct = prepared.correct
        hidden = [scores[g].hidden for g in prepared.part_group]
        masks = self._teacher_forced_masks(correct, hidden, embeddings)
        other = "answer" if self.choice_score == "conversation" else "conversation"
        out = []
        for i, ex in enumerate(correct):
            part_scores = scores[prepared.part_group[i]]
            extra: dict[str, object] = {f"choice_scores_{other}": part_scores.select(other)}
            object_scores = None
            g = prepared.object_group[i]
            if g is not None:
                object_scores = scores[g].select(self.choice_score)
                extra[f"object_choice_scores_{other}"] = scores[g].select(other)
            if ex.unmatched_parts:
                extra["unmatched_parts"] = list(ex.unmatched_parts)
            out.append(
                ModelAnswer(
                    choice_scores=part_scores.select(self.choice_score),
                    object_choice_scores=object_scores,
                    masks=masks[i],
                    extra=extra,
                )
            )
        return out

    def _teacher_forced_masks(
        self,
        examples: Sequence[SegExample],
        hidden: Sequence[torch.Tensor | None],
        embeddings: Sequence[torch.Tensor],
    ) -> list[dict[str, np.ndarray]]:
        """Per example, one bool mask per located part (its first span), from one batched
        :meth:`SegLMM.segment_batch` call; thresholded on the device and copied to the host once."""
        assert all(state is not None for state in hidden)
        results = self.model.segment_batch(
            cast("list[torch.Tensor]", hidden),
            [ex.spans for ex in examples],
            embeddings,
            [ex.original_size for ex in examples],
            [ex.sam_input_size for ex in examples],
        )
        picked: list[list[tuple[str, int]]] = []  # per example: (part, index of its first span)
        flat: list[torch.Tensor] = []
        for ex, res in zip(examples, results, strict=True):
            first: dict[str, int] = {}
            for k, part in enumerate(ex.span_parts):
                first.setdefault(part, k)
            picked.append(list(first.items()))
            flat.extend((res.masks[k] > MASK_THRESHOLD).reshape(-1) for k in first.values())
        host = torch.cat(flat).cpu().numpy() if flat else np.zeros(0, dtype=bool)
        out: list[dict[str, np.ndarray]] = []
        offset = 0
        for ex, parts in zip(examples, picked, strict=True):
            h, w = ex.original_size
            masks = {}
            for part, _ in parts:
                masks[part] = host[offset : offset + h * w].reshape(h, w)
                offset += h * w
            out.append(masks)
        return out

    # -------------------------------------------------------------------- free-form mode
    @torch.no_grad()
    def generate(
        self,
        image: np.ndarray,
        question: str,
        *,
        history: Sequence[Turn] = (),
        boxes: Sequence[Box] = (),
        on_token: Callable[[str], None] | None = None,
    ) -> GeneratedAnswer:
        """Greedy-generate an answer with a KV cache (no spans, no masks); see :meth:`answer`.

        ``on_token``, when given, is called after each generated token (the stop token excluded)
        with the answer text decoded so far, to stream it.
        """
        question = with_box_tokens(question, len(boxes))
        prompt = self.processor.encode(image, list(history), question, None, boxes=boxes)
        plen = int(prompt.input_ids.shape[0])
        budget = min(self.max_new_tokens, self.processor.max_length - plen)
        if budget < 1:
            raise ConfigError(
                f"the prompt is {plen} tokens, which leaves no room to answer within the model's "
                f"max_length ({self.processor.max_length}); shorten the question or history"
            )
        embeds = None
        if boxes:  # input encoders (GLaMM's regions) replace their tokens' embeddings
            batch = self.processor.collate([prompt]).to(self.device)
            embeds = [
                self.model.input_embeddings(
                    batch.input_ids, batch.pixel_values, batch.image_index, batch
                )[0]
            ]
        gen = generate(
            self.model.llava,
            [prompt.input_ids],
            lm_vision_input(self.model, [prompt]),
            stop_token_ids=[int(self.tokenizer.eos_token_id)],
            max_new_tokens=budget,
            pad_token_id=self._pad_id(),
            static_cache=self.generation == "static" and embeds is None,
            prompt_embeds=embeds,
            on_token=None if on_token is None else self._text_stream(on_token),
            banned_token_ids=self.placeholder_token_ids(),
        )[0]
        text, offsets = decode_with_offsets(self.tokenizer, gen.new_tokens.tolist())
        return GeneratedAnswer(prompt, gen, text, offsets)

    def _text_stream(self, on_text: Callable[[str], None]) -> Callable[[torch.Tensor], None]:
        """A per-step token callback (batch of one) that calls ``on_text`` with the text so far."""
        stop = int(self.tokenizer.eos_token_id)
        ids: list[int] = []

        def step(tokens: torch.Tensor) -> None:
            token = int(tokens[0])
            if token == stop:
                return
            ids.append(token)
            on_text(self.tokenizer.decode(ids, skip_special_tokens=True))

        return step

    @torch.no_grad()
    def answer(
        self,
        image: np.ndarray,
        question: str,
        *,
        highlight: Sequence[str] | None = None,
        history: Sequence[Turn] = (),
        boxes: Sequence[Box] = (),
        on_token: Callable[[str], None] | None = None,
    ) -> FreeFormAnswer:
        """Generate an answer to ``question`` about ``image`` and segment the parts it names.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            question: the user's question.
            highlight: phrases of the answer to segment instead of the tagger's spans
                (case-insensitive whole-word matches, every occurrence; a phrase that does not
                occur is skipped with a logged warning).
            history: earlier (question, answer) turns of the conversation.
            boxes: regions ``(x0, y0, x1, y1)`` in image pixels for a model with a region
                encoder (GLaMM), one per ``<bbox>`` in the question (appended when it has none).
            on_token: called after each generated token with the answer text so far (to
                stream it); spans and masks come only with the returned answer.

        Returns:
            The answer text, its spans (character offsets into the text) and one bool ``(H, W)``
            mask per span, in text order.
        """
        if highlight is not None and not self.model.prompt_source.accepts_text_spans:
            raise ConfigError(
                f"highlight-to-segment needs a model that prompts masks with text spans (plum); "
                f"{self.name} prompts them with {self.model.prompt_source.__class__.__name__}"
            )
        out = self.generate(image, question, history=history, boxes=boxes, on_token=on_token)
        hidden, plen, text = out.generation.hidden, out.generation.prompt_length, out.text
        assert hidden is not None
        if highlight is not None:
            found = find_phrases(text, out.offsets, highlight)
            missing = [p for p in highlight if p.strip() and not _phrase_found(p, text, found)]
            if missing:
                logger.warning("highlight phrases not in the answer: %s", ", ".join(missing))
            targets = [[plen + t for t in span.tokens] for span in found]
        else:
            targets, found = self._model_spans(out)
        embedding = self.image_embeddings([image_key(image)], [out.prompt.sam_pixel_values])[0]
        logits = self.model.segment(
            hidden, targets, embedding, out.prompt.original_size, out.prompt.sam_input_size
        )
        return FreeFormAnswer(
            text=text,
            spans=[Span(s.start, s.end, text[s.start : s.end]) for s in found],
            masks=[(m > MASK_THRESHOLD).cpu().numpy() for m in logits],
        )

    def _model_spans(self, out: GeneratedAnswer) -> tuple[list[list[int]], list[TextSpan]]:
        """The targets the model marks in its answer: (absolute token spans for the mask head,
        their text spans). A tagged span is its own text; a ``[SEG]`` token's text is the phrase
        written just before it (:func:`phrase_before`)."""
        hidden, plen = out.generation.hidden, out.generation.prompt_length
        assert hidden is not None
        length = hidden.shape[0]
        attention = torch.ones((1, length), dtype=torch.long, device=hidden.device)
        tags = self.model.tag_logits(hidden[None], attention)
        allowed = torch.zeros((1, length), dtype=torch.bool, device=hidden.device)
        allowed[0, plen:] = True
        sequence = out.generation.sequence.to(hidden.device)[None]
        spans = self.model.find_spans(sequence, tags, allowed)[0]
        new_ids = out.generation.new_tokens.tolist()
        targets, texts = [], []
        for span in spans:
            tokens = [t - plen for t in span]
            if not self.model.prompt_source.accepts_text_spans:
                tokens = phrase_before(self.tokenizer, new_ids, out.offsets, out.text, tokens[0])
            if not tokens:
                continue
            ts = char_span(out.text, out.offsets, tokens)
            if ts.end > ts.start:  # a span of special or whitespace tokens has no text
                targets.append(list(span))
                texts.append(ts)
        return targets, texts

    # ----------------------------------------------------------------- other tasks
    @torch.no_grad()
    def answer_vqa(self, queries: Sequence[VqaQuery]) -> list[str]:
        """Free-form VQA answers (:class:`~partonomy.eval.protocol.VqaModel`), ``batch_size`` at a
        time: each question in the family's LLaVA v1 template (image first), greedy with the KV
        cache (:func:`~partonomy.models.core.generation.generate`; ``generation: static`` uses HF's static
        cache), stopped at ``</s>`` or ``max_new_tokens``; the text is decoded without special
        tokens and stripped. No span tagging, no masks."""
        out: list[str] = []
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start : start + self.batch_size]
            prompts = [self.processor.encode(q.image, [], q.question, None) for q in batch]
            longest = max(int(p.input_ids.shape[0]) for p in prompts)
            budget = min(self.max_new_tokens, self.processor.max_length - longest)
            if budget < 1:
                raise ConfigError(
                    f"question_id {batch[0].question_id!r}: the prompt is {longest} tokens, which "
                    f"leaves no room to answer within max_length ({self.processor.max_length})"
                )
            gens = generate(
                self.model.llava,
                [p.input_ids for p in prompts],
                lm_vision_input(self.model, prompts),
                stop_token_ids=[int(self.tokenizer.eos_token_id)],
                max_new_tokens=budget,
                pad_token_id=self._pad_id(),
                return_hidden=False,
                static_cache=self.generation == "static",
                banned_token_ids=self.placeholder_token_ids(),
            )
            out.extend(
                self.tokenizer.decode(g.new_tokens.tolist(), skip_special_tokens=True).strip()
                for g in gens
            )
        return out

    @torch.no_grad()
    def segment_referring(self, queries: Sequence[ReferQuery]) -> list[np.ndarray]:
        """Teacher-forced referring segmentation (:class:`~partonomy.eval.protocol.ReferringSegmenter`):
        the query's question and forced ``answer`` in one forward (the scoring pass, which keeps
        the hidden states). The ``span`` is marked in the answer by the family's target scheme
        (PLUM: its tokens, first occurrence; LISA / GLaMM: a ``[SEG]`` written after it) and
        prompts the mask head (with the feedback loop where the family has one), at the original
        resolution, logit > 0. A span not found in the answer gives an empty mask (logged)."""
        out: list[np.ndarray] = []
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start : start + self.batch_size]
            keys = [image_key(q.image) for q in batch]
            examples = [
                self.processor.encode(
                    q.image,
                    [],
                    q.question,
                    q.answer,
                    parts=[q.span],
                    strict=False,
                    image_key=k,
                    truncate=False,
                )
                for q, k in zip(batch, keys, strict=True)
            ]
            scores = score_groups(
                self.model.llava,
                [self._group([ex], 0) for ex in examples],
                image_token_id=self.processor.image_token_id,
                pad_token_id=self._pad_id(),
                max_rows=self.max_rows,
                layout=self.layout,
            )
            embeddings = self.image_embeddings(keys, [ex.sam_pixel_values for ex in examples])
            masks = self._teacher_forced_masks(examples, [sc.hidden for sc in scores], embeddings)
            for q, ex, found in zip(batch, examples, masks, strict=True):
                if ex.unmatched_parts:
                    logger.warning(
                        "question_id %r: span %r not in the answer", q.question_id, q.span
                    )
                out.append(found.get(q.span, np.zeros(ex.original_size, dtype=bool)))
        return out


def phrase_before(
    tokenizer: Any,
    ids: Sequence[int],
    offsets: Sequence[tuple[int, int]],
    text: str,
    index: int,
) -> list[int]:
    """The answer tokens of the phrase a mask token at ``index`` refers to.

    GLaMM's ``<p> phrase </p> [SEG]``: the tokens between the phrase tags. Otherwise (LISA's
    "a wing [SEG]"): the last word before it (letters, digits, ``-`` and ``'``). Empty when there
    is none.
    """
    pieces = tokenizer.convert_ids_to_tokens([int(t) for t in ids])
    k = index - 1
    while k >= 0 and offsets[k][0] == offsets[k][1] and pieces[k] != "</p>":
        k -= 1  # skip special tokens other than a closing phrase tag
    if k >= 0 and pieces[k] == "</p>":
        close, start = k, k - 1
        while start >= 0 and pieces[start] != "<p>":
            start -= 1
        return list(range(start + 1, close)) if start >= 0 and start + 1 < close else []
    end = offsets[index][0]
    while end > 0 and not (text[end - 1].isalnum() or text[end - 1] in "-'"):
        end -= 1
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "-'"):
        start -= 1
    return [j for j, (s, e) in enumerate(offsets[:index]) if s < end and e > start and e > s]


def _phrase_found(phrase: str, text: str, found: Sequence[TextSpan]) -> bool:
    needle = phrase.strip().lower()
    return any(text[s.start : s.end].lower() == needle for s in found)
