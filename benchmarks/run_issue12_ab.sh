set -u
ROOT=.carry-speed
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-liger .whl-gen/*.whl || exit 1
export PYTHONUNBUFFERED=1
BASE=/tmp/site:$PWD/$ROOT/src
( CUDA_VISIBLE_DEVICES=0 PYTHONPATH=$BASE timeout 125 python3 $ROOT/benchmarks/bench_plum_e2e.py --shape 13b --device cuda --dtype bfloat16 --batch 16 --share-ab ) > $OUT/gpu0_share_ab.txt 2>&1 &
( CUDA_VISIBLE_DEVICES=1 PYTHONPATH=$BASE:/tmp/site-liger timeout 125 python3 $ROOT/benchmarks/bench_generation.py --shape 13b --device cuda --dtype bfloat16 --repeats 2 --slow-tokens 32 ) > $OUT/gpu1_generation.txt 2>&1 &
wait; uptime > $OUT/machine.txt
