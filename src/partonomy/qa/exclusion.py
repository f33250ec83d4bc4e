"""Part Difference ("negative"): "... have which a {C} does not have?".

Ground truth: the image's parts that concept ``C`` does not have. ``C`` is drawn uniformly from
the objects that share at least one part with the image (so the comparison is meaningful) and
leave at least one part over (so the answer is not empty); the image's own label never
qualifies when the graph lists all of its visible parts. Distractors may not add a
ground-truth part (or a synonym of one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from partonomy.qa import templates
from partonomy.qa.base import QuestionDraft, one_concept_draft
from partonomy.qa.concepts import ConceptIndex, ImageContext


@dataclass(frozen=True)
class Exclusion:
    """``negative`` (``with_label=False``) and ``negative_with_label``."""

    name: str
    with_label: bool
    asks_object: bool = False

    def draft(
        self, image: ImageContext, concepts: ConceptIndex, rng: np.random.Generator
    ) -> QuestionDraft | None:
        shared = concepts.overlap(image.key_rows)
        # shared > 0: C has something in common; shared < n_keys: something is left over
        candidates = np.flatnonzero((shared > 0) & (shared < image.n_keys))
        return one_concept_draft(
            image,
            concepts,
            rng,
            candidates,
            inside=False,
            with_label=self.with_label,
            question=templates.exclusion_question,
            prefix=templates.exclusion_prefix,
        )


NEGATIVE = Exclusion("negative", with_label=False)
NEGATIVE_WITH_LABEL = Exclusion("negative_with_label", with_label=True)
