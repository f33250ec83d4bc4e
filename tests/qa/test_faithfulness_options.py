"""The generation fixes of issue 11 on the hand-built graph of conftest.py (plus extra objects)."""

from __future__ import annotations

from typing import Any

import pytest

from partonomy.io.descriptor import Descriptor
from partonomy.io.labels import part_label
from partonomy.qa.generate import GenerationOptions, generate_qa
from partonomy.qa.samplers import PartSampler

from .conftest import ToyEmbedder, make_descriptor


def _generate(descriptor: Descriptor, seed: int = 0, *, types: list[str], **options: Any):  # type: ignore[no-untyped-def]
    return generate_qa(
        descriptor,
        seed=seed,
        types=types,
        progress=False,
        embedder=ToyEmbedder(),
        options=GenerationOptions(**options),
    )


def _related_seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Record the related parts every question hands to the part sampler."""
    seen: list[tuple[str, ...]] = []
    original = PartSampler.for_question

    def spy(self: PartSampler, weights: Any, related: Any, no_add_keys: Any = ()) -> Any:
        seen.append(tuple(sorted(related)))
        return original(self, weights, related, no_add_keys)

    monkeypatch.setattr(PartSampler, "for_question", spy)
    return seen


@pytest.mark.parametrize("policy", ["ground_truth", "identification"])
def test_part_whole_related_parts(
    descriptor: Descriptor, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    seen = _related_seen(monkeypatch)
    records = _generate(
        descriptor, types=["part_to_whole", "whole_to_part"], part_whole_related=policy
    ).records
    assert records and len(seen) == len(records)
    for qa, related in zip(records, seen, strict=True):
        visible = tuple(sorted(qa.correct_parts))
        if policy == "ground_truth":  # the original: related_parts = gt_parts (prior only)
            assert related == visible
        else:  # identification's rule: the label's graph parts join
            assert set(visible) <= set(related)
    if policy == "identification":  # image 0 (car: door, wheel, window) also relates mirror, roof
        assert any({"mirror", "roof"} <= set(r) for r in seen)


def _concept(qa_question: str, labels: list[str]) -> str:
    return next(
        lbl for lbl in labels if f"with a {lbl}?" in qa_question or f"with an {lbl}?" in qa_question
    )


def test_intersection_pairs_original_is_asymmetric(descriptor: Descriptor) -> None:
    labels = sorted({inst.image_label for inst in descriptor.instances}, key=len, reverse=True)
    by_policy: dict[str, list[tuple[str, str]]] = {}
    for policy in ("symmetric", "original"):
        pairs = []
        for seed in range(12):
            for qa in _generate(
                descriptor, seed, types=["positive"], intersection_pairs=policy
            ).records:
                pairs.append((qa.image_label, _concept(qa.question, labels)))
        by_policy[policy] = pairs
    # original: a label is compared only with itself or labels sorting after it
    assert all(concept >= label for label, concept in by_policy["original"])
    # 'truck' sorts last among the vehicles sharing its parts: under 'original' it only meets itself
    assert {c for lbl, c in by_policy["original"] if lbl == "truck"} == {"truck"}
    assert any(concept < label for label, concept in by_policy["symmetric"])


def test_concept_pool_is_labels_with_images() -> None:
    descriptor = make_descriptor()
    # an object of the graph without any image, sharing parts with every vehicle
    descriptor.part_graph["van"] = [part_label("van", p) for p in ("door", "wheel", "window")]
    descriptor.instance_graph["vehicle"].append("van")
    types = ["positive", "negative", "difference", "part_to_whole"]
    mentions = {}
    for pool in ("with_images", "graph"):
        text = []
        for seed in range(6):
            for qa in _generate(descriptor, seed, types=types, concept_pool=pool).records:
                text.append(qa.question)
                text.extend(qa.object_answer_choices or [])
        mentions[pool] = sum(" van" in t for t in text)
    assert mentions["with_images"] == 0
    assert mentions["graph"] > 0


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="intersection_pairs"):
        GenerationOptions(intersection_pairs="sorted")  # type: ignore[arg-type]
