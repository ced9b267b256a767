#!/usr/bin/env bash
# Retrain both demo checkpoints from scratch on the default "scenes" data (built first if missing):
#   checkpoints/causmatch-scenes  (lambda_eff = 1 and the effect-term settings of configs/scenes.json)
#   checkpoints/scan-scenes       (lambda_eff = 0: the SCAN baseline, same code, same settings and seed)
# configs/scenes.json holds every setting; the two runs differ only in lambda_eff (the effect-term settings
# are inert at lambda_eff = 0). They go in parallel, one CPU thread each, into runs/, and replace the
# checkpoints only when both succeeded (each swapped in by a rename, so a reader never sees half a directory).
# Usage: bash scripts/train_demo.sh [DATA_DIR]     (default assets/data/scenes)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${1:-assets/data/scenes}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
"$PY" -c "import sys; from causmatch.data.scenes import ensure_scenes; ensure_scenes(sys.argv[1], splits=('train', 'dev', 'test'))" "$DATA"
mkdir -p runs
echo "train_demo: start, load average $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
for model in causmatch scan; do
  rm -rf "runs/$model-scenes"
  "$PY" -m causmatch train --data "$DATA" --out "runs/$model-scenes" --model "$model" \
    --config configs/scenes.json --no-progress > "runs/$model-scenes.log" 2>&1 &
done
fail=0
for job in $(jobs -p); do wait "$job" || fail=1; done
tail -n 3 runs/causmatch-scenes.log runs/scan-scenes.log
[ "$fail" = 0 ] || { echo "train_demo: a training run failed (see runs/*.log)" >&2; exit 1; }
echo "train_demo: both checkpoints retrained in $(( $(date +%s) - start )) s," \
     "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p checkpoints
for model in causmatch scan; do
  # The best checkpoint only: OUT/last (optimizer state for --resume) stays in runs/.
  new="checkpoints/.$model-scenes.new"; old="checkpoints/.$model-scenes.old"
  rm -rf "$new" "$old"
  cp -r "runs/$model-scenes" "$new"
  rm -rf "$new/last" "$new/train_state.pt"
  [ -e "checkpoints/$model-scenes" ] && mv "checkpoints/$model-scenes" "$old"
  mv "$new" "checkpoints/$model-scenes"
  rm -rf "$old"
done
"$PY" scripts/results_tables.py --write-subset
