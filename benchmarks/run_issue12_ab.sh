#!/usr/bin/env bash
# Issue 12, second device call: image-prefix sharing A/B (GPU 0); generation (default kernels with
# liger-kernel installed) and the recipe with every speed option incl. prefetch (GPU 1).
set -u
ROOT=.carry-speed
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-liger .whl-gen/*.whl || exit 1
export PYTHONUNBUFFERED=1
BASE=/tmp/site:$PWD/$ROOT/src
( CUDA_VISIBLE_DEVICES=0 PYTHONPATH=$BASE timeout 120 python3 $ROOT/benchmarks/bench_plum_e2e.py --shape 13b --device cuda --dtype bfloat16 --batch 16 --share-ab ) > $OUT/gpu0_share_ab.txt 2>&1 &
( export CUDA_VISIBLE_DEVICES=1 PYTHONPATH=$BASE:/tmp/site-liger; timeout 65 python3 $ROOT/benchmarks/bench_generation.py --shape 13b --device cuda --dtype bfloat16 --repeats 2 --slow-tokens 32; timeout 60 python3 $ROOT/benchmarks/bench_train_step.py --shape 13b --through-recipe --steps 4 --batch 8 --recipe-lines all ) > $OUT/gpu1_generation_train.txt 2>&1 &
wait; uptime > $OUT/machine.txt
