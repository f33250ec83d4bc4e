"""The label conventions of PARTONOMY descriptors (one definition, used everywhere).

* Object labels: ``object--{obj}``, where ``{obj}`` may itself be ``category--object`` (Core).
* Part labels: ``{obj}--part:{part}``.
"""

from __future__ import annotations

OBJECT_PREFIX = "object--"
PART_SEP = "--part:"
CATEGORY_SEP = "--"


def object_label(obj: str) -> str:
    """``"airplane"`` -> ``"object--airplane"``."""
    return f"{OBJECT_PREFIX}{obj}"


def part_label(obj: str, part: str) -> str:
    """``("airplane", "wing")`` -> ``"airplane--part:wing"``."""
    return f"{obj}{PART_SEP}{part}"


def is_part_label(label: str) -> bool:
    return PART_SEP in label


def is_object_label(label: str) -> bool:
    return label.startswith(OBJECT_PREFIX)


def split_part_label(label: str) -> tuple[str, str]:
    """``"airplane--part:wing"`` -> ``("airplane", "wing")``.

    Raises:
        ValueError: the label has no ``--part:`` separator.
    """
    obj, sep, part = label.rpartition(PART_SEP)
    if not sep:
        raise ValueError(f"'{label}' is not a part label (expected '<object>{PART_SEP}<part>')")
    return obj, part


def part_name(label: str) -> str:
    """The bare part name of a label: ``"airplane--part:wing"`` -> ``"wing"``; a bare name is kept."""
    return label.rpartition(PART_SEP)[2]


def object_name(label: str) -> str:
    """``"object--airplane"`` -> ``"airplane"``; other labels are returned unchanged."""
    return label[len(OBJECT_PREFIX) :] if label.startswith(OBJECT_PREFIX) else label
