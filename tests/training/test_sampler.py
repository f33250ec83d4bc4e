"""Length-grouped batch plans (``data.group_by_length``): a hand-checked order, the grouping
properties with shuffling, and that resume and rank slicing see the uninterrupted run's batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from partonomy.training.sampler import BatchPlan


def test_grouped_order_by_hand() -> None:
    # Index order (no shuffle), global batch 2 (1 per process x 2), windows of 2 global batches.
    lengths = (5, 1, 4, 2, 3, 3, 0, 9, 7)
    plan = BatchPlan(9, 1, world_size=2, shuffle=False, lengths=lengths, group_window=2)
    # Window [0, 1, 2, 3] by length: 1 (1), 3 (2), 2 (4), 0 (5). Window [4, 5, 6, 7]: 6 (0),
    # then 4 and 5 (3, 3: stable, index order kept), 7 (9). Sample 8 is the dropped tail.
    assert plan.order(0).tolist() == [1, 3, 2, 0, 6, 4, 5, 7, 8]
    assert [plan.indices(g, r) for g in range(4) for r in (0, 1)] == [
        [1], [3], [2], [0], [6], [4], [5], [7]
    ]  # fmt: skip
    assert plan.indices(4, 0) == [1]  # the next epoch: same order without shuffling
    # Without lengths: the plain order.
    assert BatchPlan(9, 1, world_size=2, shuffle=False).order(0).tolist() == list(range(9))


def test_grouped_batches_are_sorted_slices_of_their_window() -> None:
    rng = np.random.default_rng(0)
    lengths = tuple(int(x) for x in rng.integers(10, 1000, 103))
    plan = BatchPlan(103, 4, world_size=2, seed=7, lengths=lengths, group_window=3)
    plain = BatchPlan(103, 4, world_size=2, seed=7)
    g, kept = plan.global_batch_size, plan.n_kept
    assert (kept, plan.batches_per_epoch) == (96, 12)
    for epoch in (0, 1):
        order, base = plan.order(epoch), plain.order(epoch)
        assert sorted(order.tolist()) == list(range(103))
        assert order[kept:].tolist() == base[kept:].tolist()  # the same random tail is dropped
        window = 3 * g
        for start in range(0, kept, window):
            ours, theirs = order[start : start + window], base[start : start + window]
            assert set(ours.tolist()) == set(theirs.tolist())  # grouping stays in its window
            batches = [np.sort(np.array(lengths)[ours[i : i + g]]) for i in range(0, window, g)]
            # Each global batch is a contiguous run of the window sorted by length: batches
            # overlap at most at their end values.
            spans = sorted((b[0], b[-1]) for b in batches)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert plan.order(0).tolist() != plan.order(1).tolist()
    padded = [max(lengths[i] for i in plan.indices(p, r)) for p in range(12) for r in (0, 1)]
    unsorted = [max(lengths[i] for i in plain.indices(p, r)) for p in range(12) for r in (0, 1)]
    assert sum(padded) < sum(unsorted)  # less padding to the longest sample of a batch


def test_grouped_plan_resumes_and_slices_ranks_exactly() -> None:
    lengths = tuple(range(50, 0, -1))
    kwargs = {"seed": 3, "lengths": lengths, "group_window": 2}
    plan = BatchPlan(50, 3, world_size=2, **kwargs)  # type: ignore[arg-type]
    uninterrupted = [[plan.indices(g, r) for r in (0, 1)] for g in range(20)]  # > 2 epochs
    # A resumed run rebuilds the plan and continues from the position alone.
    resumed = BatchPlan(50, 3, world_size=2, **kwargs)  # type: ignore[arg-type]
    assert [[resumed.indices(g, r) for r in (0, 1)] for g in range(11, 20)] == uninterrupted[11:]
    # The ranks' slices of a position are its global batch, in order.
    for g, (r0, r1) in enumerate(uninterrupted):
        epoch, within = divmod(g, plan.batches_per_epoch)
        assert r0 + r1 == plan.order(epoch)[within * 6 : within * 6 + 6].tolist()
    # One process with the global batch sees exactly what the two processes see together.
    single = BatchPlan(50, 6, world_size=1, **kwargs)  # type: ignore[arg-type]
    assert [single.indices(g) for g in range(20)] == [r0 + r1 for r0, r1 in uninterrupted]


def test_grouped_plan_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError, match="3 lengths for 4 samples"):
        BatchPlan(4, 2, lengths=(1, 2, 3))
    with pytest.raises(ValueError, match="group_window"):
        BatchPlan(4, 2, lengths=(1, 2, 3, 4), group_window=0)
