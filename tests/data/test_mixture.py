"""The stage-1 mixture: 9:5:5:1 proportions over 10K draws, and (seed, index) determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from partonomy.data.mixture import Mixture, MixtureConfig
from partonomy.data.sample import TrainingSample
from partonomy.errors import ConfigError


class FakeReader:
    """An in-memory reader whose sample records the item and one random draw."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size

    def __len__(self) -> int:
        return self.size

    def sample(self, index: int, rng: np.random.Generator) -> TrainingSample:
        return TrainingSample(
            image=np.zeros((2, 2, 3), np.uint8),
            conversation=[("q", f"a {rng.random():.12f}")],
            source=self.name,
            meta={"item": str(index)},
        )


def _fake_mixture(seed: int = 0, **overrides) -> Mixture:
    config = MixtureConfig(samples_per_epoch=10_000, seed=seed, **overrides)
    sizes = {"ade20k": 7, "cocostuff": 11, "pascal_part": 3, "paco_lvis": 5, "mapillary": 2}
    sizes |= {"refclef": 4, "refcoco": 4, "refcoco+": 4, "refcocog": 4}
    sizes |= {"llava_instruct_150k": 100, "reason_seg": 239}
    return Mixture(config, readers={n: FakeReader(n, s) for n, s in sizes.items()})


def test_default_config_is_plums():
    config = MixtureConfig()
    assert config.sample_rates == {"sem_seg": 9, "refer_seg": 5, "vqa": 5, "reason_seg": 1}
    assert config.datasets["sem_seg"] == [
        "ade20k",
        "cocostuff",
        "pascal_part",
        "paco_lvis",
        "mapillary",
    ]
    assert config.datasets["refer_seg"] == ["refclef", "refcoco", "refcoco+", "refcocog"]
    assert config.num_classes_per_sample == 5 and config.root == "dataset"


def test_group_and_source_proportions_over_10k_draws():
    mixture = _fake_mixture()
    draws = [mixture.choose(i) for i in range(10_000)]
    groups = Counter(d.group for d in draws)
    expected = {"sem_seg": 9 / 20, "refer_seg": 5 / 20, "vqa": 5 / 20, "reason_seg": 1 / 20}
    for group, p in expected.items():
        # binomial std at n = 10K is at most 0.005; allow 3 std
        assert abs(groups[group] / 10_000 - p) < 0.015, (group, groups)
    sem = Counter(d.source for d in draws if d.group == "sem_seg")
    for count in sem.values():  # uniform over the 5 sem-seg sources
        assert abs(count / groups["sem_seg"] - 1 / 5) < 0.03, sem
    assert len(sem) == 5
    # items are uniform within a source and always in range
    reason = Counter(d.item for d in draws if d.source == "reason_seg")
    assert max(reason) < 239 and len(reason) > 150
    cocostuff_items = Counter(d.item for d in draws if d.source == "cocostuff")
    assert set(cocostuff_items) == set(range(11))


def test_custom_rates():
    mixture = _fake_mixture(sample_rates={"sem_seg": 0, "refer_seg": 1, "vqa": 3, "reason_seg": 0})
    groups = Counter(mixture.choose(i).group for i in range(4000))
    assert set(groups) == {"refer_seg", "vqa"}
    assert abs(groups["vqa"] / 4000 - 0.75) < 0.03


def test_getitem_is_a_pure_function_of_seed_and_index():
    a, b = _fake_mixture(seed=7), _fake_mixture(seed=7)
    forward = [a[i] for i in range(50)]
    backward = [b[i] for i in reversed(range(50))][::-1]  # other order, other instance
    assert [(s.source, s.meta, s.conversation) for s in forward] == [
        (s.source, s.meta, s.conversation) for s in backward
    ]
    assert a[3].conversation == a[3].conversation  # repeated access
    other = _fake_mixture(seed=8)
    assert [other[i].conversation for i in range(50)] != [s.conversation for s in forward]
    assert forward[0].meta["mixture_index"] == "0" and forward[0].meta["group"] in (
        "sem_seg",
        "refer_seg",
        "vqa",
        "reason_seg",
    )
    with pytest.raises(IndexError):
        a[10_000]


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown key 'sample_rate'"):
        Mixture.from_dict({"sample_rate": {}})
    with pytest.raises(ConfigError, match="unknown group 'vqa2'"):
        Mixture.from_dict({"sample_rates": {"vqa2": 1}})
    with pytest.raises(ConfigError, match="no datasets"):
        Mixture.from_dict({"datasets": {"sem_seg": []}})
    mixture = Mixture.from_dict({"datasets": {"vqa": ["partimagenet"]}, "sample_rates": {"vqa": 1}})
    with pytest.raises(ConfigError, match="not a stage-1 source"):
        mixture[0]


def test_mixture_over_the_real_fixture_tree(full_tree):
    config = MixtureConfig(root=str(full_tree), samples_per_epoch=64, seed=1)
    mixture = Mixture(config)
    samples = [mixture[i] for i in range(64)]
    assert {s.meta["group"] for s in samples} == {"sem_seg", "refer_seg", "vqa", "reason_seg"}
    for s in samples:
        answer = s.conversation[-1][1]
        assert all(span in answer for span in s.masks)
        assert all(
            m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1, 255} for m in s.masks.values()
        )
        assert (s.meta["group"] == "vqa") == (not s.masks)
    again = Mixture(config)
    for i in (0, 17, 63):
        s, t = samples[i], again[i]
        assert s.conversation == t.conversation and list(s.masks) == list(t.masks)
        assert all(np.array_equal(s.masks[k], t.masks[k]) for k in s.masks)
