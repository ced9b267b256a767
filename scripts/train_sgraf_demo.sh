#!/usr/bin/env bash
# Train the SGRAF demo checkpoints on the default "scenes" data (built first if missing), with every setting of
# configs/scenes.json (the SCAN demo's) plus the SGR head:
#   checkpoints/sgr-scenes            (lambda_eff = 0: SGRAF's SGR with its own ranking objective)
#   checkpoints/causmatch-sgr-scenes  (lambda_eff = 1: CausMatch on SGR, the effect-term settings of scenes.json)
# model.similarity=sgr, model.sim_dim=64 (SGRAF uses 256 at embed_size 1024; the scenes models embed in 256),
# model.sgr_step=3, model.num_region=12 (the scenes images have 12 region slots). Same seed as the SCAN demo.
# The two runs go in parallel, one CPU thread each, into runs/, and replace the checkpoints only when both
# succeeded (each swapped in by a rename). Then both are evaluated on the test split (runs/*-eval.json).
# Usage: bash scripts/train_sgraf_demo.sh [DATA_DIR]     (default assets/data/scenes; NICE=10 to run niced)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${1:-assets/data/scenes}
RUN=(nice -n "${NICE:-0}")
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
SGR=(--set model.similarity=sgr --set model.sim_dim=64 --set model.sgr_step=3 --set model.num_region=12)
"${RUN[@]}" "$PY" -c "import sys; from causmatch.data.scenes import ensure_scenes; ensure_scenes(sys.argv[1], splits=('train', 'dev', 'test'))" "$DATA"
mkdir -p runs
echo "train_sgraf_demo: start, load average $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
declare -A PRESET=([sgr]=scan [causmatch-sgr]=causmatch)
for name in sgr causmatch-sgr; do
  rm -rf "runs/$name-scenes"
  "${RUN[@]}" "$PY" -m causmatch train --data "$DATA" --out "runs/$name-scenes" --model "${PRESET[$name]}" \
    --config configs/scenes.json "${SGR[@]}" --no-progress > "runs/$name-scenes.log" 2>&1 &
done
fail=0
for job in $(jobs -p); do wait "$job" || fail=1; done
tail -n 3 runs/sgr-scenes.log runs/causmatch-sgr-scenes.log
[ "$fail" = 0 ] || { echo "train_sgraf_demo: a training run failed (see runs/*.log)" >&2; exit 1; }
echo "train_sgraf_demo: both checkpoints trained in $(( $(date +%s) - start )) s," \
     "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p checkpoints
for name in sgr causmatch-sgr; do
  # The best checkpoint only: OUT/last (optimizer state for --resume) stays in runs/.
  new="checkpoints/.$name-scenes.new"; old="checkpoints/.$name-scenes.old"
  rm -rf "$new" "$old"
  cp -r "runs/$name-scenes" "$new"
  rm -rf "$new/last" "$new/train_state.pt"
  [ -e "checkpoints/$name-scenes" ] && mv "checkpoints/$name-scenes" "$old"
  mv "$new" "checkpoints/$name-scenes"
  rm -rf "$old"
  rm -f "runs/$name-scenes-eval.json"
  "${RUN[@]}" "$PY" -m causmatch evaluate --checkpoint "checkpoints/$name-scenes" --data "$DATA" --split test \
    --json "runs/$name-scenes-eval.json"
done
