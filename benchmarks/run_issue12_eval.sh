#!/usr/bin/env bash
# Issue 12, third device call: the evaluation's default path (pipeline + compiled SAM encoder, image
# prefixes not shared) at 13B on GPU 0. Run from the repository root with the tree in $ROOT.
set -u
ROOT=${ROOT:-.carry-speed}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0 PYTHONPATH=/tmp/site:$PWD/$ROOT/src
uptime
timeout 70 python3 $ROOT/benchmarks/bench_plum_e2e.py --shape 13b --device cuda --dtype bfloat16 --batch 16 --quick 2>&1 | grep -v "warn"
uptime
