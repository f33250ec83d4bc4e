"""The project's registries. Entries are lazy ``"module:attr"`` strings: listing never imports torch.

To add a model, question type, metric or data source, add one line to its block here.
"""

from __future__ import annotations

from typing import Any

from partonomy.registry import Registry


def _models() -> Registry[Any]:
    reg: Registry[Any] = Registry("model")
    reg.add("oracle", "partonomy.models.reference:build_oracle")
    reg.add("null", "partonomy.models.reference:build_null")
    reg.add("random", "partonomy.models.reference:build_random")
    reg.add("whole_object", "partonomy.models.reference:build_whole_object")
    # each segmentation-LMM family is also a model (partonomy.models.core.predictor)
    reg.add("plum", "partonomy.models.plum.family:build_predictor")
    reg.add("lisa", "partonomy.models.lisa.family:build_predictor")
    reg.add("glamm", "partonomy.models.glamm.family:build_predictor")
    reg.add("pixellm", "partonomy.models.pixellm.family:build_predictor")
    reg.add("segllm", "partonomy.models.segllm.family:build_predictor")
    # zero-shot models from off-the-shelf HF checkpoints (partonomy.models.zeroshot, issue 14)
    reg.add("hf_vlm", "partonomy.models.zeroshot.hf_vlm:build_hf_vlm")
    reg.add("vlm_sam3", "partonomy.models.zeroshot.vlm_sam3:build_vlm_sam3")
    return reg


def _families() -> Registry[Any]:
    reg: Registry[Any] = Registry("model family")
    # one partonomy.models.core.family.Family per segmentation LMM
    reg.add("plum", "partonomy.models.plum.family:FAMILY")
    reg.add("lisa", "partonomy.models.lisa.family:FAMILY")
    reg.add("glamm", "partonomy.models.glamm.family:FAMILY")
    reg.add("pixellm", "partonomy.models.pixellm.family:FAMILY")
    reg.add("segllm", "partonomy.models.segllm.family:FAMILY")
    return reg


def _tasks() -> Registry[Any]:
    reg: Registry[Any] = Registry("task")
    # block owned by partonomy.tasks (issue 11): each a partonomy.tasks.base.TaskSpec
    cat = "partonomy.tasks.catalog"
    reg.add("partonomy", f"{cat}:PARTONOMY")
    reg.add("reason_seg", f"{cat}:REASON_SEG")
    reg.add("refcoco", f"{cat}:REFCOCO")
    reg.add("refcoco+", f"{cat}:REFCOCO_PLUS")
    reg.add("refcocog", f"{cat}:REFCOCOG")
    reg.add("refclef", f"{cat}:REFCLEF")
    reg.add("textvqa", f"{cat}:TEXTVQA")
    reg.add("gqa", f"{cat}:GQA")
    reg.add("pope", f"{cat}:POPE")
    return reg


def _question_types() -> Registry[Any]:
    reg: Registry[Any] = Registry("question type")
    # block owned by partonomy.qa (question generation): one entry per name of
    # partonomy.io.qa_pairs.QUESTION_TYPES, each a partonomy.qa.base.QuestionGenerator
    reg.add("identification", "partonomy.qa.identification:IDENTIFICATION")
    reg.add("positive", "partonomy.qa.intersection:POSITIVE")
    reg.add("negative", "partonomy.qa.exclusion:NEGATIVE")
    reg.add("difference", "partonomy.qa.difference:DIFFERENCE")
    reg.add("identification_with_label", "partonomy.qa.identification:IDENTIFICATION_WITH_LABEL")
    reg.add("positive_with_label", "partonomy.qa.intersection:POSITIVE_WITH_LABEL")
    reg.add("negative_with_label", "partonomy.qa.exclusion:NEGATIVE_WITH_LABEL")
    reg.add("difference_with_label", "partonomy.qa.difference:DIFFERENCE_WITH_LABEL")
    reg.add("part_to_whole", "partonomy.qa.whole_part:PART_TO_WHOLE")
    reg.add("whole_to_part", "partonomy.qa.whole_part:WHOLE_TO_PART")
    return reg


def _metrics() -> Registry[Any]:
    reg: Registry[Any] = Registry("metric")
    # block owned by partonomy.eval.metrics (scoring); names are the keys of results.json
    reg.add("accuracy", "partonomy.eval.metrics.text:ACCURACY")
    reg.add("part_precision", "partonomy.eval.metrics.text:PART_PRECISION")
    reg.add("part_recall", "partonomy.eval.metrics.text:PART_RECALL")
    reg.add("part_f1", "partonomy.eval.metrics.text:PART_F1")
    reg.add("object_accuracy", "partonomy.eval.metrics.text:OBJECT_ACCURACY")
    reg.add("micro_giou", "partonomy.eval.metrics.masks:MICRO_GIOU")
    reg.add("macro_giou", "partonomy.eval.metrics.masks:MACRO_GIOU")
    reg.add("ciou", "partonomy.eval.metrics.masks:CIOU")
    return reg


def _sources() -> Registry[Any]:
    reg: Registry[Any] = Registry("data source")
    # block owned by partonomy.data.sources (real-data readers); entries are SourceInfo objects
    src = "partonomy.data.sources"
    reg.add("ade20k", f"{src}.ade20k:SOURCE")
    reg.add("cocostuff", f"{src}.cocostuff:SOURCE")
    reg.add("mapillary", f"{src}.mapillary:SOURCE")
    reg.add("paco_lvis", f"{src}.paco_lvis:SOURCE")
    reg.add("pascal_part", f"{src}.pascal_part:SOURCE")
    reg.add("partimagenet", f"{src}.partimagenet:SOURCE")
    reg.add("partonomy_core", f"{src}.partonomy_core:SOURCE")
    reg.add("refclef", f"{src}.refer:REFCLEF")
    reg.add("refcoco", f"{src}.refer:REFCOCO")
    reg.add("refcoco+", f"{src}.refer:REFCOCO_PLUS")
    reg.add("refcocog", f"{src}.refer:REFCOCOG")
    reg.add("llava_instruct_150k", f"{src}.llava_instruct:SOURCE")
    reg.add("reason_seg", f"{src}.reason_seg:SOURCE")
    return reg


FAMILIES = _families()
"""Segmentation-LMM families (:class:`partonomy.models.core.family.Family`)."""
MODELS = _models()
"""Model builders: ``build(**options) -> GroundingModel`` (see :mod:`partonomy.eval.protocol`)."""
TASKS = _tasks()
"""What ``partonomy eval|score --task`` runs (:class:`partonomy.tasks.base.TaskSpec`)."""
QUESTION_TYPES = _question_types()
"""Question generators, keyed by the ``question_type`` names of :mod:`partonomy.io.qa_pairs`."""
METRICS = _metrics()
"""Metrics: a per-sample function plus a reducer."""
SOURCES = _sources()
"""Real-data readers (part datasets and stage-1 training sources)."""

ALL = {
    "families": FAMILIES,
    "models": MODELS,
    "tasks": TASKS,
    "question-types": QUESTION_TYPES,
    "metrics": METRICS,
    "sources": SOURCES,
}
