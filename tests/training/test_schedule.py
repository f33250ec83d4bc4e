"""The LR schedule (hand-computed values), the optimiser settings and the batch plan."""

from __future__ import annotations

import pytest
import torch

from partonomy.errors import ConfigError
from partonomy.training.sampler import BatchPlan
from partonomy.training.schedule import (
    OptimConfig,
    WarmupLinearDecay,
    build_optimizer,
    build_scheduler,
)


def test_warmup_then_linear_decay_hand_computed() -> None:
    f = WarmupLinearDecay(warmup_steps=4, total_steps=10)
    # warmup: (s+1)/4 for s = 0..3; decay: (10 - s)/(10 - 4) for s = 4..9; 0 after the last.
    expected = [0.25, 0.5, 0.75, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0]
    assert [f(s) for s in range(11)] == pytest.approx(expected)


def test_all_warmup_when_warmup_exceeds_total() -> None:
    f = WarmupLinearDecay(warmup_steps=100, total_steps=3)
    assert [f(s) for s in range(3)] == pytest.approx([0.01, 0.02, 0.03])


def test_scheduler_stepped_once_per_update_reaches_zero_at_the_end() -> None:
    cfg = OptimConfig(lr=0.3, warmup_steps=2)
    p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer([p], cfg)
    sched = build_scheduler(opt, cfg, total_steps=5)
    used = []
    for _ in range(5):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # 0.3 * [1/2, 2/2, (5-2)/3, 2/3, 1/3]
    assert used == pytest.approx([0.15, 0.3, 0.3, 0.2, 0.1])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)


def test_optimizer_is_the_papers_adamw() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    opt = build_optimizer([p, frozen], OptimConfig())
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.AdamW)
    assert (group["lr"], group["betas"], group["weight_decay"]) == (3e-4, (0.9, 0.95), 0.0)
    assert len(group["params"]) == 1  # frozen parameters are left out
    with pytest.raises(ConfigError, match="no trainable parameters"):
        build_optimizer([frozen], OptimConfig())
    with pytest.raises(ConfigError, match="betas"):
        OptimConfig(betas=(0.9, 1.5))


def test_batch_plan_shards_and_epochs() -> None:
    plan = BatchPlan(n_samples=10, micro_batch_size=2, world_size=2, seed=3)
    assert plan.batches_per_epoch == 2  # 10 // 4, the tail of 2 is dropped
    order0 = plan.order(0)
    assert plan.indices(0, 0) == order0[0:2].tolist()
    assert plan.indices(0, 1) == order0[2:4].tolist()
    assert plan.indices(1, 1) == order0[6:8].tolist()
    assert plan.indices(2, 0) == plan.order(1)[0:2].tolist()  # next epoch, new order
    assert sorted(order0.tolist()) == list(range(10))
    assert plan.order(0).tolist() != plan.order(1).tolist()
    # A pure function of the position: recomputing gives the same batches (exact resume).
    again = BatchPlan(n_samples=10, micro_batch_size=2, world_size=2, seed=3)
    assert [again.indices(g, r) for g in range(6) for r in (0, 1)] == [
        plan.indices(g, r) for g in range(6) for r in (0, 1)
    ]
    assert BatchPlan(4, 2, shuffle=False).indices(1) == [2, 3]
    with pytest.raises(ValueError, match="fewer than one global micro-batch"):
        BatchPlan(n_samples=3, micro_batch_size=2, world_size=2)
