"""Two FULL_SHARD FSDP training steps of a tiny PLUM on CPUs (gloo), with the recipe's units.

Run by ``test_distributed.py`` under torchrun with 2 processes (accelerate runs FSDP on
accelerator devices only, so this wraps the model with torch's FSDP directly, as accelerate
would: the recipe's wrap policy, ``use_orig_params``). Sharding over two processes makes every
unit's parameters partial outside its forward, so a module that reads another unit's weight
without calling it fails here as it would on GPUs, and so do processes that call the units a
different number of times. Rank 0 prints ``FSDP OK <loss> <sum |LoRA B|>`` (B starts at zero).

Usage: ``torchrun --nproc_per_node 2 fsdp_cpu_worker.py CONFIG.yaml``
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy

from partonomy.models.core.family import get_family
from partonomy.models.core.losses import compute_losses, resolve_weights
from partonomy.models.core.trainable import set_trainable
from partonomy.training.batches import Batches, touch_outputs
from partonomy.training.checkpoint import processor_new_token_ids
from partonomy.training.config import load_train_config
from partonomy.training.data import load_samples
from partonomy.training.distributed import fsdp_wrap_policy
from partonomy.training.model import build_model, master_weights_fp32
from partonomy.training.sampler import BatchPlan


def main(config: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = load_train_config(config)
    model, processor = build_model(cfg)
    torch.manual_seed(cfg.seed + rank)
    trainable = set_trainable(
        model, cfg.trainable, new_token_ids=processor_new_token_ids(processor)
    )
    wrap = cfg.distributed.fsdp_wrap
    master_weights_fp32(model, trainable, fsdp_wrap=wrap)
    lora_b = [p for n, p in model.named_parameters() if ".lora_B." in n]
    fsdp = FullyShardedDataParallel(
        model,
        auto_wrap_policy=fsdp_wrap_policy(wrap),
        sharding_strategy=ShardingStrategy.FULL_SHARD,
        use_orig_params=True,
        device_id=torch.device("cpu"),
    )
    samples = load_samples(cfg.data)
    plan = BatchPlan(
        n_samples=len(samples),
        micro_batch_size=cfg.data.micro_batch_size,
        world_size=world,
        seed=cfg.seed,
        shuffle=cfg.data.shuffle,
    )
    batches = Batches(
        samples,
        processor,
        plan,
        rank=rank,
        lm_tokens=cfg.loss.lm_tokens,
        image_token_id=model.image_token_id,
    )
    terms = get_family(cfg.family).loss_terms
    weights = resolve_weights(terms, cfg.loss.weights)
    optimizer = torch.optim.AdamW([p for p in fsdp.parameters() if p.requires_grad], lr=1e-2)
    for step in range(2):
        batch = batches.batch(step)
        output = fsdp(batch, span_source=cfg.span_source, lm_rows="labelled")
        losses = compute_losses(terms, weights, output, batch, seg_loss=cfg.loss.seg_loss)
        (losses.total + touch_outputs(output)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    with FullyShardedDataParallel.summon_full_params(fsdp, writeback=False):
        moved = sum(float(p.detach().abs().sum()) for p in lora_b)
    if rank == 0:
        print(f"FSDP OK {float(losses.total):.6f} {moved:.6f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
