"""Multi-process training on CPU (gloo) and the engine plumbing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from partonomy.errors import ConfigError
from partonomy.io.atomic import read_jsonl_tolerant
from partonomy.models.core.trainable import EMBEDDING_PATH, set_trainable
from partonomy.training import checkpoint as ckpt
from partonomy.training.distributed import (
    DistributedConfig,
    make_accelerator,
    resolve_precision,
)

from .conftest import tiny_train_overrides


def _torchrun(config: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # `accelerate launch --cpu --num_processes 2` silently runs one process; torchrun does not.
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--standalone", "-m", "partonomy.training", str(config), *overrides,
    ]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _curve(run: Path) -> list[dict[str, object]]:
    """The logged records without their wall-clock times (``time``, ``t_<phase>``)."""
    return [
        {k: v for k, v in r.items() if k != "time" and not k.startswith("t_")}
        for r in read_jsonl_tolerant(run / "train_log.jsonl")
    ]


def test_two_process_ddp_resumes_exactly_and_loads_into_eval(
    synth_qa: Path, tmp_path: Path
) -> None:
    """LoRA, the new-rows delta and dropout (LoRA's, the span extractor's) in two gloo
    processes. (accelerate runs FSDP on accelerator devices only: see the FSDP tests below.)"""
    engine = "ddp"
    run = tmp_path / "run"
    cfg = tiny_train_overrides(
        synth_qa,
        run,
        max_steps=3,
        **{"checkpoint.every": 1, "distributed.engine": engine, "log.timing": True},
    )
    config = tmp_path / f"{engine}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = _torchrun(config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"engine {engine}, 2 process(es)" in proc.stderr
    records = read_jsonl_tolerant(run / "train_log.jsonl")
    assert all(r["t_forward"] > 0 and r["t_backward"] > 0 for r in records)  # log.timing
    straight = _curve(run)
    assert [r["step"] for r in straight] == [1, 2, 3]  # rank 0 logs once per step
    assert all(int(r["tokens"]) > 0 for r in straight)  # type: ignore[call-overload]
    final = run / "checkpoints" / "final"
    assert (final / "rng_rank0.pt").exists() and (final / "rng_rank1.pt").exists()
    assert ckpt.read_resume(final)["world_size"] == 2
    assert ckpt.read_manifest(final).step == 3
    assert [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")] == [1, 2]

    # Resume the step-1 checkpoint in a new run directory: steps 2 and 3 come out identical.
    resumed_run = tmp_path / "resumed"
    step1 = run / "checkpoints" / "step_000001"
    proc = _torchrun(config, f"run_dir={resumed_run}", f"resume={step1}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "resumed from" in proc.stderr
    assert _curve(resumed_run) == straight[1:]

    # The 2-process weights load into a single-process evaluation.
    from safetensors.torch import load_file

    from partonomy.eval.harness import EvalConfig, run_eval

    model, _ = ckpt.load_checkpoint(final, merge_lora=False)
    saved = load_file(str(final / ckpt.WEIGHTS))
    params = dict(model.named_parameters())
    lora = [k for k in saved if "lora_B" in k]
    assert lora and all(torch.equal(params[k], saved[k]) for k in lora)
    assert any(saved[k].abs().sum() > 0 for k in lora)  # trained: LoRA B starts at zero
    outcome = run_eval(
        EvalConfig(
            model="plum",
            qa_file=str(synth_qa),
            out=str(tmp_path / "eval"),
            model_options={"checkpoint": str(run), "device": "cpu"},
            limit=2,
            progress=False,
        )
    )
    assert outcome.n_computed == 2 and outcome.results["overall"]["n_questions"] == 2


def test_deepspeed_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import partonomy.training.distributed as distributed

    monkeypatch.setattr(distributed, "deepspeed_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'partonomy\[deepspeed\]'"):
        make_accelerator(
            DistributedConfig(engine="deepspeed_zero2"),
            precision="auto",
            grad_accum=1,
            micro_batch=1,
            max_grad_norm=1.0,
            cpu=True,
        )


def test_engine_knobs_reach_accelerate() -> None:
    """The DDP bucket size and the FSDP prefetch and sharding settings are passed through."""
    from accelerate.state import AcceleratorState
    from torch.distributed.fsdp import BackwardPrefetch, ShardingStrategy

    from partonomy.training.distributed import fsdp_plugin

    acc = make_accelerator(
        DistributedConfig(ddp_bucket_cap_mb=100),
        precision="auto",
        grad_accum=1,
        micro_batch=1,
        max_grad_norm=1.0,
        cpu=True,
    )
    try:
        assert acc.ddp_handler.bucket_cap_mb == 100 and acc.ddp_handler.find_unused_parameters
    finally:
        AcceleratorState._reset_state()  # process-wide state: leave none for the next test
    # the defaults are what accelerate did before these knobs existed (no prefetch at all)
    default = fsdp_plugin(DistributedConfig(engine="fsdp"), cpu=True)
    assert default.backward_prefetch is None and not default.forward_prefetch
    assert default.sharding_strategy == ShardingStrategy.FULL_SHARD
    tuned = fsdp_plugin(
        DistributedConfig(
            engine="fsdp",
            fsdp_sharding="SHARD_GRAD_OP",
            fsdp_backward_prefetch="BACKWARD_PRE",
            fsdp_forward_prefetch=True,
        ),
        cpu=True,
    )
    assert tuned.backward_prefetch == BackwardPrefetch.BACKWARD_PRE and tuned.forward_prefetch
    assert tuned.sharding_strategy == ShardingStrategy.SHARD_GRAD_OP


def test_precision_on_cpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert resolve_precision("auto") == "no"
    assert resolve_precision("fp32") == "no"
    with pytest.raises(ConfigError, match="bf16"):
        resolve_precision("bf16")


def test_deepspeed_config_autocasts_instead_of_casting_the_model() -> None:
    from partonomy.training.distributed import _deepspeed_config

    cfg = _deepspeed_config(
        DistributedConfig(engine="deepspeed_zero2"),
        grad_accum=10,
        micro_batch=6,
        clip=1.0,
        bf16=True,
    )
    assert cfg["bf16"] == {"enabled": False} and cfg["fp16"] == {"enabled": False}
    assert cfg["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    assert cfg["zero_optimization"]["stage"] == 2
    assert (cfg["train_micro_batch_size_per_gpu"], cfg["gradient_accumulation_steps"]) == (6, 10)
    assert cfg["gradient_clipping"] == 1.0
    fp32 = _deepspeed_config(DistributedConfig(), grad_accum=1, micro_batch=1, clip=0.0, bf16=False)
    assert "torch_autocast" not in fp32 and fp32["gradient_clipping"] == 0.0


def test_fsdp_units_keep_frozen_weights_apart_from_trained_ones(tmp_path: Path) -> None:
    """The FSDP wrap policy: frozen bf16 weights and trained fp32 ones never share a flat
    buffer, so FSDP reduces gradients of the trained parameters only (checked by wrapping a
    tiny PLUM, LoRA and new-rows delta included, in a one-process gloo group)."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel

    from partonomy.config import from_dict
    from partonomy.models.core.family import get_family
    from partonomy.training.distributed import fsdp_units, fsdp_wrap_policy
    from partonomy.training.model import master_weights_fp32

    family = get_family("plum")
    raw = tiny_train_overrides(tmp_path / "qa.json", tmp_path / "run")["model"]
    raw["llava"]["dtype"] = raw["sam"]["dtype"] = "bfloat16"
    model, processor = family.build(from_dict(family.config_type, raw))
    spec = from_dict(family.trainable_type, {"language_model": "lora"})
    trainable = set_trainable(model, spec, new_token_ids=ckpt.processor_new_token_ids(processor))
    wrap = DistributedConfig().fsdp_wrap
    master_weights_fp32(model, trainable, fsdp_wrap=wrap)
    units = fsdp_units(model, wrap)
    layers = units[:-1]  # the last is the root
    assert all(len({p.dtype for p in unit}) == 1 for unit in units)
    # Every unit but the root is all frozen (the layers, bf16) or all trained (fp32).
    assert all(len({p.requires_grad for p in unit}) == 1 for unit in layers)
    frozen = [u for u in layers if not u[0].requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for u in frozen for p in u)
    trained = [u for u in layers if u[0].requires_grad]
    assert all(p.dtype == torch.float32 for u in trained for p in u)
    # The LoRA matrices and the new-rows delta are their own units, not in the layers' buffers.
    unit_of = {id(p): i for i, u in enumerate(units) for p in u}
    lora = [p for n, p in model.named_parameters() if ".lora_" in n]
    assert lora and all(unit_of[id(p)] != len(units) - 1 for p in lora)
    assert unit_of[id(model.get_submodule(EMBEDDING_PATH).new_rows.delta)] != len(units) - 1
    # Most trained parameters are outside the root, whose gradient covers all of it.
    n_trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for u in trained for p in u) > 0.5 * n_trained
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        wrapped = FullyShardedDataParallel(
            model,
            auto_wrap_policy=fsdp_wrap_policy(wrap),
            use_orig_params=True,
            device_id=torch.device("cpu"),
        )
        flat = [m for m in wrapped.modules() if isinstance(m, FullyShardedDataParallel)]
        assert len(flat) == len(units)
    finally:
        dist.destroy_process_group()


def test_fsdp_full_shard_trains_on_two_cpu_processes(synth_qa: Path, tmp_path: Path) -> None:
    """Forward and backward through the recipe's FSDP units with parameters sharded over two
    gloo processes (``fsdp_cpu_worker.py``): no unit's weight is read outside its forward, the
    processes agree on the collectives, and the LoRA matrices (their own units) train."""
    cfg = tiny_train_overrides(synth_qa, tmp_path / "run", **{"distributed.engine": "fsdp"})
    config = tmp_path / "fsdp.yaml"
    config.write_text(yaml.safe_dump(cfg))
    worker = Path(__file__).with_name("fsdp_cpu_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(worker), str(config)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FSDP OK"))
    loss, lora_b = (float(v) for v in line.split()[2:])
    assert loss == loss and lora_b > 0  # a finite loss; LoRA's B matrices left zero
