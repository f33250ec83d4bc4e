"""``--model vlm_sam3``: zero-shot PARTONOMY with any HF VLM and SAM 3, nothing trained.

The modern counterpart of the paper's "Grounded SAM 2 (gt parts)" row:

* the VLM scores the answer choices by mean token cross-entropy with shared-prefix scoring
  (exactly ``--model hf_vlm``, :mod:`partonomy.models.zeroshot.hf_vlm`);
* SAM 3 segments each part named in the **correct** answer (teacher-forced, as the benchmark's
  masks are for every model), prompted with the part name (``prompt: part``) or
  ``"<part> of <object>"`` with the question's object label (``prompt: part_of_object``); one
  image encoding serves all of a question's parts (:mod:`partonomy.models.zeroshot.sam3`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.eval.protocol import EvalItem, GroundingModel, ModelAnswer
from partonomy.models.core.devices import resolve_device, resolve_dtype
from partonomy.models.zeroshot.hf_vlm import (
    HfVlmOptions,
    VlmChoiceScorer,
    choice_answer,
    scorer_from_options,
)
from partonomy.models.zeroshot.sam3 import Sam3Segmenter, load_sam3


@dataclass
class VlmSam3Options(HfVlmOptions):
    """Options of ``vlm_sam3``: :class:`~partonomy.models.zeroshot.hf_vlm.HfVlmOptions` (its
    ``checkpoint`` is the VLM) and:

    Attributes:
        sam3: local directory of an HF SAM 3 checkpoint.
        prompt: ``part`` or ``part_of_object`` ("<part> of <object>").
        score_threshold: minimum SAM 3 instance score (presence-gated) kept in a part's mask.
        mask_threshold: sigmoid threshold of an instance's mask.
    """

    sam3: str = ""
    prompt: Literal["part", "part_of_object"] = "part"
    score_threshold: float = 0.5
    mask_threshold: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sam3:
            raise ConfigError("vlm_sam3 needs --model-opt sam3=DIR (a local HF SAM 3 checkpoint)")


def part_phrase(part: str, obj: str, prompt: str) -> str:
    """The SAM 3 text prompt of ``part`` (``"wing"`` or ``"wing of airplane"``)."""
    return f"{part} of {obj}" if prompt == "part_of_object" and obj else part


class VlmSam3Model:
    """VLM choice scores + SAM 3 part masks (module docstring)."""

    name = "vlm_sam3"

    def __init__(
        self,
        scorer: VlmChoiceScorer,
        segmenter: Sam3Segmenter,
        *,
        choice_score: str = "conversation",
        prompt: str = "part",
        batch_size: int = 8,
    ) -> None:
        self.scorer = scorer
        self.segmenter = segmenter
        self.choice_score = choice_score
        self.prompt = prompt
        self.batch_size = batch_size  # what the harness hands over at once

    def predict(self, items: Sequence[EvalItem]) -> list[ModelAnswer]:
        out = []
        for item, (part, obj) in zip(items, self.scorer.score(items), strict=True):
            scores, object_scores, extra = choice_answer(part, obj, self.choice_score)
            parts = list(dict.fromkeys(item.qa.correct_parts))
            phrases = [part_phrase(p, item.qa.image_label, self.prompt) for p in parts]
            masks = dict(zip(parts, self.segmenter.segment(item.image, phrases), strict=True))
            extra["sam3_prompts"] = phrases
            out.append(ModelAnswer(scores, object_scores, masks, extra))
        return out


def build_vlm_sam3(**options: Any) -> GroundingModel:
    """The ``vlm_sam3`` model; options as :class:`VlmSam3Options`."""
    opts = from_dict(VlmSam3Options, options, source="model 'vlm_sam3' options")
    scorer = scorer_from_options(opts)
    device = resolve_device(opts.device)
    segmenter = load_sam3(
        opts.sam3,
        device=device,
        dtype=resolve_dtype(opts.dtype, device),
        score_threshold=opts.score_threshold,
        mask_threshold=opts.mask_threshold,
    )
    return VlmSam3Model(
        scorer,
        segmenter,
        choice_score=opts.choice_score,
        prompt=opts.prompt,
        batch_size=opts.batch_size,
    )
