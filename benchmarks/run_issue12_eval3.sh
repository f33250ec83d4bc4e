#!/usr/bin/env bash
# Issue 12 item 1, evaluation at 13B on one H200: the scoring variants of the default path
# (shared image prefix, fused kernels), run_eval, steady state; then the gpu tests of these paths.
# Run from the tree's root (a copy of the repository), wheels installed into /tmp/site first.
set -u
uptime; nproc
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())"
timeout "${BENCH_S:-170}" python3 benchmarks/bench_plum_e2e.py --shape 13b --device cuda --dtype bfloat16 \
  --batch 16 --quick ${BENCH_ARGS:-} 2>&1 | grep -v -i "warn" | tee "$OUT/bench.log"
uptime
timeout "${TEST_S:-45}" python3 -m pytest -q -m gpu -p no:cacheprovider tests/models/plum/test_scoring_kernels.py \
  tests/models/plum/test_scoring_roots.py tests/models/test_predictor_pipeline.py 2>&1 | tail -5 | tee "$OUT/tests.log"
