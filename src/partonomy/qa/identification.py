"""Part Identification: "What visible parts does the {object|label} in the image have?".

Ground truth: every visible part of the image. Distractors favour the parts the object's label
has in the concept graph (so a wrong answer often names a part that is not visible here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from partonomy.qa import templates
from partonomy.qa.base import QuestionDraft, related, subject
from partonomy.qa.concepts import ConceptIndex, ImageContext


@dataclass(frozen=True)
class Identification:
    """``identification`` (``with_label=False``) and ``identification_with_label``."""

    name: str
    with_label: bool
    asks_object: bool = False

    def draft(
        self, image: ImageContext, concepts: ConceptIndex, rng: np.random.Generator
    ) -> QuestionDraft | None:
        if not image.parts:
            return None
        who = subject(image, self.with_label)
        return QuestionDraft(
            question=templates.identification_question(who),
            answer_prefix=templates.identification_prefix(who),
            correct_parts=image.parts,
            related_parts=related(image.object_parts, image.parts),
        )


IDENTIFICATION = Identification("identification", with_label=False)
IDENTIFICATION_WITH_LABEL = Identification("identification_with_label", with_label=True)
