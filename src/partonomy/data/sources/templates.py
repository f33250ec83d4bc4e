"""Question and answer templates of the stage-1 sources (written for this project).

PLUM has no ``[SEG]`` token: the answer names what it segments, and that name is the span whose
tokens the BIO tagger marks. So every answer template holds ``{class_name}`` verbatim, and
:func:`compose_turn` checks that each span occurs exactly once, as whole words, in the answer it
builds (two spans where one contains the other, like ``table`` and ``pool table``, would make the
BIO targets ambiguous, so the later one is dropped).

Several spans in one sample are listed in one answer ("the chair, lamp and rug"), in the order of
the sample's ``masks`` dict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

QUESTIONS: tuple[str, ...] = (
    "What is {class_name} in this image? Please output segmentation mask.",
    "Can you segment the {class_name} in this image?",
    "Please segment the {class_name} in this image.",
    "Where is the {class_name} in this picture? Please output segmentation mask.",
    "Could you show me the {class_name} in this image with a mask?",
    "Segment the {class_name}.",
    "Which pixels belong to the {class_name}? Please output segmentation mask.",
    "Highlight the {class_name} in this photo.",
    "Please find the {class_name} and output its segmentation mask.",
    "Can you locate the {class_name} in this image and segment it?",
)
"""Questions about one or more class names / referring expressions."""

ANSWERS: tuple[str, ...] = (
    "Here is the {class_name} you asked about.",
    "Sure, I have segmented the {class_name}.",
    "The {class_name} is shown in the mask.",
    "Sure, this is the {class_name}.",
    "I found the {class_name} in this image.",
    "Here you go: the {class_name}.",
    "The mask covers the {class_name}.",
    "Sure, the {class_name} is segmented.",
    "This is where the {class_name} is.",
    "Done. I marked the {class_name}.",
)
"""Answers; ``{class_name}`` is the span (or the joined list of spans)."""

SENTENCE_QUESTIONS: tuple[str, ...] = (
    "{sent} Please output segmentation mask.",
    "{sent} Please respond with a segmentation mask.",
    "{sent} Answer with a segmentation mask.",
    "{sent} Output the mask of your answer.",
    "{sent} Please segment the answer in this image.",
    "{sent} Show the answer as a segmentation mask.",
)
"""ReasonSeg questions that are whole sentences (``is_sentence``)."""

EXPLAIN_SUFFIXES: tuple[str, ...] = (
    "Please output segmentation mask and explain why.",
    "Please output segmentation mask and explain the reason.",
    "Please output segmentation mask and give some explanation.",
)
"""Appended to a ReasonSeg query when the answer is explanatory."""

EXPLAINED_ANSWERS: tuple[str, ...] = (
    "Sure, it is {class_name}. {explanation}",
    "It is {class_name}. {explanation}",
    "Sure, {class_name} is segmented. {explanation}",
)
"""Explanatory ReasonSeg answers: the span, then the dataset's explanation."""


def join_names(names: Sequence[str]) -> str:
    """``["a"]`` -> ``"a"``; ``["a", "b"]`` -> ``"a and b"``; ``["a", "b", "c"]`` -> ``"a, b and c"``."""
    if not names:
        raise ValueError("join_names needs at least one name")
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


_THE_THE = re.compile(r"\b([Tt])he the\b")


def fill(template: str, class_name: str, **extra: str) -> str:
    """Fill a template; a name that already starts with "the" does not get a second one."""
    return _THE_THE.sub(r"\1he", template.format(class_name=class_name, **extra))


def occurrences(span: str, text: str) -> int:
    """How often ``span`` occurs in ``text`` as whole words (case-sensitive)."""
    return len(re.findall(r"(?<!\w)" + re.escape(span) + r"(?!\w)", text))


def compatible(name: str, chosen: Sequence[str]) -> bool:
    """True when ``name`` and each chosen name do not contain one another as whole words."""
    return all(
        name != other and not occurrences(name, other) and not occurrences(other, name)
        for other in chosen
    )


def pick_compatible(candidates: Sequence[str], limit: int) -> list[str]:
    """The first ``limit`` candidates (in the given order) that are pairwise :func:`compatible`."""
    chosen: list[str] = []
    for name in candidates:
        if len(chosen) == limit:
            break
        if compatible(name, chosen):
            chosen.append(name)
    return chosen


def compose_turn(
    names: Sequence[str],
    rng: np.random.Generator,
    questions: Sequence[str] = QUESTIONS,
    answers: Sequence[str] = ANSWERS,
) -> tuple[str, str, list[str]]:
    """Build one (question, answer) about ``names`` from random templates.

    Args:
        names: the spans, pairwise :func:`compatible`, in mask order.
        rng: the only source of randomness.
        questions, answers: template lists holding ``{class_name}``.

    Returns:
        ``(question, answer, kept)``: ``kept`` are the names that occur exactly once, as whole
        words, in ``answer``. If the drawn answer template does not fit every name (e.g.
        ``"The {class_name} ..."`` with a name starting "the", whose article would merge), the next
        templates are tried in turn; a name that fits none is dropped.
    """
    kept = list(names)
    q_tpl = questions[int(rng.integers(len(questions)))]
    start = int(rng.integers(len(answers)))
    while kept:
        joined = join_names(kept)
        first_bad: list[str] | None = None
        for offset in range(len(answers)):
            answer = fill(answers[(start + offset) % len(answers)], joined)
            bad = [n for n in kept if occurrences(n, answer) != 1]
            if not bad:
                return fill(q_tpl, joined), answer, kept
            first_bad = bad if first_bad is None else first_bad
        kept = [n for n in kept if n not in (first_bad or [])]
    raise ValueError(f"no span of {list(names)} fits any answer template")
