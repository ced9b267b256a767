#!/usr/bin/env bash
# Retrain both demo checkpoints from scratch on the default "scenes" data (built first if missing):
#   checkpoints/causmatch-scenes  (lambda_eff = 1, random counterfactual)
#   checkpoints/scan-scenes       (lambda_eff = 0: the SCAN baseline, same code, same settings and seed)
# The two runs go in parallel, one CPU thread each (configs/scenes.json holds every setting).
# Usage: bash scripts/train_demo.sh [DATA_DIR]     (default assets/data/scenes)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${1:-assets/data/scenes}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
"$PY" -c "import sys; from causmatch.data.scenes import ensure_scenes; ensure_scenes(sys.argv[1], splits=('train', 'dev', 'test'))" "$DATA"
mkdir -p runs
start=$(date +%s)
for model in causmatch scan; do
  "$PY" -m causmatch train --data "$DATA" --out "runs/$model-scenes" --model "$model" \
    --config configs/scenes.json --no-progress > "runs/$model-scenes.log" 2>&1 &
done
fail=0
for job in $(jobs -p); do wait "$job" || fail=1; done
tail -n 3 runs/causmatch-scenes.log runs/scan-scenes.log
[ "$fail" = 0 ] || { echo "train_demo: a training run failed (see runs/*.log)" >&2; exit 1; }
for model in causmatch scan; do
  rm -rf "checkpoints/$model-scenes"
  mkdir -p checkpoints
  # The best checkpoint only: OUT/last (optimizer state for --resume) stays in runs/.
  cp -r "runs/$model-scenes" "checkpoints/$model-scenes"
  rm -rf "checkpoints/$model-scenes/last"
done
echo "train_demo: both checkpoints retrained in $(( $(date +%s) - start )) s"
"$PY" scripts/results_tables.py --write-subset
