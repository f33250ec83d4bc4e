"""Multi-process training on CPU (gloo) and the engine plumbing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from partonomy.errors import ConfigError
from partonomy.io.atomic import read_jsonl_tolerant
from partonomy.training import checkpoint as ckpt
from partonomy.training.distributed import (
    DistributedConfig,
    deepspeed_available,
    make_accelerator,
    resolve_precision,
)

from .conftest import tiny_train_overrides


def test_two_process_gloo_smoke_run(synth_qa: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = tiny_train_overrides(synth_qa, run, max_steps=2, **{"checkpoint.every": 1})
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # `accelerate launch --cpu --num_processes 2` silently runs one process; torchrun does not.
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--standalone", "-m", "partonomy.training", str(config),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "engine ddp, 2 process(es)" in proc.stderr
    records = list(read_jsonl_tolerant(run / "train_log.jsonl"))
    assert [r["step"] for r in records] == [1, 2]  # rank 0 logs once per step
    final = run / "checkpoints" / "final"
    assert (final / "rng_rank0.pt").exists() and (final / "rng_rank1.pt").exists()
    assert ckpt.read_resume(final)["world_size"] == 2
    assert ckpt.read_manifest(final).step == 2
    assert ckpt.list_checkpoints(run / "checkpoints")[-1][0] == 1


def test_deepspeed_missing_is_a_clear_error() -> None:
    if deepspeed_available():
        pytest.skip("deepspeed is installed here; the error path cannot be exercised")
    with pytest.raises(ConfigError, match=r"pip install 'partonomy\[deepspeed\]'"):
        make_accelerator(
            DistributedConfig(engine="deepspeed_zero2"),
            precision="auto",
            grad_accum=1,
            micro_batch=1,
            max_grad_norm=1.0,
            cpu=True,
        )


def test_precision_on_cpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert resolve_precision("auto") == "no"
    assert resolve_precision("fp32") == "no"
    with pytest.raises(ConfigError, match="bf16"):
        resolve_precision("bf16")
