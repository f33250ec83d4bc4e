#!/usr/bin/env bash
# Issue 12's measurements in one device call, on the two GPUs of an nvidia-h200-x2 machine at once:
#   GPU 0: bench_plum_e2e --quick (evaluation, default path), then the gpu-marked tests of the
#          optimised paths;
#   GPU 1: bench_generation (decoding: default / compiled / Liger / plain kernels), then
#          bench_train_step --through-recipe (the training recipe's own step).
# Run from the repository root with the tree in $ROOT (default .): bash benchmarks/run_issue12.sh
# Logs go to $OUT (default ./out). Wheels: .whl (tokenizer deps), .whl-gen (liger-kernel),
# $ROOT/wheels (pytest).
set -u
ROOT=${ROOT:-.}
OUT=${OUT:-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl "$ROOT"/wheels/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-liger .whl-gen/*.whl || exit 1
export PYTHONUNBUFFERED=1
BASE=/tmp/site:$PWD/$ROOT/src
{ uptime; nvidia-smi --query-gpu=name,memory.total --format=csv; python3 -c 'import torch, transformers; print(torch.__version__, transformers.__version__)'; } > "$OUT/machine.txt" 2>&1
(
  export CUDA_VISIBLE_DEVICES=0 PYTHONPATH=$BASE
  timeout 240 python3 "$ROOT"/benchmarks/bench_plum_e2e.py --shape 13b --device cuda --dtype bfloat16 --batch 16 --quick
  cd "$ROOT" && PYTHONPATH=$BASE:/tmp/site-liger timeout 120 python3 -m pytest -q -m gpu -o addopts="--import-mode=importlib" \
    tests/models/plum/test_fused_kernels.py tests/models/plum/test_scoring_roots.py tests/models/plum/test_scoring.py \
    tests/models/plum/test_static_decoder.py tests/models/test_predictor_pipeline.py tests/training/test_speed.py 2>&1 | tail -25
) > "$OUT/gpu0_eval_tests.txt" 2>&1 &
(
  export CUDA_VISIBLE_DEVICES=1 PYTHONPATH=$BASE:/tmp/site-liger
  timeout 150 python3 "$ROOT"/benchmarks/bench_generation.py --shape 13b --device cuda --dtype bfloat16 --repeats 2 --slow-tokens 32
  timeout 220 python3 "$ROOT"/benchmarks/bench_train_step.py --shape 13b --through-recipe --steps 4 --batch 8
) > "$OUT/gpu1_generation_train.txt" 2>&1 &
wait
uptime >> "$OUT/machine.txt"
