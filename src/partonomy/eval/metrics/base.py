"""A metric is a per-sample statistic plus a reducer (the lm-eval split).

Per-sample statistics are computed once per question by :mod:`partonomy.eval.metrics.text`
(:class:`~partonomy.eval.metrics.text.TextOutcome`) and :mod:`partonomy.eval.metrics.masks`
(:class:`~partonomy.eval.metrics.masks.QuestionMasks`); a :class:`Metric` only reduces a group of
them (all questions, or one question type) to a number. This is what lets cIoU sum intersections
and unions over a group instead of averaging ratios.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

SampleKind = Literal["text", "object", "masks"]
"""Which per-sample statistic a metric reduces: the part question's
:class:`~partonomy.eval.metrics.text.TextOutcome`, the object question's, or a question's
:class:`~partonomy.eval.metrics.masks.QuestionMasks`."""


@dataclass(frozen=True)
class Metric:
    """A named reducer over per-sample statistics.

    Attributes:
        name: the key in ``results.json`` (e.g. ``"micro_giou"``).
        sample_kind: which per-sample statistic ``reduce`` takes.
        reduce: group of per-sample statistics -> a fraction in [0, 1], or None when the metric
            is undefined for the group (e.g. no masks scored).
        higher_is_better: the direction of the metric.
        description: one line for ``partonomy ls metrics`` and the docs.
    """

    name: str
    sample_kind: SampleKind
    reduce: Callable[[Sequence[Any]], float | None]
    higher_is_better: bool = True
    description: str = ""

    def __call__(self, samples: Sequence[Any]) -> float | None:
        return self.reduce(samples)
