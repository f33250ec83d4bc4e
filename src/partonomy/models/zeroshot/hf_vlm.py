"""``--model hf_vlm``: any HF VLM (Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision) scores the answer choices.

Each question's choices are encoded with the VLM's own chat template and image processor
(:class:`~partonomy.models.core.processing_vlm.VlmSegProcessor` without a mask head) and scored by
mean token cross-entropy with a shared prefix (:func:`~partonomy.models.core.scoring.score_groups`:
the image and question are computed once per question), ``conversation`` (the paper's) or
``answer`` mode; the other mode goes to the prediction line as an extra. Part-whole questions also
score their object question, conditioned on the ground-truth first answer, as the segmentation
LMMs do. No masks: segmentation metrics count every part as missing.

The checkpoint directory is a local HF checkpoint of the VLM: ``config.json`` (its
``model_type`` picks the architecture), weights, tokenizer files with a chat template and
``preprocessor_config.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from partonomy.config import from_dict
from partonomy.errors import ConfigError
from partonomy.eval.protocol import EvalItem, GroundingModel, ModelAnswer
from partonomy.io.qa_pairs import OBJECT_QUESTION_TYPES
from partonomy.models.backbones.hf_vlm import (
    VLM_KINDS,
    VlmAdapter,
    VlmConfig,
    build_vlm,
    load_vlm_tokenizer,
)
from partonomy.models.core.devices import resolve_device, resolve_dtype
from partonomy.models.core.processing import SegExample
from partonomy.models.core.processing_vlm import VlmSegProcessor
from partonomy.models.core.scoring import (
    CHOICE_SCORES,
    ChoiceGroup,
    GroupScores,
    choice_group,
    score_groups,
)
from partonomy.models.plum.targets import BioTargets


@dataclass
class HfVlmOptions:
    """Options of ``hf_vlm`` (``--model-opt key=value``).

    Attributes:
        checkpoint: local directory of the HF VLM (module docstring); ``partonomy eval
            --checkpoint DIR`` sets it.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (bfloat16 on a GPU that has it, else float32) or a dtype name.
        choice_score: ``conversation`` (the paper's) or ``answer``.
        min_pixels, max_pixels: Qwen's pixel budget per image (None: the checkpoint's).
        layout: shared-prefix continuation layout (``packed`` or ``expand``).
        batch_size: questions scored together in one call (``partonomy eval`` hands the model
            batches of this size unless ``--batch-size`` says otherwise).
    """

    checkpoint: str = ""
    device: str = "auto"
    dtype: str = "auto"
    choice_score: str = "conversation"
    min_pixels: int | None = None
    max_pixels: int | None = None
    layout: str = "packed"
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.checkpoint:
            raise ConfigError(
                "hf_vlm / vlm_sam3 need --checkpoint DIR (or --model-opt checkpoint=DIR): "
                "a local HF VLM checkpoint"
            )
        if self.choice_score not in CHOICE_SCORES:
            raise ConfigError(f"choice_score must be one of {', '.join(CHOICE_SCORES)}")


def vlm_kind(checkpoint: str) -> str:
    """The architecture of a local HF VLM checkpoint, from its ``config.json``'s ``model_type``.

    Raises:
        ConfigError: no readable ``config.json``, or an architecture this project does not adapt.
    """
    path = Path(checkpoint) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{checkpoint}: no config.json (expected a local HF VLM checkpoint)")
    kind = str(json.loads(path.read_text()).get("model_type"))
    if kind not in VLM_KINDS:
        raise ConfigError(f"{path}: model_type {kind!r} is not one of {', '.join(VLM_KINDS)}")
    return kind


class VlmChoiceScorer:
    """Scores benchmark questions' answer choices with an HF VLM (module docstring).

    Args:
        model: the HF ``*ForConditionalGeneration``, on its device, in eval mode.
        adapter: its :class:`~partonomy.models.backbones.hf_vlm.VlmAdapter`.
        processor: a :class:`VlmSegProcessor` for it (``sam_image_size=0``).
        layout: shared-prefix continuation layout.
    """

    def __init__(
        self, model: Any, adapter: VlmAdapter, processor: VlmSegProcessor, layout: str = "packed"
    ) -> None:
        self.model = model
        self.adapter = adapter
        self.processor = processor
        self.layout: Any = layout

    def _group(self, examples: list[SegExample]) -> ChoiceGroup:
        return choice_group(examples, self.processor.image_token_id)

    @torch.no_grad()
    def score(self, items: Sequence[EvalItem]) -> list[tuple[GroupScores, GroupScores | None]]:
        """Per item: the part question's scores, and the object question's (or None)."""
        groups: list[ChoiceGroup] = []
        where: list[tuple[int, int | None]] = []
        for item in items:
            qa = item.qa
            pixels = self.processor.preprocess_image(item.image)
            part = [
                self.processor.encode(
                    item.image, item.part_history(), qa.question, a, truncate=False, _pixels=pixels
                )
                for a in qa.answer_choices
            ]
            p = len(groups)
            groups.append(self._group(part))
            obj: int | None = None
            if qa.question_type in OBJECT_QUESTION_TYPES and qa.object_question is not None:
                assert qa.object_answer_choices is not None
                examples = [
                    self.processor.encode(
                        item.image,
                        item.object_history(),
                        qa.object_question,
                        a,
                        truncate=False,
                        _pixels=pixels,
                    )
                    for a in qa.object_answer_choices
                ]
                obj = len(groups)
                groups.append(self._group(examples))
            where.append((p, obj))
        scores = score_groups(
            self.model,
            groups,
            image_token_id=self.processor.image_token_id,
            pad_token_id=int(self.processor.tokenizer.pad_token_id),
            layout=self.layout,
            vlm=self.adapter,
        )
        return [(scores[p], scores[o] if o is not None else None) for p, o in where]


def load_vlm_scorer(
    checkpoint: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    layout: str = "packed",
) -> VlmChoiceScorer:
    """A :class:`VlmChoiceScorer` for the VLM checkpoint in ``checkpoint``."""
    kind = vlm_kind(checkpoint)
    cfg = VlmConfig(pretrained=checkpoint, min_pixels=min_pixels, max_pixels=max_pixels)
    tokenizer = load_vlm_tokenizer(kind, cfg)
    model, adapter = build_vlm(kind, cfg, tokenizer)
    dev = resolve_device(device)
    model = model.to(device=dev, dtype=resolve_dtype(dtype, dev)).eval()
    processor = VlmSegProcessor(tokenizer, adapter=adapter, targets=BioTargets(), sam_image_size=0)
    return VlmChoiceScorer(model, adapter, processor, layout)


def choice_answer(
    part: GroupScores, obj: GroupScores | None, mode: str
) -> tuple[list[float], list[float] | None, dict[str, object]]:
    """``(choice scores, object scores, extras)`` of one item in ``mode``, the other mode as extras."""
    other = "answer" if mode == "conversation" else "conversation"
    extra: dict[str, object] = {f"choice_scores_{other}": part.select(other)}
    if obj is not None:
        extra[f"object_choice_scores_{other}"] = obj.select(other)
    return part.select(mode), (obj.select(mode) if obj is not None else None), extra


class HfVlmModel:
    """``hf_vlm``: text scores only (module docstring)."""

    name = "hf_vlm"

    def __init__(
        self, scorer: VlmChoiceScorer, choice_score: str = "conversation", batch_size: int = 8
    ) -> None:
        self.scorer = scorer
        self.choice_score = choice_score
        self.batch_size = batch_size  # what the harness hands over at once

    def predict(self, items: Sequence[EvalItem]) -> list[ModelAnswer]:
        out = []
        for part, obj in self.scorer.score(items):
            scores, object_scores, extra = choice_answer(part, obj, self.choice_score)
            out.append(ModelAnswer(scores, object_scores, None, extra))
        return out


def build_hf_vlm(**options: Any) -> GroundingModel:
    """The ``hf_vlm`` model; options as :class:`HfVlmOptions`."""
    opts = from_dict(HfVlmOptions, options, source="model 'hf_vlm' options")
    return HfVlmModel(scorer_from_options(opts), opts.choice_score, opts.batch_size)


def scorer_from_options(opts: HfVlmOptions) -> VlmChoiceScorer:
    """The choice scorer that ``opts`` (of ``hf_vlm`` or ``vlm_sam3``) describes."""
    return load_vlm_scorer(
        opts.checkpoint,
        device=opts.device,
        dtype=opts.dtype,
        min_pixels=opts.min_pixels,
        max_pixels=opts.max_pixels,
        layout=opts.layout,
    )
