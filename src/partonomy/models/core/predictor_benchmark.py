"""Benchmark mode of a segmentation LMM (:meth:`BenchmarkMode.predict`, the
:class:`~partonomy.eval.protocol.GroundingModel` protocol) and teacher-forced referring
segmentation; see :mod:`~partonomy.models.core.predictor` for what a question goes through.

A batch runs in two halves: the CPU side (:meth:`BenchmarkMode._prepare`: image preprocessing,
every answer choice tokenised) and the device side (:meth:`BenchmarkMode._run`: SAM embeddings,
shared-prefix choice scoring, the masks of the correct answer's parts). With ``pipeline`` the CPU
side of the next batch runs in worker threads while the device answers the current one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from partonomy.eval.protocol import EvalItem, ModelAnswer, ReferQuery
from partonomy.io.qa_pairs import OBJECT_QUESTION_TYPES
from partonomy.models.backbones.preprocess import clip_preprocess, sam_normalize, sam_resize
from partonomy.models.core.embedding_cache import image_key
from partonomy.models.core.hf_lm import base_and_head
from partonomy.models.core.predictor_base import MASK_THRESHOLD, PredictorBase
from partonomy.models.core.scoring import ChoiceGroup, GroupScores, choice_group, score_groups
from partonomy.models.core.scoring_kernels import fused

if TYPE_CHECKING:
    from partonomy.models.core.processing import SegExample


logger = logging.getLogger(__name__)


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


class BenchmarkMode(PredictorBase):
    """:class:`PredictorBase` plus benchmark answering and teacher-forced referring segmentation."""

    # -------------------------------------------------------------------- benchmark mode
    def _group(self, examples: list[SegExample], keep: int | None) -> ChoiceGroup:
        return choice_group(
            examples,
            self.processor.image_token_id,
            keep_hidden=keep,
            share_key=examples[0].image_key if self.share_image_prefix else None,
        )

    def _score(self, groups: list[ChoiceGroup]) -> list[GroupScores]:
        """:func:`score_groups` with the predictor's options, its decoder running the fused
        kernels of ``scoring_kernels`` (if any) for the duration."""
        with fused(base_and_head(self.model.llava)[0], self.kernels):
            return score_groups(
                self.model.llava,
                groups,
                image_token_id=self.processor.image_token_id,
                pad_token_id=self._pad_id(),
                max_rows=self.max_rows,
                layout=self.layout,
                vlm=self.model.vlm,
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
        scores = self._score(prepared.groups)
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
            scores = self._score([self._group([ex], 0) for ex in examples])
            embeddings = self.image_embeddings(keys, [ex.sam_pixel_values for ex in examples])
            masks = self._teacher_forced_masks(examples, [sc.hidden for sc in scores], embeddings)
            for q, ex, found in zip(batch, examples, masks, strict=True):
                if ex.unmatched_parts:
                    logger.warning(
                        "question_id %r: span %r not in the answer", q.question_id, q.span
                    )
                out.append(found.get(q.span, np.zeros(ex.original_size, dtype=bool)))
        return out
