from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from partonomy.qa.cooccurrence import distinct_part_sets, fit_cooccurrence


def _random_sets(n: int, n_parts: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        present = rng.random(n_parts) < np.linspace(0.2, 0.7, n_parts)
        if present[0]:  # part 1 mostly comes with part 0: a real co-occurrence
            present[1] = rng.random() < 0.9
        sets.append(np.flatnonzero(present))
    return sets


def test_distinct_part_sets_counts_duplicates() -> None:
    x, counts = distinct_part_sets([[2, 0], [0, 2], [1], [0, 2, 2]], n_parts=3)
    # rows sorted: (0, 2) x3 then (1,) x1
    assert x.toarray().tolist() == [[1, 0, 1], [0, 1, 0]]
    assert counts.tolist() == [3, 1]


def test_joint_fit_equals_per_part_sklearn() -> None:
    n_parts, sets = 6, _random_sets(300, 6, seed=0)
    prior = fit_cooccurrence([f"p{i}" for i in range(n_parts)], sets, max_iter=500, tol=1e-7)
    dense = np.zeros((len(sets), n_parts))
    for row, s in enumerate(sets):
        dense[row, s] = 1
    assert np.all(np.diag(prior.weights) == 0)
    for j in range(n_parts):
        others = [k for k in range(n_parts) if k != j]
        ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(
            dense[:, others], dense[:, j]
        )
        np.testing.assert_allclose(prior.weights[others, j], ref.coef_[0], atol=2e-3)
        np.testing.assert_allclose(prior.bias[j], ref.intercept_[0], atol=2e-3)
    # the planted dependency: part 0 raises part 1's logit
    assert prior.weights[0, 1] > 1.0


def test_logits_ignore_own_presence() -> None:
    prior = fit_cooccurrence(["a", "b", "c"], [[0, 1], [0, 1], [2], [0]], max_iter=200)
    logits = prior.logits([0, 1])
    assert logits.shape == (3,)
    np.testing.assert_allclose(logits[0], prior.bias[0] + prior.weights[1, 0])
    np.testing.assert_allclose(logits[2], prior.bias[2] + prior.weights[0, 2] + prior.weights[1, 2])


def test_empty_vocabulary() -> None:
    prior = fit_cooccurrence([], [])
    assert prior.weights.shape == (0, 0) and prior.bias.shape == (0,)
