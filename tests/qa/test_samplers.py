from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from partonomy.qa.comparator import ExactComparator, SynonymComparator
from partonomy.qa.cooccurrence import CooccurrencePrior
from partonomy.qa.samplers import ObjectSampler, PartSampler


def _prior(vocab: list[str], bias: list[float]) -> CooccurrencePrior:
    n = len(vocab)
    return CooccurrencePrior(tuple(vocab), np.zeros((n, n)), np.asarray(bias, dtype=float))


def _frequencies(draw, n: int) -> dict[str, float]:
    counts = Counter(draw() for _ in range(n))
    return {k: v / n for k, v in counts.items()}


def test_part_distribution_is_the_mixture() -> None:
    vocab = ["a", "b", "c", "d"]
    bias = [0.0, 1.5, 3.0, -1.5]
    sampler = PartSampler(_prior(vocab, bias), ExactComparator())
    weights = sampler.image_weights(["a"])
    # related: a (excluded below), b, and "zzz" (never seen: dropped)
    question = sampler.for_question(weights, ["a", "b", "zzz"])
    assert question.related == ("a", "b")
    rng = np.random.default_rng(0)
    freq = _frequencies(lambda: question.sample(rng, excluded={"a"}), 40_000)
    # by hand: prior over allowed {b, c, d} is softmax([1.5, 3, -1.5] / 1.5) = e^[1, 2, -1] / Z
    prior = np.exp([1.0, 2.0, -1.0]) / np.exp([1.0, 2.0, -1.0]).sum()
    expected = {"b": 0.9 + 0.1 * prior[0], "c": 0.1 * prior[1], "d": 0.1 * prior[2]}
    assert "a" not in freq
    for part, p in expected.items():
        assert freq.get(part, 0.0) == pytest.approx(p, abs=0.01)


def test_prior_alone_without_related_parts() -> None:
    sampler = PartSampler(_prior(["a", "b", "c"], [0.0, 0.0, 0.0]), ExactComparator())
    question = sampler.for_question(sampler.image_weights([]), related=["a"])
    rng = np.random.default_rng(1)
    freq = _frequencies(lambda: question.sample(rng, excluded={"a"}), 20_000)
    assert set(freq) == {"b", "c"}
    assert freq["b"] == pytest.approx(0.5, abs=0.02)


def test_no_add_keys_ban_synonyms_and_none_when_exhausted() -> None:
    comparator = SynonymComparator({"wheel": ["tire"]})
    sampler = PartSampler(_prior(["door", "tire", "wheel"], [0.0, 5.0, 5.0]), comparator)
    question = sampler.for_question(
        sampler.image_weights(["wheel"]), related=["tire", "wheel", "door"], no_add_keys={"wheel"}
    )
    assert question.related == ("door",)
    rng = np.random.default_rng(2)
    assert {question.sample(rng, excluded=set()) for _ in range(500)} == {"door"}
    assert question.sample(rng, excluded={"door"}) is None


def test_synonym_comparator_rejects_overlapping_groups() -> None:
    with pytest.raises(ValueError, match="two synonym groups"):
        SynonymComparator({"wheel": ["tire"], "tyre": ["tire"]})


def test_object_sampler_pools() -> None:
    objects = ["bus", "car", "cat", "dog", "owl", "truck"]
    siblings = {"car": ["bus", "truck"], "cat": ["dog", "owl", "bus", "truck"]}
    sampler = ObjectSampler(objects, siblings, embeddings=None)
    assert sampler.candidates("cat", 4) == ("dog", "owl", "bus", "truck")
    # car has 2 siblings < 4: every other object
    assert sampler.candidates("car", 4) == ("bus", "cat", "dog", "owl", "truck")
    rng = np.random.default_rng(0)
    picks = sampler.sample("car", 4, rng)
    assert picks is not None and len(set(picks)) == 4 and "car" not in picks
    assert ObjectSampler(["a", "b", "c", "d"], {}, None).sample("a", 4, rng) is None


def test_object_sampler_weights_by_similarity() -> None:
    # unit vectors whose dot products with "q" are 1, 0 and -1
    emb = {
        "q": np.array([1.0, 0.0]),
        "near": np.array([1.0, 0.0]),
        "mid": np.array([0.0, 1.0]),
        "far": np.array([-1.0, 0.0]),
    }
    sampler = ObjectSampler(sorted(emb), {"q": ["near", "mid", "far"]}, emb)
    rng = np.random.default_rng(3)
    freq = _frequencies(lambda: sampler.sample("q", 1, rng)[0], 20_000)  # type: ignore[index]
    expected = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    for name, p in zip(["near", "mid", "far"], expected):
        assert freq[name] == pytest.approx(p, abs=0.015)
