from __future__ import annotations

import pytest

from partonomy.qa import templates


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        (["wing"], "wing"),
        (["tail", "wing"], "tail and wing"),
        (["cockpit", "tail", "wing"], "cockpit, tail, and wing"),
        (["a", "b", "c", "d"], "a, b, c, and d"),
    ],
)
def test_join_parts(parts: list[str], text: str) -> None:
    assert templates.join_parts(parts) == text


def test_join_parts_refuses_empty() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        templates.join_parts([])


@pytest.mark.parametrize(
    ("label", "text"),
    [
        ("airplane", "an airplane"),
        ("boat", "a boat"),
        ("Owl", "an Owl"),
        ("umbrella", "an umbrella"),
    ],
)
def test_with_article(label: str, text: str) -> None:
    assert templates.with_article(label) == text


def test_sentences() -> None:
    assert (
        templates.identification_question("object")
        == "What visible parts does the object in the image have?"
    )
    assert (
        templates.part_answer(templates.identification_prefix("car"), ["door", "wheel"])
        == "The car in the image has the following visible parts: door and wheel."
    )
    assert (
        templates.intersection_question("car", "airplane")
        == "What visible parts does the car in the image have in common with an airplane?"
    )
    assert (
        templates.part_answer(templates.intersection_prefix("object", "bus"), ["door"])
        == "The object in the image has the following visible parts in common with a bus: door."
    )
    assert (
        templates.exclusion_question("car", "bus")
        == "What visible parts does the car in the image have which a bus does not have?"
    )
    assert (
        templates.part_answer(templates.exclusion_prefix("car", "bus"), ["mirror", "roof"])
        == "The car in the image has the following visible parts which a bus does not: "
        "mirror and roof."
    )
    assert (
        templates.difference_question("object", "bus", "truck")
        == "What visible parts does the object in the image have in common with a bus "
        "but not with a truck?"
    )
    assert (
        templates.part_answer(templates.difference_prefix("object", "bus", "truck"), ["seat"])
        == "The object in the image has the following visible parts in common with a bus "
        "but not with a truck: seat."
    )
    assert templates.OBJECT_QUESTION == "What is the object in the image?"
    assert templates.object_answer("owl") == "It is an owl."
    assert templates.object_answer("bus") == "It is a bus."
