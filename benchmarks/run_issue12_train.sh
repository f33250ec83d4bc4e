#!/usr/bin/env bash
# Issue 12 item 4 in one device call on one H200: the training step through the recipe, one
# speed choice at a time (bench_train_step.py --through-recipe --recipe-lines ladder), the best
# line again with the allocator's expandable segments, and the standalone step (--choices best)
# on the same machine for reference.
# Run from the repository root with the tree in $ROOT (default .): bash benchmarks/run_issue12_train.sh
# Logs go to $OUT (default ./out). Wheels: .whl (tokenizer deps), .whl-gen (liger-kernel).
set -u
ROOT=${ROOT:-.}
OUT=${OUT:-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl .whl-gen/*.whl || exit 1
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD/$ROOT/src
BENCH="$ROOT/benchmarks/bench_train_step.py --shape 13b --batch 8"
{ uptime; nproc; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c 'import torch, transformers, liger_kernel; print(torch.__version__, transformers.__version__)'
  pip list 2>/dev/null | grep -i -E "^(torch|transformers|peft|accelerate|liger)" ; } > "$OUT/machine.txt" 2>&1
{ echo "\$ python $BENCH --through-recipe --steps 5 --recipe-lines ladder"
  timeout 240 python3 $BENCH --through-recipe --steps 5 --recipe-lines ladder
  echo "\$ PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True python $BENCH --through-recipe --steps 5 --recipe-lines bf16"
  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True timeout 60 python3 $BENCH --through-recipe --steps 5 --recipe-lines bf16
  echo "\$ python $BENCH --steps 3 --choices best"
  timeout 80 python3 $BENCH --steps 3 --choices best
} 2>&1 | grep -v -E "Backend impl|FutureWarning|warnings.warn" | tee "$OUT/train.txt"
uptime >> "$OUT/machine.txt"
