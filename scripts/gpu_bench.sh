#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md, in one go, on a machine with a CUDA GPU and its own PyTorch + Triton
# (run from the repository root; results go to ${OUT:-runs/gpu}):
#   1. the compiled (fused) scoring path equals the eager one on CUDA, every direction and norm;
#   2. the similarity benchmark on CUDA with ours in 128 × 128 and 1000 × 1000 shards, eager and fused.
set -euo pipefail
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
$PY benchmarks/check_fused_device.py --device cuda 2>&1 | tee "$OUT/check_fused_cuda.txt"
for shard in 128 1000; do
  $PY benchmarks/bench_similarity.py --device cuda --fused --ours-shard "$shard" --ref-shards 40 --skip-train \
    --json "$OUT/gpu_similarity_fused_ours$shard.json" 2>&1 | grep -v "^JSON" | tee "$OUT/bench_ours$shard.txt"
done
