"""Every edge-case convention of scoring, defined once (``docs/scoring.md`` quotes this module).

Changing any value here changes the numbers ``partonomy score`` reports, so it must come with a
new :data:`SCORING_PROTOCOL_VERSION`, a docs change and a golden-test change.
"""

from __future__ import annotations

from typing import Literal

SCORING_PROTOCOL_VERSION = 1
"""Version of the scoring rules below; written to ``results.json`` as ``config.protocol_version``."""

# --- masks -------------------------------------------------------------------------------------

EMPTY_UNION_IOU = 1.0
"""IoU of a pair whose union is empty (prediction and truth both empty): a perfect answer.

The original's ``empty_policy='one'``. An empty prediction against a non-empty truth needs no rule:
I = 0 and U > 0 give IoU 0. cIoU uses the same value when the summed union of a group is 0.
"""

Matching = Literal["paired", "greedy", "hungarian", "union"]
"""How predicted masks are paired with ground-truth parts (one question at a time).

* ``paired``: by part name. The prediction ``masks[p]`` is compared with the truth of part ``p``
  of the correct answer; a part with no key is *missing*; keys that are not parts of the correct
  answer are ignored.
* ``greedy``: by IoU, names ignored. All (prediction, part) pairs are visited by decreasing IoU
  (ties: lower part index first, then lower prediction index) and a pair is kept when both are
  still free, until ``min(#predictions, #parts)`` pairs are kept (zero-IoU pairs included).
* ``hungarian``: by IoU, names ignored: ``scipy.optimize.linear_sum_assignment`` maximising the
  summed IoU; ``min(#predictions, #parts)`` pairs.
  For greedy and hungarian, parts left without a prediction are *missing*; predictions left
  without a part are ignored (not penalised), as in the original.
* ``union``: one pair per question, the union of every predicted mask against the union of the
  truth of every correct part. The pair is *missing* only when the question has no predicted mask
  at all (a union of the masks given is what is compared otherwise).
For matching, a pair with an empty union has IoU :data:`EMPTY_UNION_IOU`.
"""
MATCHINGS: tuple[Matching, ...] = ("paired", "greedy", "hungarian", "union")
DEFAULT_MATCHING: Matching = "paired"

MissingPolicy = Literal["strict", "lenient"]
"""What a missing prediction counts as.

* ``strict`` (default):
  - a missing mask is an empty mask: IoU 0 against a non-empty truth (:data:`EMPTY_UNION_IOU`
    against an empty one) and its truth's area counts in the cIoU union;
  - a question with no ``choice_scores`` (no prediction line, or ``null``) while the run scores
    text is answered wrongly: it counts in the accuracy denominator and its correct parts count as
    not recalled (nothing is predicted, so precision is unaffected);
  - the same for ``object_choice_scores`` and object accuracy.
* ``lenient``: missing masks, and questions without scores, are skipped, as the original did.
Both report ``n_missing_masks`` (missing pairs, in either mode) and ``n_unanswered`` (questions
without a prediction line).
"""
MISSING_POLICIES: tuple[MissingPolicy, ...] = ("strict", "lenient")
DEFAULT_MISSING: MissingPolicy = "strict"

# --- text --------------------------------------------------------------------------------------

TIE_RULE = "lowest_index_incorrect"
"""How a tie among the minimal choice scores is broken (scores are compared exactly, ``==``).

Among the choices that share the minimal score, the lowest-index *incorrect* one is chosen, so a
tie never counts as a correct answer (the original took index 0, which is always the correct
answer in the stored data, so ties favoured the model). With one correct choice per question, a
tie always contains an incorrect choice. A question with a tie in its part or object scores (or
both) counts once in ``n_ties``.
"""

PART_NORMALISATION = "lower_strip_exact"
"""Part names are compared after ``str.strip().lower()``, as sets, by exact equality."""
