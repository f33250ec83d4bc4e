"""The part-whole types, which chain an identification question and the object question.

* ``part_to_whole``: first "What visible parts does the object in the image have?" (the object
  is not named), then "What is the object in the image?".
* ``whole_to_part``: first "What is the object in the image?", then "What visible parts does
  the {label} in the image have?" (named, as the first answer has revealed it).

The record holds the part question in ``question`` and the object question in
``object_question``; the chaining order follows from ``question_type``. The object choices are
made by :class:`partonomy.qa.samplers.ObjectSampler`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from partonomy.qa.base import QuestionDraft
from partonomy.qa.concepts import ConceptIndex, ImageContext
from partonomy.qa.identification import Identification


@dataclass(frozen=True)
class PartWhole:
    """``part_to_whole`` (the part question does not name the object) and ``whole_to_part``."""

    name: str
    with_label: bool
    asks_object: bool = True

    def draft(
        self, image: ImageContext, concepts: ConceptIndex, rng: np.random.Generator
    ) -> QuestionDraft | None:
        return Identification(self.name, self.with_label).draft(image, concepts, rng)


PART_TO_WHOLE = PartWhole("part_to_whole", with_label=False)
WHOLE_TO_PART = PartWhole("whole_to_part", with_label=True)
