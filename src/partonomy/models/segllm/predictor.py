"""SegLLM at evaluation: PARTONOMY questions answered as rounds, one per part, with the earlier
rounds' masks re-encoded as the original evaluated (``LLaVATrainer.evaluate``).

Choices are scored as for every family (:class:`~partonomy.models.core.predictor.SegPredictor`),
except that ``<seg_input>`` tokens are inputs: they are left out of both choice scores. In the
scoring pass they hold their own token embedding only (a dropped encoding, as half of the training
references are).

Masks come from a second forward over the correct answer, with the references re-encoded, in one
of two modes (option ``mask_encode``):

* ``gt`` (the original's ``--eval_use_gt_mask_encode True``, its default in every eval script): the
  reference before round ``k`` is the *ground-truth* mask of round ``k - 1``'s part (read from the
  question record's ``segmentations``). One forward. This reads ground truth of earlier parts, as
  the original protocol does; the masks of the parts being scored are never read.
* ``predicted`` (the original's ``--ar_eval``): the model's own masks. A Jacobi-style fixed point:
  the first forward encodes every reference as the original's dummy (the whole image, a zero box);
  each further forward re-encodes the previous forward's predictions; after ``n`` forwards the
  first ``n`` rounds are final, so ``n_rounds`` forwards give every round (rounds only depend on
  earlier ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from partonomy.errors import ConfigError
from partonomy.eval.protocol import EvalItem, ModelAnswer
from partonomy.io import masks as mask_io
from partonomy.models.core.loading import PREDICTOR_OPTIONS, load_model
from partonomy.models.core.predictor import MASK_THRESHOLD, PreparedBatch, SegPredictor, image_key
from partonomy.models.core.scoring import CHOICE_SCORES, ChoiceGroup

if TYPE_CHECKING:
    from partonomy.models.core.processing import SegBatch, SegExample

MASK_ENCODE_MODES = ("gt", "predicted")


class SegLLMPredictor(SegPredictor):
    """:class:`SegPredictor` with SegLLM's multi-round masks (module docstring).

    Args:
        mask_encode: ``"gt"`` or ``"predicted"``.
        kwargs: as :class:`SegPredictor`.
    """

    def __init__(
        self, model: Any, processor: Any, *, mask_encode: str = "gt", **kwargs: Any
    ) -> None:
        if mask_encode not in MASK_ENCODE_MODES:
            raise ConfigError(
                f"segllm: mask_encode must be one of {', '.join(MASK_ENCODE_MODES)}, got {mask_encode!r}"
            )
        super().__init__(model, processor, **kwargs)
        self.mask_encode = mask_encode
        self.seg_input_id = int(processor.seg_input_id)

    def _group(self, examples: list[SegExample], keep: int | None) -> ChoiceGroup:
        group = super()._group(examples, keep)
        inputs = [ids != self.seg_input_id for ids in group.input_ids]
        return dataclasses.replace(
            group,
            scored=[s & k for s, k in zip(group.scored, inputs, strict=True)],
            answer=[a & k for a, k in zip(group.answer, inputs, strict=True)],
        )

    def _run(self, prepared: PreparedBatch) -> list[ModelAnswer]:
        # choice scores from the shared path; masks from SegLLM's rounds instead
        answers = super()._run(prepared)
        masks = self.round_masks(prepared.items)
        return [dataclasses.replace(a, masks=m) for a, m in zip(answers, masks, strict=True)]

    # ------------------------------------------------------------------------------ rounds
    def _encode_correct(self, item: EvalItem, with_masks: bool) -> SegExample:
        qa = item.qa
        parts = list(qa.answer_parts[qa.correct_index])
        span_masks = None
        if with_masks:
            size = item.size
            span_masks = {
                p: mask_io.decode(mask_io.union(qa.segmentations[p], size)).astype(np.uint8)
                for p in dict.fromkeys(parts)
                if p in qa.segmentations
            }
        return self.processor.encode(
            item.image,
            item.part_history(),
            qa.question,
            qa.answer_choices[qa.correct_index],
            span_masks,
            parts=None if span_masks else parts,
            strict=False,
            image_key=image_key(item.image),
            truncate=False,
        )

    def round_masks(self, items: Sequence[EvalItem]) -> list[dict[str, np.ndarray]]:
        """Per item, one bool ``(H, W)`` mask per located part of the correct answer (its first
        round), with earlier rounds re-encoded by :attr:`mask_encode`."""
        gt = self.mask_encode == "gt"
        examples = [self._encode_correct(item, with_masks=gt) for item in items]
        batch = self.processor.collate(examples).to(self.device)
        if not gt:  # no reference mask yet: every reference is the dummy encoding
            batch = dataclasses.replace(batch, span_targets=[[] for _ in examples])
        # gt: one forward; predicted: one per round (round k is final after forward k + 1)
        passes = 1 if gt else max((len(ex.spans) for ex in examples), default=1)
        logits = self._forward_masks(batch)
        for _ in range(passes - 1):
            predicted = [[(m > MASK_THRESHOLD).to(torch.uint8) for m in conv] for conv in logits]
            logits = self._forward_masks(dataclasses.replace(batch, span_targets=predicted))
        out = []
        for ex, conv in zip(examples, logits, strict=True):
            masks: dict[str, np.ndarray] = {}
            for part, logit in zip(ex.span_parts, conv, strict=True):
                if part not in masks:
                    masks[part] = (logit > MASK_THRESHOLD).cpu().numpy()
            out.append(masks)
        return out

    def _forward_masks(self, batch: SegBatch) -> list[list[torch.Tensor]]:
        output = self.model(batch, span_source="target", lm_rows="labelled")
        return output.masks  # type: ignore[no-any-return]


def build_predictor(
    checkpoint: str | None = None,
    preset: str = "tiny",
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 8,
    choice_score: str = "conversation",
    mask_encode: str = "gt",
    **kw: Any,
) -> SegLLMPredictor:
    """The model-registry entry ``partonomy eval --model segllm``: the options of
    :func:`partonomy.models.core.loading.build_predictor`, and ``mask_encode`` (``gt`` or
    ``predicted``, module docstring).

    Raises:
        ConfigError: an unknown option or value.
    """
    unknown = sorted(set(kw) - set(PREDICTOR_OPTIONS))
    if unknown:
        raise ConfigError(
            f"segllm: unknown option {unknown[0]!r}; options: checkpoint, preset, device, dtype, "
            f"batch_size, choice_score, mask_encode, {', '.join(PREDICTOR_OPTIONS)}"
        )
    if choice_score not in CHOICE_SCORES:
        raise ConfigError(
            f"segllm: choice_score must be one of {', '.join(CHOICE_SCORES)}, got {choice_score!r}"
        )
    model, processor = load_model("segllm", checkpoint, preset, device, dtype)
    return SegLLMPredictor(
        model,
        processor,
        batch_size=batch_size,
        choice_score=choice_score,
        mask_encode=mask_encode,
        **kw,
    )
