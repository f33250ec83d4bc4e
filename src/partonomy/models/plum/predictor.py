"""PLUM as a benchmark model and as a free-form assistant (``partonomy eval --model plum``,
``partonomy predict``).

Benchmark mode (:meth:`PlumPredictor.predict`, the :class:`~partonomy.eval.protocol.GroundingModel`
protocol), per batch of questions:

1. Each distinct image's SAM embedding is computed once (batched) and cached per image content.
2. Every question's 5 answer choices are scored by mean token cross-entropy with a shared prefix
   (:mod:`partonomy.models.plum.scoring`); part_to_whole / whole_to_part also score the object
   question's choices, conditioned on the ground-truth first answer (``EvalItem.part_history`` /
   ``object_history``). ``choice_score``: ``conversation`` (the paper's) or ``answer``; the other
   mode's scores are written to the prediction line as an extra
   (``choice_scores_<mode>`` / ``object_choice_scores_<mode>``).
3. Masks are teacher-forced on the correct answer: its parts are found in its tokens with every
   occurrence tagged (:func:`~partonomy.models.plum.bio.find_part_spans`), SAM runs per span in
   token order with the feedback loop, at the original resolution, thresholded at logit > 0. The
   hidden states come from the scoring pass (the correct choice's row), so no extra LM forward.
   **One mask per part name: a part with several spans takes its first span's mask** (all spans
   still feed the feedback loop). A part whose name is not found in the answer text (e.g. a
   synonym in the answer) gets no mask; it is listed in the extra ``unmatched_parts`` and scored
   as missing.

Free-form mode (:meth:`PlumPredictor.answer`): greedy generation with a KV cache
(:mod:`partonomy.models.plum.generation`), the span extractor over the hidden states gathered
while generating, greedy B/I grouping restricted to the answer tokens, one mask per span. With
``highlight``, the named phrases are matched in the answer text instead and become the spans
(highlight-to-segment, the original's ``prompt_user_input``).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
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
from partonomy.models.plum.bio import PartSpan, find_part_spans
from partonomy.models.plum.generation import (
    Generation,
    TextSpan,
    char_span,
    decode_with_offsets,
    find_phrases,
    generate,
)
from partonomy.models.plum.scoring import (
    CHOICE_SCORES,
    LAYOUTS,
    ChoiceGroup,
    Layout,
    conversation_mask,
    score_groups,
)

if TYPE_CHECKING:
    from partonomy.models.plum.modeling import PlumModel
    from partonomy.models.plum.processing import PlumExample, PlumProcessor

logger = logging.getLogger(__name__)

MASK_THRESHOLD = 0.0
"""Mask logits above this are foreground (the paper's ``logit > 0``)."""


def image_key(image: np.ndarray) -> str:
    """Content key of an image: shape, dtype and a BLAKE2 hash of its bytes."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest()
    return f"{image.shape}:{image.dtype}:{digest}"


def findable_parts(
    input_ids: Sequence[int],
    answer_start: int,
    answer_end: int,
    parts: Sequence[str],
    tokenizer: Any,
) -> tuple[list[PartSpan], list[str]]:
    """Every occurrence of the parts that can be found in an answer; the rest are reported.

    Parts are tried longest first (the matching order of :func:`find_part_spans`), each kept only
    if the set found so far still matches with it added, so one unmatched part does not cost the
    others their masks.

    Returns:
        ``(spans in token order, unmatched part names in the given order)``.
    """
    ids = [int(t) for t in input_ids]
    unique = list(dict.fromkeys(parts))
    try:  # the usual case: every part is there
        found = find_part_spans(
            ids, answer_start, unique, tokenizer, all_occurrences=True, answer_end=answer_end
        )
        return found, []
    except ValueError:
        pass
    lengths = {p: len(tokenizer.encode(p, add_special_tokens=False)) for p in unique}
    kept: list[str] = []
    spans: list[PartSpan] = []
    for part in sorted(unique, key=lambda p: (-lengths[p], -len(p))):
        try:
            spans = find_part_spans(
                ids,
                answer_start,
                [*kept, part],
                tokenizer,
                all_occurrences=True,
                answer_end=answer_end,
            )
        except ValueError:
            continue
        kept.append(part)
    if not kept:
        spans = []
    return spans, [p for p in unique if p not in kept]


@dataclass(eq=False)
class GeneratedAnswer:
    """A generated answer before span tagging.

    Attributes:
        prompt: the encoded prompt (image inputs, sizes, ``input_ids`` up to ``ASSISTANT:``).
        generation: tokens and hidden states of prompt + answer.
        text: the answer text (special tokens skipped).
        offsets: per answer token, its ``(start, end)`` characters in ``text``.
    """

    prompt: PlumExample
    generation: Generation
    text: str
    offsets: list[tuple[int, int]]


class PlumPredictor:
    """PLUM at inference: holds the model and processor, caches SAM image embeddings.

    Args:
        model: a :class:`~partonomy.models.plum.modeling.PlumModel` (put in eval mode here).
        processor: its :class:`~partonomy.models.plum.processing.PlumProcessor`.
        batch_size: questions scored together in one :meth:`predict` step.
        choice_score: ``"conversation"`` (the paper's) or ``"answer"`` (module docstring).
        max_new_tokens: generation length limit of :meth:`answer` (the sequence limit of the
            processor, ``max_length``, applies too).
        generation: ``"loop"`` (own KV-cached greedy loop, no warm-up) or ``"static"`` (HF
            ``generate`` over a static cache, compiled with CUDA graphs on a GPU: ~30 s once, then
            ~3x the tokens/s; for many free-form answers).
        layout: how the answer continuations run over the shared prefix: ``"packed"`` (one row
            per question, a 4-D mask; the default, fastest) or ``"expand"`` (one row per choice
            over a copied prefix cache); see :func:`~partonomy.models.plum.scoring.score_groups`.
        max_rows: answer-choice rows per continuation forward (``expand`` layout).
        image_cache: how many SAM image embeddings to keep (least recently used are dropped).
    """

    name = "plum"

    def __init__(
        self,
        model: PlumModel,
        processor: PlumProcessor,
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
        the vocabulary has them): never generated (issue 11)."""
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
    def _group(self, examples: list[PlumExample], keep: int | None) -> ChoiceGroup:
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
        correct: list[PlumExample] = []
        keys = []
        for item in items:
            qa = item.qa
            key = image_key(item.image)
            keys.append(key)
            part = self.processor.encode_choices(
                item.image, item.part_history(), qa.question, qa.answer_choices, image_key=key
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
        )
        embeddings = self.image_embeddings(keys, [ex.sam_pixel_values for ex in correct])
        other = "answer" if self.choice_score == "conversation" else "conversation"
        out = []
        for i, item in enumerate(items):
            part_scores = scores[part_group[i]]
            hidden = part_scores.hidden
            assert hidden is not None
            masks, unmatched = self._teacher_forced_masks(
                correct[i], item.qa.correct_parts, hidden, embeddings[i]
            )
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
        self,
        example: PlumExample,
        parts: Sequence[str],
        hidden: torch.Tensor,
        embedding: torch.Tensor,
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        spans, unmatched = findable_parts(
            example.input_ids.tolist(),
            example.answer_start,
            example.answer_end,
            parts,
            self.tokenizer,
        )
        logits = self.model.segment(
            hidden,
            [list(s.tokens) for s in spans],
            embedding,
            example.original_size,
            example.sam_input_size,
        )
        masks: dict[str, np.ndarray] = {}
        for span, logit in zip(spans, logits, strict=True):
            if span.part not in masks:  # first span of each part
                masks[span.part] = (logit > MASK_THRESHOLD).cpu().numpy()
        return masks, unmatched

    # -------------------------------------------------------------------- free-form mode
    @torch.no_grad()
    def generate(
        self, image: np.ndarray, question: str, *, history: Sequence[Turn] = ()
    ) -> GeneratedAnswer:
        """Greedy-generate an answer with a KV cache (no spans, no masks); see :meth:`answer`."""
        prompt = self.processor.encode(image, list(history), question, None)
        plen = int(prompt.input_ids.shape[0])
        budget = min(self.max_new_tokens, self.processor.max_length - plen)
        if budget < 1:
            raise ConfigError(
                f"the prompt is {plen} tokens, which leaves no room to answer within the model's "
                f"max_length ({self.processor.max_length}); shorten the question or history"
            )
        gen = generate(
            self.model.llava,
            [prompt.input_ids],
            prompt.pixel_values[None],
            stop_token_ids=[int(self.tokenizer.eos_token_id)],
            max_new_tokens=budget,
            pad_token_id=self._pad_id(),
            static_cache=self.generation == "static",
            banned_token_ids=self.placeholder_token_ids(),
        )[0]
        text, offsets = decode_with_offsets(self.tokenizer, gen.new_tokens.tolist())
        return GeneratedAnswer(prompt, gen, text, offsets)

    @torch.no_grad()
    def answer(
        self,
        image: np.ndarray,
        question: str,
        *,
        highlight: Sequence[str] | None = None,
        history: Sequence[Turn] = (),
    ) -> FreeFormAnswer:
        """Generate an answer to ``question`` about ``image`` and segment the parts it names.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            question: the user's question.
            highlight: phrases of the answer to segment instead of the tagger's spans
                (case-insensitive whole-word matches, every occurrence; a phrase that does not
                occur is skipped with a logged warning).
            history: earlier (question, answer) turns of the conversation.

        Returns:
            The answer text, its spans (character offsets into the text) and one bool ``(H, W)``
            mask per span, in text order.
        """
        out = self.generate(image, question, history=history)
        hidden, plen, text = out.generation.hidden, out.generation.prompt_length, out.text
        assert hidden is not None
        if highlight is not None:
            found = find_phrases(text, out.offsets, highlight)
            missing = [p for p in highlight if p.strip() and not _phrase_found(p, text, found)]
            if missing:
                logger.warning("highlight phrases not in the answer: %s", ", ".join(missing))
        else:
            found = self._tagged_spans(hidden, plen, text, out.offsets)
        embedding = self.image_embeddings([image_key(image)], [out.prompt.sam_pixel_values])[0]
        logits = self.model.segment(
            hidden,
            [[plen + t for t in span.tokens] for span in found],
            embedding,
            out.prompt.original_size,
            out.prompt.sam_input_size,
        )
        return FreeFormAnswer(
            text=text,
            spans=[Span(s.start, s.end, text[s.start : s.end]) for s in found],
            masks=[(m > MASK_THRESHOLD).cpu().numpy() for m in logits],
        )

    def _tagged_spans(
        self, hidden: torch.Tensor, prompt_length: int, text: str, offsets: list[tuple[int, int]]
    ) -> list[TextSpan]:
        """The span extractor's spans over the answer tokens, as answer-relative token spans."""
        length = hidden.shape[0]
        attention = torch.ones((1, length), dtype=torch.long, device=hidden.device)
        bio_logits = self.model.tag_spans(hidden[None], attention)
        allowed = torch.zeros((1, length), dtype=torch.bool, device=hidden.device)
        allowed[0, prompt_length:] = True
        spans = self.model.predicted_spans(bio_logits, allowed)[0]
        out = []
        for span in spans:
            tokens = [t - prompt_length for t in span]
            ts = char_span(text, offsets, tokens)
            if ts.end > ts.start:  # a span of special or whitespace tokens has no text
                out.append(ts)
        return out

    # ------------------------------------------------- other tasks (issue 11; new methods only)
    @torch.no_grad()
    def answer_vqa(self, queries: Sequence[VqaQuery]) -> list[str]:
        """Free-form VQA answers (:class:`~partonomy.eval.protocol.VqaModel`), ``batch_size`` at a
        time: each question in PLUM's LLaVA v1 template (image first), greedy with the KV cache
        (:func:`~partonomy.models.plum.generation.generate`; ``generation: static`` uses HF's static
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
        the hidden states), the ``span``'s tokens in the answer (first occurrence) prompt SAM with
        the feedback loop, at the original resolution, logit > 0. A span not found in the answer
        gives an empty mask (logged)."""
        out: list[np.ndarray] = []
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start : start + self.batch_size]
            keys = [image_key(q.image) for q in batch]
            examples = [
                self.processor.encode(
                    q.image, [], q.question, q.answer, image_key=k, truncate=False
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
                masks, unmatched = self._teacher_forced_masks(ex, [q.span], sc.hidden, emb)
                if unmatched:
                    logger.warning(
                        "question_id %r: span %r not in the answer", q.question_id, q.span
                    )
                out.append(masks.get(q.span, np.zeros(ex.original_size, dtype=bool)))
        return out


def _phrase_found(phrase: str, text: str, found: Sequence[TextSpan]) -> bool:
    needle = phrase.strip().lower()
    return any(text[s.start : s.end].lower() == needle for s in found)


# -------------------------------------------------------------------------------- builder
def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"device {device!r} is not a torch device ({err})") from None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bfloat16 on a GPU that supports it, else float32; or a dtype name."""
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise ConfigError(f"dtype must be auto or one of {', '.join(table)}, got {dtype!r}")
    return table[dtype]


def load_plum(
    checkpoint: str | None = None,
    preset: str = "tiny",
    device: str = "auto",
    dtype: str = "auto",
) -> tuple[PlumModel, PlumProcessor]:
    """A PLUM model and processor: trained from ``checkpoint`` (a checkpoint or run directory), or
    freshly built from a preset (``tiny`` is random; the real presets load their backbones only).
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if checkpoint is not None:
        from partonomy.training.checkpoint import load_plum_checkpoint

        model, processor = load_plum_checkpoint(checkpoint, device=dev, dtype=dt)
        return model, processor
    from partonomy.models.plum.builders import PRESETS, build_plum

    if preset not in PRESETS:
        import difflib

        close = difflib.get_close_matches(preset, PRESETS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown PLUM preset {preset!r}.{hint} Known: {', '.join(PRESETS)}")
    model, processor = build_plum(PRESETS[preset]())
    for param in model.parameters():
        param.requires_grad_(False)
    return model.to(device=dev, dtype=dt).eval(), processor


def build_plum(
    checkpoint: str | None = None,
    preset: str = "tiny",
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 8,
    choice_score: str = "conversation",
    **kw: Any,
) -> PlumPredictor:
    """The ``plum`` entry of the model registry (``partonomy eval --model plum``).

    Args:
        checkpoint: a training checkpoint or run directory (``--model-opt checkpoint=RUN_DIR``);
            None builds ``preset`` untrained.
        preset: a :data:`partonomy.models.plum.builders.PRESETS` name, used without a checkpoint.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (bfloat16 on GPU, float32 on CPU), ``float32``, ``bfloat16``, ``float16``.
        batch_size: questions per scoring step.
        choice_score: ``conversation`` (the paper's) or ``answer``.
        kw: further :class:`PlumPredictor` options: ``max_new_tokens``, ``generation``,
            ``layout``, ``max_rows``, ``image_cache``.

    Raises:
        ConfigError: an unknown option or value, or a checkpoint that cannot be loaded.
    """
    known = ("max_new_tokens", "generation", "layout", "max_rows", "image_cache")
    unknown = sorted(set(kw) - set(known))
    if unknown:
        raise ConfigError(
            f"plum: unknown option {unknown[0]!r}; options: checkpoint, preset, device, dtype, "
            f"batch_size, choice_score, {', '.join(known)}"
        )
    if choice_score not in CHOICE_SCORES:
        raise ConfigError(
            f"plum: choice_score must be one of {', '.join(CHOICE_SCORES)}, got {choice_score!r}"
        )
    model, processor = load_plum(checkpoint, preset, device, dtype)
    return PlumPredictor(model, processor, batch_size=batch_size, choice_score=choice_score, **kw)
