"""Part Intersection ("positive"): "... have in common with a {C}?".

Ground truth: the image's parts that concept ``C`` also has. ``C`` is drawn uniformly from the
objects sharing at least one part with the image; the image's own label is one of them, so a
self-intersection (the answer is then every part the graph knows for the label) is allowed, as
in the original. Distractors may not add a ground-truth part (or a synonym of one).

Candidate pairs (``GenerationOptions.intersection_pairs``): ``symmetric`` (default) lets any
object be ``C``; ``original`` keeps the original's asymmetric list, where ``C`` is the image's own
label or a label that sorts after it (its pair loop ran over ``j >= i``), so late labels compare
mostly with themselves. The symmetric default removes that dependence on alphabetical order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from partonomy.qa import templates
from partonomy.qa.base import QuestionDraft, one_concept_draft
from partonomy.qa.concepts import ConceptIndex, ImageContext


@dataclass(frozen=True)
class Intersection:
    """``positive`` (``with_label=False``) and ``positive_with_label``."""

    name: str
    with_label: bool
    asks_object: bool = False

    def draft(
        self, image: ImageContext, concepts: ConceptIndex, rng: np.random.Generator
    ) -> QuestionDraft | None:
        shares = concepts.overlap(image.key_rows) > 0
        if concepts.intersection_pairs == "original":
            shares &= np.array([o >= image.label for o in concepts.objects], dtype=bool)
        candidates = np.flatnonzero(shares)
        return one_concept_draft(
            image,
            concepts,
            rng,
            candidates,
            inside=True,
            with_label=self.with_label,
            question=templates.intersection_question,
            prefix=templates.intersection_prefix,
        )


POSITIVE = Intersection("positive", with_label=False)
POSITIVE_WITH_LABEL = Intersection("positive_with_label", with_label=True)
