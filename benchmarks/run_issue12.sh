#!/usr/bin/env bash
# Issue 12's measurements in one device call on one H200, one after another:
#   1. bench_plum_e2e --quick (evaluation: the default path, run_eval over PNGs, steady state),
#      without liger-kernel (what a bare install gets);
#   2. bench_train_step --through-recipe (the training recipe's own step, speed options one by one),
#      with liger-kernel;
#   3. the gpu-marked tests of the optimised paths (decoding, scoring, training, strict resume).
# Run from the repository root with the tree in $ROOT (default .): bash benchmarks/run_issue12.sh
# Logs go to $OUT (default ./out). Wheels: .whl (tokenizer deps), .whl-gen (liger-kernel).
set -u
ROOT=${ROOT:-.}
OUT=${OUT:-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-liger .whl-gen/*.whl || exit 1
export PYTHONUNBUFFERED=1
BASE=/tmp/site:$PWD/$ROOT/src
QUIET="Backend impl|FutureWarning|warnings.warn|UserWarning"
{ uptime; nproc; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c 'import torch, transformers; print(torch.__version__, transformers.__version__)'; } > "$OUT/machine.txt" 2>&1
{ echo "\$ python benchmarks/bench_plum_e2e.py --shape 13b --device cuda --dtype bfloat16 --batch 16 --quick --variants default --repeats 2 --steady 5"
  PYTHONPATH=$BASE timeout 220 python3 "$ROOT"/benchmarks/bench_plum_e2e.py --shape 13b --device cuda \
    --dtype bfloat16 --batch 16 --quick --variants default --repeats 2 --steady 5
  echo "\$ python benchmarks/bench_train_step.py --shape 13b --batch 8 --through-recipe --steps 5 --recipe-lines fused,ahead,grouped,fused"
  PYTHONPATH=$BASE:/tmp/site-liger timeout 200 python3 "$ROOT"/benchmarks/bench_train_step.py --shape 13b \
    --batch 8 --through-recipe --steps 5 --recipe-lines fused,ahead,grouped,fused
} 2>&1 | grep -v -E "$QUIET" | tee "$OUT/bench.txt"
uptime >> "$OUT/machine.txt"
cd "$ROOT" && PYTHONPATH=$BASE:/tmp/site-liger timeout 170 python3 -m pytest -q -m gpu -p no:cacheprovider \
  -o addopts="--import-mode=importlib" \
  tests/models/plum/test_generation_eager.py tests/models/plum/test_static_decoder.py \
  tests/models/plum/test_fused_kernels.py tests/models/plum/test_scoring_kernels.py \
  tests/models/plum/test_scoring_roots.py tests/models/plum/test_scoring.py \
  tests/models/test_predictor_pipeline.py tests/training/test_speed.py tests/training/test_checkpoint.py \
  2>&1 | tail -30 > "$OUT/gpu_tests.txt"
