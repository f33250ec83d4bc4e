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
    reg.add("plum", "partonomy.models.plum.predictor:build_plum")
    return reg


def _question_types() -> Registry[Any]:
    reg: Registry[Any] = Registry("question type")
    # block owned by partonomy.qa (question generation)
    return reg


def _metrics() -> Registry[Any]:
    reg: Registry[Any] = Registry("metric")
    # block owned by partonomy.eval.metrics (scoring)
    return reg


def _sources() -> Registry[Any]:
    reg: Registry[Any] = Registry("data source")
    # block owned by partonomy.data.sources (real-data readers)
    return reg


MODELS = _models()
"""Model builders: ``build(**options) -> GroundingModel`` (see :mod:`partonomy.eval.protocol`)."""
QUESTION_TYPES = _question_types()
"""Question generators, keyed by the ``question_type`` names of :mod:`partonomy.io.qa_pairs`."""
METRICS = _metrics()
"""Metrics: a per-sample function plus a reducer."""
SOURCES = _sources()
"""Real-data readers (part datasets and stage-1 training sources)."""

ALL = {"models": MODELS, "question-types": QUESTION_TYPES, "metrics": METRICS, "sources": SOURCES}
