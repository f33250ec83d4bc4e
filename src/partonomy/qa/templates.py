"""Every sentence a generated question or answer contains (the original generator's wording).

Part lists are sorted by the caller and joined as ``"a"``, ``"a and b"``, ``"a, b, and c"``.
The subject ``X`` of a part question is ``"object"``, or the object label for ``_with_label``
types. Concepts are introduced with an indefinite article chosen by :func:`with_article`.
"""

from __future__ import annotations

from collections.abc import Sequence

GENERIC_SUBJECT = "object"
"""What the object is called when the question must not name it."""

OBJECT_QUESTION = "What is the object in the image?"
"""The object question of ``part_to_whole`` and ``whole_to_part``."""

_VOWELS = frozenset("aeiouAEIOU")


def with_article(label: str) -> str:
    """``"airplane"`` -> ``"an airplane"``, ``"boat"`` -> ``"a boat"``.

    The rule is the first letter only (a vowel letter takes "an"), so "a unicycle" reads
    "an unicycle" and "an hour" reads "a hour": good enough for object labels, and predictable.
    """
    return f"an {label}" if label[:1] in _VOWELS else f"a {label}"


def join_parts(parts: Sequence[str]) -> str:
    """Join part names in the given order: ``"a"``, ``"a and b"``, ``"a, b, and c"``.

    Raises:
        ValueError: ``parts`` is empty (an answer always names at least one part).
    """
    if not parts:
        raise ValueError("an answer must name at least one part")
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return f"{parts[0]} and {parts[1]}"
    return f"{', '.join(parts[:-1])}, and {parts[-1]}"


def part_answer(prefix: str, parts: Sequence[str]) -> str:
    """An answer sentence: ``f"{prefix}: {join_parts(parts)}."``."""
    return f"{prefix}: {join_parts(parts)}."


def object_answer(label: str) -> str:
    """The answer naming an object: ``"It is a/an {label}."``."""
    return f"It is {with_article(label)}."


# --- Identification: parts(image) ------------------------------------------------------------


def identification_question(subject: str) -> str:
    return f"What visible parts does the {subject} in the image have?"


def identification_prefix(subject: str) -> str:
    return f"The {subject} in the image has the following visible parts"


# --- Intersection ("positive"): parts(image) & parts(C) ---------------------------------------


def intersection_question(subject: str, concept: str) -> str:
    return (
        f"What visible parts does the {subject} in the image have in common with "
        f"{with_article(concept)}?"
    )


def intersection_prefix(subject: str, concept: str) -> str:
    return (
        f"The {subject} in the image has the following visible parts in common with "
        f"{with_article(concept)}"
    )


# --- Part difference ("negative"): parts(image) - parts(C) ------------------------------------


def exclusion_question(subject: str, concept: str) -> str:
    return (
        f"What visible parts does the {subject} in the image have which "
        f"{with_article(concept)} does not have?"
    )


def exclusion_prefix(subject: str, concept: str) -> str:
    return (
        f"The {subject} in the image has the following visible parts which "
        f"{with_article(concept)} does not"
    )


# --- Two-concept difference: (parts(image) & parts(C1)) - parts(C2) ---------------------------


def difference_question(subject: str, first: str, second: str) -> str:
    return (
        f"What visible parts does the {subject} in the image have in common with "
        f"{with_article(first)} but not with {with_article(second)}?"
    )


def difference_prefix(subject: str, first: str, second: str) -> str:
    return (
        f"The {subject} in the image has the following visible parts in common with "
        f"{with_article(first)} but not with {with_article(second)}"
    )
