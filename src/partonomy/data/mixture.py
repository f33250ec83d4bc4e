"""The stage-1 training mixture: four groups of sources drawn with fixed weights.

As in the original (``--dataset sem_seg||refer_seg||vqa||reason_seg --sample_rates 9,5,5,1``), a
draw picks a group with probability proportional to its rate, then one of the group's sources
uniformly, then one of the source's items uniformly. Unlike the original (which calls the global
``random`` in every worker), a draw is a pure function of ``(seed, index)``: item ``index`` uses
its own generator seeded with ``[seed, index]``, so ``mixture[i]`` is the same sample in every
process, worker and epoch, and a resumed run sees the same data.

Readers are opened on first use (a PACO-LVIS JSON takes a while to parse); :meth:`Mixture.open_all`
opens them up front (e.g. before forking data-loader workers, so they share the memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from partonomy.config import from_dict
from partonomy.data.sample import TrainingSample
from partonomy.data.sources.base import GROUPS, SourceInfo, Stage1Options, Stage1Reader
from partonomy.errors import ConfigError


def _default_rates() -> dict[str, float]:
    return {"sem_seg": 9.0, "refer_seg": 5.0, "vqa": 5.0, "reason_seg": 1.0}


def _default_datasets() -> dict[str, list[str]]:
    return {
        "sem_seg": ["ade20k", "cocostuff", "pascal_part", "paco_lvis", "mapillary"],
        "refer_seg": ["refclef", "refcoco", "refcoco+", "refcocog"],
        "vqa": ["llava_instruct_150k"],
        "reason_seg": ["reason_seg"],
    }


@dataclass
class MixtureConfig:
    """The stage-1 mixture (PLUM's defaults).

    Attributes:
        root: the seed README's ``dataset/`` folder.
        sample_rates: group -> relative weight (9:5:5:1). A group with weight 0 is left out.
        datasets: group -> source names (registered in :data:`partonomy.registries.SOURCES`).
        num_classes_per_sample: at most this many classes / expressions per sample.
        explanatory: probability of an explanatory ReasonSeg answer.
        split: ``train`` or ``val``.
        samples_per_epoch: ``len(mixture)``; draws are with replacement, so an "epoch" is nominal.
        seed: the mixture seed.
    """

    root: str = "dataset"
    sample_rates: dict[str, float] = field(default_factory=_default_rates)
    datasets: dict[str, list[str]] = field(default_factory=_default_datasets)
    num_classes_per_sample: int = 5
    explanatory: float = 0.1
    split: str = "train"
    samples_per_epoch: int = 500 * 6 * 10
    seed: int = 0

    def __post_init__(self) -> None:
        for group in (*self.sample_rates, *self.datasets):
            if group not in GROUPS:
                raise ValueError(f"unknown group '{group}'; the groups are {', '.join(GROUPS)}")
        if any(w < 0 for w in self.sample_rates.values()):
            raise ValueError("sample_rates must be non-negative")
        active = [g for g, w in self.sample_rates.items() if w > 0]
        if not active:
            raise ValueError("at least one group needs a positive sample rate")
        for group in active:
            if not self.datasets.get(group):
                raise ValueError(f"group '{group}' has a positive rate but no datasets")
        if self.samples_per_epoch < 1:
            raise ValueError("samples_per_epoch must be positive")


@dataclass(frozen=True)
class Draw:
    """Which item a mixture index maps to (before any file is read)."""

    group: str
    source: str
    item: int


class Mixture:
    """A map-style dataset over the stage-1 sources: ``mixture[i]`` is a :class:`TrainingSample`.

    Args:
        config: the mixture config.
        readers: optional pre-built readers by source name (tests, custom sources); any other
            source is opened from the registry on first use.
    """

    def __init__(
        self, config: MixtureConfig, readers: dict[str, Stage1Reader] | None = None
    ) -> None:
        self.config = config
        self.groups = [g for g in GROUPS if config.sample_rates.get(g, 0) > 0]
        rates = np.array([config.sample_rates[g] for g in self.groups], dtype=np.float64)
        self.probabilities = rates / rates.sum()
        self._readers: dict[str, Stage1Reader] = dict(readers or {})
        self._options = Stage1Options(
            num_classes_per_sample=config.num_classes_per_sample,
            explanatory=config.explanatory,
            split=config.split,
        )

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Mixture:
        """Build from a plain dict (a YAML section); unknown keys raise :class:`ConfigError`."""
        return cls(from_dict(MixtureConfig, data, source="mixture"))

    def __len__(self) -> int:
        return self.config.samples_per_epoch

    def reader(self, name: str) -> Stage1Reader:
        """The reader of source ``name``, opened on first use."""
        if name not in self._readers:
            from partonomy.registries import SOURCES

            info: SourceInfo = SOURCES.get(name)
            if info.open_reader is None:
                raise ConfigError(f"source '{name}' is not a stage-1 source")
            self._readers[name] = info.open_reader(Path(self.config.root), self._options)
        return self._readers[name]

    def open_all(self) -> None:
        """Open every source of every active group now."""
        for group in self.groups:
            for name in self.config.datasets[group]:
                self.reader(name)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, index])

    def _choose(self, index: int, rng: np.random.Generator) -> Draw:
        group = self.groups[int(rng.choice(len(self.groups), p=self.probabilities))]
        names = self.config.datasets[group]
        name = names[int(rng.integers(len(names)))]
        size = len(self.reader(name))
        if size == 0:
            raise ConfigError(f"source '{name}' has no items under {self.config.root}")
        return Draw(group, name, int(rng.integers(size)))

    def choose(self, index: int) -> Draw:
        """The (group, source, item) of mixture index ``index``, without reading the item."""
        return self._choose(index, self._rng(index))

    def __getitem__(self, index: int) -> TrainingSample:
        if not 0 <= index < len(self):
            raise IndexError(f"mixture index {index} out of range [0, {len(self)})")
        rng = self._rng(index)
        draw = self._choose(index, rng)
        sample = self.reader(draw.source).sample(draw.item, rng)
        sample.meta = {**sample.meta, "group": draw.group, "mixture_index": str(index)}
        return sample
