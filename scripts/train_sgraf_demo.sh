#!/usr/bin/env bash
# The SGRAF demo checkpoints, trained and evaluated exactly as the bias sweep's runs at bias 0.9, seed 0
# (docs/results.md, "SGRAF (SGR) beside SCAN"): the sweep's data (5,000 train / 1,000 dev images at bias 0.9,
# the shared test split, which is byte-identical to the default scenes test split), its 3-epoch schedule from
# configs/scenes.json, and SGRAF's SGR head at the demo's sizes (model.similarity=sgr, sim_dim 64 at embed 256,
# sgr_step 3, num_region 12: the scenes images' region slots):
#   checkpoints/sgr-scenes            the fair baseline (SCAN's ranking loss with VSE++'s one-epoch warm-up)
#   checkpoints/causmatch-sgr-scenes  CausMatch on SGR (the demo's effect-term settings)
# Each is the run's best checkpoint by dev rSum (its resume state left out), swapped in by a rename only when
# both runs and evaluations succeeded. Usage: bash scripts/train_sgraf_demo.sh   (SEED=N for another seed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SEED=${SEED:-0}
export HF_HUB_OFFLINE=1
"$PY" scripts/bias_sweep.py --biases 0.9 --seeds "$SEED" --models sgr-warmup,causmatch-sgr \
  --results runs/bias_sweep/results-sgr
mkdir -p checkpoints
for pair in "sgr-warmup:sgr-scenes" "causmatch-sgr:causmatch-sgr-scenes"; do
  run="runs/bias_sweep/runs/${pair%%:*}-b0.9-s$SEED"; dest="checkpoints/${pair##*:}"
  new="checkpoints/.${pair##*:}.new"; old="checkpoints/.${pair##*:}.old"
  rm -rf "$new" "$old"
  mkdir "$new"
  cp "$run/config.json" "$run/model.safetensors" "$new/"
  [ -e "$dest" ] && mv "$dest" "$old"
  mv "$new" "$dest"
  rm -rf "$old"
done
du -sh checkpoints/sgr-scenes checkpoints/causmatch-sgr-scenes
