"""``benchmarks/bench_backbones.py --shape tiny``: the GPU check's code path (a ``vlm_sam3`` batch,
a PLUM training step on Qwen2.5-VL + SAM 2) runs on CPU on the tiny random models."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_backbones.py"
pytestmark = pytest.mark.usefixtures("one_thread")


def test_bench_backbones_tiny_runs_both_measurements(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_backbones", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_backbones"] = bench
    spec.loader.exec_module(bench)
    result = bench.main(["--shape", "tiny", "--batch", "2", "--steps", "1"])
    evaluation, train = result["eval"], result["train"]
    assert evaluation["questions"] == 2 and evaluation["masks"] > 0
    assert evaluation["image_tokens"] > 0 and evaluation["seconds"] > 0
    assert train["batch"] == 2 and train["trainable_m"] > 0 and train["seconds"] > 0
    assert len(train["losses"]) == 2 and all(math.isfinite(x) for x in train["losses"])
    out = capsys.readouterr().out
    assert "vlm_sam3: 2 questions" in out and "plum train step:" in out
