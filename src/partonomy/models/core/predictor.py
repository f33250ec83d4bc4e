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

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from partonomy.models.core.generation import (
    Generation,
    TextSpan,
    char_span,
    decode_with_offsets,
    find_phrases,
    generate,
)
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


def image_key(image: np.ndarray) -> str:
    """Content key of an image: shape, dtype and a BLAKE2 hash of its bytes."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest()
    return f"{image.shape}:{image.dtype}:{digest}"


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
        missing = {}
        for key, pixels in zip(keys, sam_pixel_values, strict=True):
            if key not in self._embeddings and key not in missing:
                missing[key] = pixels
        if missing:
            batch = torch.stack(list(missing.values())).to(self.device)
            for key, emb in zip(missing, self.model.image_embeddings(batch), strict=True):
                self._embeddings[key] = emb
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
        answers: list[ModelAnswer] = []
        for start in range(0, len(items), self.batch_size):
            answers.extend(self._predict_batch(items[start : start + self.batch_size]))
        return answers

    def _predict_batch(self, items: Sequence[EvalItem]) -> list[ModelAnswer]:
        groups: list[ChoiceGroup] = []
        part_group: list[int] = []
        object_group: list[int | None] = []
        correct: list[SegExample] = []
        keys = []
        for item in items:
            qa = item.qa
            key = image_key(item.image)
            keys.append(key)
            part = self.processor.encode_choices(
                item.image,
                item.part_history(),
                qa.question,
                qa.answer_choices,
                parts=qa.answer_parts,
                strict=False,
                image_key=key,
            )
            part_group.append(len(groups))
            groups.append(self._group(part, qa.correct_index))
            correct.append(part[qa.correct_index])
            if qa.question_type in OBJECT_QUESTION_TYPES and qa.object_question is not None:
                assert qa.object_answer_choices is not None
                obj = self.processor.encode_choices(
                    item.image,
                    item.object_history(),
                    qa.object_question,
                    qa.object_answer_choices,
                    image_key=key,
                )
                object_group.append(len(groups))
                groups.append(self._group(obj, None))
            else:
                object_group.append(None)
        scores = score_groups(
            self.model.llava,
            groups,
            image_token_id=self.processor.image_token_id,
            pad_token_id=self._pad_id(),
            max_rows=self.max_rows,
            layout=self.layout,
            vlm=self.model.vlm,
        )
        embeddings = self.image_embeddings(keys, [ex.sam_pixel_values for ex in correct])
        other = "answer" if self.choice_score == "conversation" else "conversation"
        out = []
        for i in range(len(items)):
            part_scores = scores[part_group[i]]
            hidden = part_scores.hidden
            assert hidden is not None
            masks, unmatched = self._teacher_forced_masks(correct[i], hidden, embeddings[i])
            extra: dict[str, object] = {f"choice_scores_{other}": part_scores.select(other)}
            object_scores = None
            g = object_group[i]
            if g is not None:
                object_scores = scores[g].select(self.choice_score)
                extra[f"object_choice_scores_{other}"] = scores[g].select(other)
            if unmatched:
                extra["unmatched_parts"] = unmatched
            out.append(
                ModelAnswer(
                    choice_scores=part_scores.select(self.choice_score),
                    object_choice_scores=object_scores,
                    masks=masks,
                    extra=extra,
                )
            )
        return out

    def _teacher_forced_masks(
        self, example: SegExample, hidden: torch.Tensor, embedding: torch.Tensor
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """One bool mask per located part of the correct answer (first span of each part), and
        the parts that could not be located."""
        logits = self.model.segment(
            hidden, example.spans, embedding, example.original_size, example.sam_input_size
        )
        masks: dict[str, np.ndarray] = {}
        for part, logit in zip(example.span_parts, logits, strict=True):
            if part not in masks:  # first span of each part
                masks[part] = (logit > MASK_THRESHOLD).cpu().numpy()
        return masks, list(example.unmatched_parts)

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
            prompt.pixel_values[None],
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
                torch.stack([p.pixel_values for p in prompts]),
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
            for q, ex, sc, emb in zip(batch, examples, scores, embeddings, strict=True):
                assert sc.hidden is not None
                masks, unmatched = self._teacher_forced_masks(ex, sc.hidden, emb)
                if unmatched:
                    logger.warning(
                        "question_id %r: span %r not in the answer", q.question_id, q.span
                    )
                out.append(masks.get(q.span, np.zeros(ex.original_size, dtype=bool)))
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
