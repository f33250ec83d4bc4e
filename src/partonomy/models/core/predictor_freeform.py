"""Free-form mode of a segmentation LMM: greedy generation with a KV cache
(:mod:`~partonomy.models.core.generation`), the targets the model marks in its answer (or the
phrases a user highlights), one mask per target; and free-form VQA answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from partonomy.errors import ConfigError
from partonomy.eval.protocol import FreeFormAnswer, Span, Turn, VqaQuery
from partonomy.models.core.embedding_cache import image_key
from partonomy.models.core.generation import (
    Generation,
    TextSpan,
    char_span,
    decode_with_offsets,
    find_phrases,
    generate,
)
from partonomy.models.core.generation_vlm import lm_vision_input
from partonomy.models.core.predictor_base import MASK_THRESHOLD, PredictorBase
from partonomy.models.core.regions import Box, with_box_tokens

if TYPE_CHECKING:
    from partonomy.models.core.processing import SegExample


logger = logging.getLogger(__name__)


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


class FreeFormMode(PredictorBase):
    """:class:`PredictorBase` plus generation, free-form answers with masks, and VQA answers."""

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
