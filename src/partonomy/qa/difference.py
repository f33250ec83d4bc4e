"""Two-concept difference: "... have in common with a {C1} but not with a {C2}?".

Ground truth: ``(parts(image) & parts(C1)) - parts(C2)``. Both steps must mean something: the
intersection with ``C1`` is non-empty, ``C2`` shares at least one of those parts (a real
difference) and leaves at least one over (a non-empty answer). So ``C1`` needs at least two
shared parts. ``C1`` candidates are tried in a random order (the image's own label included)
and the first with a valid ``C2`` is kept; ``C2`` is uniform among the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from partonomy.qa import templates
from partonomy.qa.base import QuestionDraft, related, subject
from partonomy.qa.concepts import ConceptIndex, ImageContext


@dataclass(frozen=True)
class Difference:
    """``difference`` (``with_label=False``) and ``difference_with_label``."""

    name: str
    with_label: bool
    asks_object: bool = False

    def draft(
        self, image: ImageContext, concepts: ConceptIndex, rng: np.random.Generator
    ) -> QuestionDraft | None:
        firsts = np.flatnonzero(concepts.overlap(image.key_rows) >= 2)
        for col in rng.permutation(firsts):
            first = concepts.objects[int(col)]
            common = image.key_rows[concepts.membership[image.key_rows, col]]  # (n1,) key rows
            shared = concepts.overlap(common)
            seconds = np.flatnonzero((shared > 0) & (shared < len(common)))
            if len(seconds) == 0:
                continue
            second = concepts.objects[int(seconds[rng.integers(len(seconds))])]
            keep = concepts.object_keys[first] - concepts.object_keys[second]
            correct = image.parts_where(keep, inside=True)
            who = subject(image, self.with_label)
            return QuestionDraft(
                question=templates.difference_question(who, first, second),
                answer_prefix=templates.difference_prefix(who, first, second),
                correct_parts=correct,
                related_parts=related(
                    image.object_parts,
                    concepts.object_parts[first],
                    concepts.object_parts[second],
                ),
                no_add_keys=frozenset(image.keys[p] for p in correct),
                concepts=(first, second),
            )
        return None


DIFFERENCE = Difference("difference", with_label=False)
DIFFERENCE_WITH_LABEL = Difference("difference_with_label", with_label=True)
