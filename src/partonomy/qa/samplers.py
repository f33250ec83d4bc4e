"""Sampling the parts that wrong answers add, and the objects that wrong object answers name.

Parts (:class:`PartSampler`): the mixture ``0.9 * uniform(related parts) + 0.1 * prior``, where
the prior is the softmax, at temperature 1.5, of the co-occurrence logits of every part given
the image's visible parts (:mod:`partonomy.qa.cooccurrence`). Both components are restricted to
the parts seen in the dataset and to the parts the caller still allows. The mixture is drawn in
two stages (pick the component, then the part), which has exactly the mixture's distribution
and costs one uniform draw in 90% of the cases. With no related part allowed the prior alone
is used, as in the original.

Objects (:class:`ObjectSampler`): 4 siblings of the image's object in the instance graph (all
other objects if it has fewer), drawn without replacement with probabilities
``softmax(e_label . e_other)`` over unit text embeddings, or uniformly without an embedder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from partonomy.qa.comparator import PartComparator
from partonomy.qa.cooccurrence import CooccurrencePrior

RELATED_WEIGHT = 0.9
"""Weight of the uniform-over-related-parts component of the part distribution."""
PRIOR_TEMPERATURE = 1.5
"""Softmax temperature of the co-occurrence prior."""
SIMILARITY_DECIMALS = 4
"""Embedding similarities are rounded to this many decimals before the softmax, so that
last-bit differences between machines (BLAS, threads) do not change seeded draws."""


class PartSampler:
    """The part distribution of one dataset (vocabulary, prior, synonym keys).

    Args:
        prior: the fitted co-occurrence prior; its vocabulary is the set of parts seen in the
            dataset, and nothing outside it is ever sampled.
        comparator: maps parts to canonical keys (for the no-add rule of set-operation types).
        related_weight: weight of the related-parts component.
        temperature: softmax temperature of the prior.
    """

    def __init__(
        self,
        prior: CooccurrencePrior,
        comparator: PartComparator,
        *,
        related_weight: float = RELATED_WEIGHT,
        temperature: float = PRIOR_TEMPERATURE,
    ) -> None:
        self.prior = prior
        self.related_weight = related_weight
        self.temperature = temperature
        self.index = {p: i for i, p in enumerate(prior.vocab)}
        self._by_key: dict[str, list[int]] = {}
        for i, part in enumerate(prior.vocab):
            self._by_key.setdefault(comparator.canonical(part), []).append(i)

    def image_weights(self, present: Iterable[str]) -> np.ndarray:
        """Unnormalised prior probabilities of every vocabulary part for one image.

        Args:
            present: the image's visible parts (names outside the vocabulary are ignored).

        Returns:
            ``(P,)`` float64 ``exp((logit - max logit) / temperature)``, all in ``(0, 1]``
            (some may underflow to 0).
        """
        idx = [self.index[p] for p in present if p in self.index]
        logits = self.prior.logits(idx) / self.temperature
        return np.exp(logits - logits.max()) if len(logits) else logits

    def for_question(
        self, weights: np.ndarray, related: Iterable[str], no_add_keys: Iterable[str] = ()
    ) -> QuestionPartSampler:
        """A sampler for one question of an image with prior ``weights`` (:meth:`image_weights`).

        Args:
            related: the parts of the uniform component (unseen parts are dropped).
            no_add_keys: canonical keys whose parts may never be sampled.
        """
        banned = [i for k in no_add_keys for i in self._by_key.get(k, ())]
        banned_names = frozenset(self.prior.vocab[i] for i in banned)
        related_seen = tuple(p for p in sorted(set(related)) if p in self.index)
        return QuestionPartSampler(
            sampler=self,
            weights=weights,
            related=tuple(p for p in related_seen if p not in banned_names),
            banned=np.asarray(banned, dtype=np.int64),
        )


@dataclass(frozen=True)
class QuestionPartSampler:
    """Draws one part at a time for the wrong answers of one question.

    Attributes:
        sampler: the dataset's :class:`PartSampler`.
        weights: ``(P,)`` prior weights of the image.
        related: the allowed related parts, sorted.
        banned: ``(n,)`` vocabulary indices never drawn.
    """

    sampler: PartSampler
    weights: np.ndarray
    related: tuple[str, ...]
    banned: np.ndarray

    def sample(self, rng: np.random.Generator, excluded: Iterable[str]) -> str | None:
        """One part that is not in ``excluded``, or None when no part is left.

        Args:
            rng: the question's generator.
            excluded: parts already in the answer or touched by an earlier operation.
        """
        excluded = set(excluded)
        allowed = [p for p in self.related if p not in excluded]
        if allowed and rng.random() < self.sampler.related_weight:
            return allowed[int(rng.integers(len(allowed)))]
        weights = self.weights.copy()
        weights[self.banned] = 0.0
        index = self.sampler.index
        weights[[index[p] for p in excluded if p in index]] = 0.0
        cumulative = np.cumsum(weights)
        total = float(cumulative[-1]) if len(cumulative) else 0.0
        if total <= 0.0:  # the prior put (numerically) nothing on the allowed parts
            return allowed[int(rng.integers(len(allowed)))] if allowed else None
        pick = int(np.searchsorted(cumulative, rng.random() * total, side="right"))
        return self.sampler.prior.vocab[min(pick, len(cumulative) - 1)]


class ObjectSampler:
    """Wrong object answers for the part-whole types.

    Args:
        all_objects: every object label (the fallback pool), sorted.
        siblings: object -> the other objects of its category.
        embeddings: object -> unit text embedding ``(d,)`` float32, or None for uniform draws.
    """

    def __init__(
        self,
        all_objects: Sequence[str],
        siblings: Mapping[str, Sequence[str]],
        embeddings: Mapping[str, np.ndarray] | None,
    ) -> None:
        self.all_objects = tuple(all_objects)
        self.siblings = siblings
        self.embeddings = embeddings

    def candidates(self, label: str, k: int) -> tuple[str, ...]:
        """The pool for ``label``: its siblings, or all other objects if it has fewer than ``k``."""
        pool = tuple(self.siblings.get(label, ()))
        if len(pool) < k:
            pool = tuple(o for o in self.all_objects if o != label)
        return pool

    def sample(self, label: str, k: int, rng: np.random.Generator) -> list[str] | None:
        """``k`` distinct objects other than ``label``, or None if fewer than ``k`` exist."""
        pool = self.candidates(label, k)
        if len(pool) < k:
            return None
        probs = None
        if self.embeddings is not None:
            query = self.embeddings[label]
            sims = np.array([float(self.embeddings[o] @ query) for o in pool])
            sims = np.round(sims, SIMILARITY_DECIMALS)
            probs = np.exp(sims - sims.max())
            probs /= probs.sum()
        picks = rng.choice(len(pool), size=k, replace=False, p=probs)
        return [pool[int(i)] for i in picks]
