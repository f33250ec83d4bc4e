"""Each question type's ground truth, by hand on the small descriptor and by a set-based check."""

from __future__ import annotations

import numpy as np
import pytest

from partonomy.io.descriptor import Descriptor
from partonomy.qa.comparator import ExactComparator, SynonymComparator
from partonomy.qa.concepts import ConceptIndex, ImageContext, graph_from_descriptor
from partonomy.qa.difference import DIFFERENCE
from partonomy.qa.exclusion import NEGATIVE, NEGATIVE_WITH_LABEL
from partonomy.qa.identification import IDENTIFICATION, IDENTIFICATION_WITH_LABEL
from partonomy.qa.intersection import POSITIVE
from partonomy.qa.whole_part import PART_TO_WHOLE, WHOLE_TO_PART
from partonomy.registries import QUESTION_TYPES

from .conftest import OBJECT_PARTS


def _setup(descriptor: Descriptor, comparator=None) -> tuple[ConceptIndex, list[ImageContext]]:
    comparator = comparator or ExactComparator()
    concepts = ConceptIndex.build(graph_from_descriptor(descriptor), comparator)
    images = [
        ImageContext.build(i, inst.image_path, inst.image_label, inst.part_masks(), concepts)
        for i, inst in enumerate(descriptor.instances)
    ]
    return concepts, images


def _drafts(gen, image, concepts, n=40):
    return [gen.draft(image, concepts, np.random.default_rng(s)) for s in range(n)]


def test_registry_has_every_type() -> None:
    from partonomy.io.qa_pairs import QUESTION_TYPES as NAMES

    assert QUESTION_TYPES.names() == sorted(NAMES)
    for name in NAMES:
        assert QUESTION_TYPES.get(name).name == name


def test_identification(descriptor: Descriptor) -> None:
    concepts, images = _setup(descriptor)
    car = images[0]  # door, wheel, window
    d = IDENTIFICATION.draft(car, concepts, np.random.default_rng(0))
    assert d is not None
    assert d.question == "What visible parts does the object in the image have?"
    assert d.correct_parts == ("door", "wheel", "window")
    assert d.related_parts == ("door", "mirror", "roof", "wheel", "window")
    d = IDENTIFICATION_WITH_LABEL.draft(car, concepts, np.random.default_rng(0))
    assert d is not None and d.question.startswith("What visible parts does the car in")


def test_intersection_by_hand(descriptor: Descriptor) -> None:
    concepts, images = _setup(descriptor)
    drafts = _drafts(POSITIVE, images[0], concepts)  # car: door, wheel, window
    chosen = {d.concepts[0]: d.correct_parts for d in drafts if d is not None}
    # objects sharing a part with it, the car itself included (self-intersection)
    assert set(chosen) == {"bicycle", "bus", "car", "truck"}
    assert chosen["bicycle"] == ("wheel",)
    assert chosen["bus"] == ("door", "wheel", "window")
    assert chosen["car"] == ("door", "wheel", "window")
    table = images[13]  # top only: a table is the only concept with a top
    assert {d.concepts[0] for d in _drafts(POSITIVE, table, concepts) if d} == {"table"}


def test_exclusion_by_hand(descriptor: Descriptor) -> None:
    concepts, images = _setup(descriptor)
    # car (door, wheel, window): bus, truck and car share all three, animals none -> only bicycle
    drafts = _drafts(NEGATIVE, images[0], concepts)
    assert {(d.concepts, d.correct_parts) for d in drafts if d} == {
        (("bicycle",), ("door", "window"))
    }
    # cat (ear, head, tail): dog has all three; bird shares head and tail
    drafts = _drafts(NEGATIVE_WITH_LABEL, images[6], concepts)
    assert {(d.concepts, d.correct_parts) for d in drafts if d} == {(("bird",), ("ear",))}
    assert drafts[0] is not None
    assert drafts[0].question == (
        "What visible parts does the cat in the image have which a bird does not have?"
    )
    # table (top): no concept shares the top and leaves something over
    assert NEGATIVE.draft(images[13], concepts, np.random.default_rng(0)) is None


def test_difference_by_hand(descriptor: Descriptor) -> None:
    concepts, images = _setup(descriptor)
    drafts = [d for d in _drafts(DIFFERENCE, images[0], concepts) if d]
    # C1 shares >= 2 parts (car, bus, truck); C2 must cut some but not all: only bicycle (wheel)
    assert {d.concepts[0] for d in drafts} == {"bus", "car", "truck"}
    assert {d.concepts[1] for d in drafts} == {"bicycle"}
    assert {d.correct_parts for d in drafts} == {("door", "window")}
    # cat: bird fails as C1 (no C2 cuts {head, tail} partly); cat/dog as C1 with C2 = bird
    drafts = [d for d in _drafts(DIFFERENCE, images[6], concepts) if d]
    assert {d.concepts for d in drafts} == {("cat", "bird"), ("dog", "bird")}
    assert {d.correct_parts for d in drafts} == {("ear",)}
    assert DIFFERENCE.draft(images[13], concepts, np.random.default_rng(0)) is None


def test_part_whole_subjects(descriptor: Descriptor) -> None:
    concepts, images = _setup(descriptor)
    p2w = PART_TO_WHOLE.draft(images[9], concepts, np.random.default_rng(0))
    w2p = WHOLE_TO_PART.draft(images[9], concepts, np.random.default_rng(0))
    assert p2w is not None and w2p is not None
    assert PART_TO_WHOLE.asks_object and WHOLE_TO_PART.asks_object
    assert "the object in the image" in p2w.question
    assert "the bird in the image" in w2p.question
    assert p2w.correct_parts == w2p.correct_parts == ("beak", "head", "wing")


@pytest.mark.parametrize("name", ["positive", "negative", "difference"])
def test_ground_truth_is_the_set_operation(descriptor: Descriptor, name: str) -> None:
    """Against plain Python sets, for every image and many seeds."""
    concepts, images = _setup(descriptor)
    gen = QUESTION_TYPES.get(name)
    n_made = 0
    for image in images:
        visible = set(image.parts)
        for draft in _drafts(gen, image, concepts, n=15):
            if draft is None:
                continue
            n_made += 1
            sets = [set(OBJECT_PARTS[c]) for c in draft.concepts]
            if name == "positive":
                expected = visible & sets[0]
            elif name == "negative":
                expected = visible - sets[0]
                assert visible & sets[0], "the concept must share a part"
            else:
                expected = (visible & sets[0]) - sets[1]
                assert (visible & sets[0]) & sets[1], "C2 must remove something"
            assert draft.correct_parts == tuple(sorted(expected))
            assert draft.correct_parts, "empty answers are not allowed"
            assert draft.no_add_keys == frozenset(expected)
    assert n_made > 0


def test_synonyms_count_as_shared(descriptor: Descriptor) -> None:
    # with "top" ~ "backrest", a table's top is shared with a chair
    concepts, images = _setup(descriptor, SynonymComparator({"top": ["backrest"]}))
    drafts = _drafts(POSITIVE, images[13], concepts)
    assert {d.concepts[0] for d in drafts if d} == {"chair", "table"}
    assert {d.correct_parts for d in drafts if d} == {("top",)}  # the image's own name
